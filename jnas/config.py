"""Configuration helpers shared by every method: dataclass configs with ``key=value`` overrides.

Each method defines a frozen ``@dataclasses.dataclass`` of hyper-parameters with the paper's
defaults, one trailing ``# comment`` per field (read by :func:`field_docs` for ``--help``) and
its checks in ``__post_init__`` (:func:`check_choice`, :func:`check_positive`,
:func:`check_range`). The CLI's ``--set key=value`` strings are applied with
:func:`apply_overrides`, which parses the value to the field's type and rejects unknown keys
with the list of valid ones; ``--set ws.key=value`` keys for a sub-config are separated by
:func:`split_overrides`. Seeds (``--seed`` / ``--seeds 0-9``) are parsed by :func:`parse_seeds`.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import math
import textwrap
import tokenize
from typing import Any, Iterable, Sequence, TypeVar

__all__ = ["apply_overrides", "split_overrides", "config_to_dict", "field_docs", "parse_seeds",
           "check_choice", "check_positive", "check_range", "MAX_SEED"]

T = TypeVar("T")

MAX_SEED = 2**32 - 1  # seeds are 0..MAX_SEED (a uint32 key)


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


def apply_overrides(config: T | type[T], overrides: Iterable[str] | dict[str, Any] | None, *,
                    prefixes: Sequence[str] = ()) -> T:
    """Returns a copy of the dataclass ``config`` with ``key=value`` overrides applied.

    Args:
      config: a dataclass instance holding the defaults (or the class: its defaults).
      overrides: strings ``"key=value"`` (as given to ``--set``) or a dict.
      prefixes: keys starting with one of these (e.g. ``"ws."``) belong to a sub-config and
        are skipped here (see :func:`split_overrides`).

    Raises:
      ValueError: an override is malformed or names fields that do not exist (the message
        lists them and the valid fields), a value does not parse to the field's type, or the
        config's ``__post_init__`` rejects the result.
    """
    if isinstance(config, type) and dataclasses.is_dataclass(config):
        config = config()
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass config, got {type(config).__name__}")
    if overrides is None:
        return config
    fields = {f.name: f for f in dataclasses.fields(config)}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        if isinstance(overrides, str):
            overrides = [overrides]
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value "
                                 "(e.g. --set epochs=10)")
            key, raw = item.split("=", 1)
            items.append((key.strip(), raw))
    items = [(k, v) for k, v in items if not any(k.startswith(p) for p in prefixes)]
    unknown = [k for k, _ in items if k not in fields]
    if unknown:
        name = type(config).__name__
        raise ValueError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} for {name}; valid keys: "
            + (", ".join(sorted(fields)) or f"none ({name} has no settings)"))
    changes: dict[str, Any] = {}
    for key, raw in items:
        current = getattr(config, key)
        changes[key] = _parse_value(raw, current, key) if isinstance(raw, str) else raw
    return dataclasses.replace(config, **changes)


def split_overrides(overrides: Iterable[str] | None, prefix: str = "ws."
                    ) -> tuple[list[str], list[str]]:
    """``(main, sub)``: the ``key=value`` strings without ``prefix`` and those with it (prefix
    removed), e.g. ``["C=8", "ws.steps=2000"] -> (["C=8"], ["steps=2000"])``."""
    main: list[str] = []
    sub: list[str] = []
    for item in overrides or ():
        if item.strip().startswith(prefix):
            sub.append(item.strip()[len(prefix):])
        else:
            main.append(item)
    return main, sub


def _class_field_comments(klass: type) -> dict[str, str]:
    """Field name -> trailing ``# comment`` of its line in ``klass``'s own source."""
    try:
        src = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                comments.setdefault(tok.start[0], tok.string.lstrip("#").strip())
    except (tokenize.TokenError, IndentationError):
        return {}
    tree = ast.parse(src)
    cls_node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if cls_node is None:
        return {}
    out: dict[str, str] = {}
    for node in cls_node.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                if line in comments:
                    out[node.target.id] = comments[line]
                    break
    return out


def field_docs(cls: type | Any) -> dict[str, str]:
    """Field name -> its one-line doc (the trailing ``# comment`` on the field's line, looked
    up through the base classes), in field order; ``""`` for a field without one."""
    if not isinstance(cls, type):
        cls = type(cls)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"field_docs needs a dataclass, got {cls.__name__}")
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_class_field_comments(klass))
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def parse_seeds(seed: int | None, seeds: str | None) -> list[int]:
    """Seeds from ``--seed S`` or ``--seeds 0-9`` / ``--seeds 0,3,5`` (each in 0..2**32-1)."""
    def bounded(v: int, what: str) -> int:
        if not 0 <= v <= MAX_SEED:
            raise ValueError(f"{what}: seed {v} is out of range; use 0..{MAX_SEED}")
        return v

    if seeds is None:
        return [bounded(0 if seed is None else int(seed), "--seed")]
    out: list[int] = []
    for part in seeds.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1) if not part.startswith("-") else ("-", part[1:])
            try:
                a, b = int(lo), int(hi)
            except ValueError as e:
                raise ValueError(f"--seeds: {part!r} is not a range like 0-9") from e
            if b < a:
                raise ValueError(f"--seeds: empty range {part!r}; write LOW-HIGH, e.g. 0-9")
            bounded(a, "--seeds")
            bounded(b, "--seeds")
            out.extend(range(a, b + 1))
        else:
            try:
                out.append(bounded(int(part), "--seeds"))
            except ValueError as e:
                if "out of range" in str(e):
                    raise
                raise ValueError(f"--seeds: {part!r} is not an integer") from e
    if not out:
        raise ValueError("--seeds: no seed given; e.g. --seeds 0-4 or --seeds 0,3,5")
    return out


def _where(cfg: Any, name: str) -> str:
    return f"{type(cfg).__name__}.{name}"


def check_choice(cfg: Any, name: str, choices: Iterable[Any]) -> None:
    """``ValueError`` unless ``cfg.name`` is one of ``choices`` (for ``__post_init__``)."""
    choices = tuple(choices)
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{_where(cfg, name)} = {value!r} is not valid; choose one of "
                         f"{', '.join(repr(c) for c in choices)} (--set {name}=...)")


def _number(cfg: Any, name: str) -> float | None:
    value = getattr(cfg, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_where(cfg, name)} = {value!r}: expected a number")
    if math.isnan(value):
        raise ValueError(f"{_where(cfg, name)} is NaN; give a number (--set {name}=...)")
    return value


def check_positive(cfg: Any, *names: str, allow_zero: bool = False) -> None:
    """``ValueError`` unless each ``cfg.<name>`` is ``> 0`` (``>= 0`` with ``allow_zero``);
    ``None`` (an unset optional field) passes."""
    for name in names:
        value = _number(cfg, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and not allow_zero):
            need = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{_where(cfg, name)} = {value!r} must be {need} "
                             f"(--set {name}=...)")


def check_range(cfg: Any, name: str, lo: float | None, hi: float | None) -> None:
    """``ValueError`` unless ``lo <= cfg.name <= hi`` (a ``None`` bound is open; a ``None``
    value passes)."""
    value = _number(cfg, name)
    if value is None:
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else repr(lo)
        hi_s = "inf" if hi is None else repr(hi)
        raise ValueError(f"{_where(cfg, name)} = {value!r} is outside [{lo_s}, {hi_s}] "
                         f"(--set {name}=...)")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dict of a dataclass config (an instance, or a class: its defaults)."""
    if isinstance(config, type):
        config = config()
    return dataclasses.asdict(config)
