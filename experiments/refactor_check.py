"""Behaviour check for refactors: the same commands must give the same ``result.json``.

Runs a fixed list of ``jnas search`` commands (RS, REA, BONAS, GA-NAS, ReNAS on NB201 at 100
queries, seeds 0-4; a tiny DARTS and a tiny SNAS search on real CIFAR-10 images) into a folder,
and compares two such folders field by field, ignoring timings (``wall_s``, ``compile_s`` and
other ``*_s`` / ``*_ms`` / ``*_s_per_*`` durations; the simulated cost fields are compared).

    JNAS_DATA_DIR=../shared/data python experiments/refactor_check.py run OUT_BEFORE
    # ... change the code ...
    JNAS_DATA_DIR=../shared/data python experiments/refactor_check.py run OUT_AFTER
    python experiments/refactor_check.py compare OUT_BEFORE OUT_AFTER   # exit 1 on a difference

To run the "before" side from an older commit, put its checkout first on ``PYTHONPATH``
(``git worktree add /tmp/before REV; PYTHONPATH=/tmp/before python ... run OUT_BEFORE``).
About 6 minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TINY = ["--space", "nb201", "--epochs", "1", "--seeds", "0", "--set", "C=4", "--set", "N=1",
        "--set", "batch_size=8", "--set", "train_size=64", "--set", "val_size=64",
        "--set", "max_steps_per_epoch=4", "--set", "eval_batches=1", "--set", "xla=fastest",
        "--set", "plot=false"]
SAMPLE = ["--space", "nb201", "--budget", "100", "--seeds", "0-4"]
COMMANDS: dict[str, list[str]] = {
    "rs": ["rs", *SAMPLE],
    "rea": ["rea", *SAMPLE],
    "bonas": ["bonas", *SAMPLE],
    "ganas": ["ganas", *SAMPLE],
    "renas": ["renas", *SAMPLE],
    "darts": ["darts", *TINY],
    "snas": ["snas", *TINY],
}


def _is_timing(key: str) -> bool:
    if "sim" in key:  # simulated training cost: deterministic, compared
        return False
    return (key.endswith(("_s", "_ms")) or "_s_per_" in key
            or key in ("wall", "time", "seconds"))


def strip_timings(obj: Any) -> Any:
    """``obj`` without timing fields, recursively."""
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if not _is_timing(str(k))}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """A description of the first place where ``a`` and ``b`` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'after' if k not in a else 'before'}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def run(out: Path, names: list[str]) -> None:
    from jnas.cli import main
    for name in names:
        argv = ["search", *COMMANDS[name], "--out", str(out / name)]
        print("jnas", " ".join(argv), flush=True)
        rc = main(argv)
        if rc:
            raise SystemExit(f"command failed with exit code {rc}: jnas {' '.join(argv)}")


def compare(before: Path, after: Path) -> int:
    files = sorted(p.relative_to(before) for p in before.rglob("result.json"))
    if not files:
        print(f"no result.json under {before}")
        return 1
    bad = 0
    for rel in files:
        other = after / rel
        if not other.exists():
            print(f"{rel}: missing in {after}")
            bad += 1
            continue
        a = strip_timings(json.loads((before / rel).read_text()))
        b = strip_timings(json.loads(other.read_text()))
        d = first_difference(a, b)
        if d:
            print(f"{rel}: differs at {d}")
            bad += 1
    print(json.dumps({"compared": len(files), "different": bad}))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--only", nargs="*", default=list(COMMANDS), choices=list(COMMANDS))
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.out, args.only)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
