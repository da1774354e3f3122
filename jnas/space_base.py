"""Parsing and validation shared by the search spaces (:mod:`jnas.spaces`)."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

__all__ = ["ArchParsing", "dedup_by"]


class ArchParsing:
    """``parse``/``validate`` of a space whose cells are ``arch_type`` instances with a
    ``from_string`` constructor; a subclass sets ``arch_type`` and ``_recheck`` (rebuild an
    instance through its checking constructor)."""

    arch_type: type

    def _recheck(self, arch: Any) -> Any:
        raise NotImplementedError

    def parse(self, s: Any) -> Any:
        """A cell of this space from its standard string (``ValueError`` naming the problem)."""
        if isinstance(s, self.arch_type):
            return s
        return self.arch_type.from_string(s)

    def validate(self, arch: Any) -> Any:
        """Returns ``arch`` (a cell or its string) as a valid cell or raises ``ValueError``."""
        if isinstance(arch, self.arch_type):
            return self._recheck(arch)
        if isinstance(arch, str):
            return self.parse(arch)
        raise ValueError(f"expected a {self.arch_type.__name__} or its string, "
                         f"got {type(arch).__name__}")


def dedup_by(archs: Iterable[Any], key: Callable[[Any], Hashable]) -> list[Any]:
    """``archs`` without repeats of ``key(arch)``, first occurrence kept, order kept."""
    seen: set = set()
    out = []
    for a in archs:
        k = key(a)
        if k not in seen:
            seen.add(k)
            out.append(a)
    return out
