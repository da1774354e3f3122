"""Configuration helpers shared by every method: dataclass configs with ``key=value`` overrides.

Each method defines a frozen ``@dataclasses.dataclass`` of hyper-parameters with the paper's
defaults. The CLI's ``--set key=value`` strings are applied with :func:`apply_overrides`, which
parses the value to the field's type and rejects unknown keys with the list of valid ones.
"""
from __future__ import annotations

import ast
import dataclasses
from typing import Any, Iterable, TypeVar

T = TypeVar("T")


def _parse_value(raw: str, current: Any, name: str) -> Any:
    """Parses ``raw`` to the type of ``current`` (bool, int, float, str, tuple, None)."""
    if isinstance(current, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config key {name!r}: expected a boolean, got {raw!r}")
    if isinstance(current, int) and not isinstance(current, bool):
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            value = float(raw)
        except ValueError as e:
            raise ValueError(f"config key {name!r}: expected an integer, got {raw!r}") from e
        if not value.is_integer():
            raise ValueError(f"config key {name!r}: expected an integer, got {raw!r}")
        return int(value)
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError as e:
            raise ValueError(f"config key {name!r}: expected a number, got {raw!r}") from e
    if isinstance(current, str):
        return raw
    try:  # tuples, lists, None and numbers for fields whose default is None.
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def apply_overrides(config: T, overrides: Iterable[str] | dict[str, Any] | None) -> T:
    """Returns a copy of the dataclass ``config`` with ``key=value`` overrides applied.

    Args:
      config: a dataclass instance holding the defaults.
      overrides: strings ``"key=value"`` (as given to ``--set``) or a dict.

    Raises:
      ValueError: an override is malformed or names a field that does not exist (the message
        lists the valid fields).
    """
    if overrides is None:
        return config
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass config, got {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value")
            key, raw = item.split("=", 1)
            items.append((key.strip(), raw))
    changes: dict[str, Any] = {}
    for key, raw in items:
        if key not in fields:
            raise ValueError(
                f"unknown config key {key!r} for {type(config).__name__}; valid keys: "
                + ", ".join(sorted(fields)))
        current = getattr(config, key)
        changes[key] = _parse_value(raw, current, key) if isinstance(raw, str) else raw
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return dataclasses.asdict(config)
