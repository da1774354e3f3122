"""Comparing runs: result folders against each other (``jnas compare``: tables and best-so-far
plots), and a result folder against the settings of a new run (``jnas search``: finished,
resumable, or a run of other settings, naming the fields that differ).

Each folder holds the ``seed_*/result.json`` records of one method (as ``jnas search`` writes
them). Runs are only comparable on one benchmark, dataset and protocol, so folders that differ
in these are refused unless ``mixed=True``, which separates them into one table group and one
plot panel each. Sample-based runs are summarised at query budgets (the best-by-signal cell's
reported score, as :func:`jnas.report.summarise`; budgets no run reached are left out) and
plotted against queries; one-shot runs (DARTS, SNAS, ...) are summarised and plotted by epoch
(the NB201 test accuracy of the cell discretised at the end of each epoch).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jnas import report

__all__ = ["Group", "run_kind", "setting_of", "load_groups", "check_settings", "panels",
           "format_group", "epoch_curve", "plot_groups", "compare", "jsonish", "differences",
           "existing_run"]


@dataclasses.dataclass(frozen=True)
class Group:
    """The runs of one result folder."""
    name: str                     # the folder as given
    results: tuple[dict[str, Any], ...]
    kind: str                     # "sample" (x = queries) or "oneshot" (x = epochs)
    setting: tuple[str, str, str]  # (benchmark, dataset, protocol)

    @property
    def label(self) -> str:
        """``benchmark · dataset · protocol``, for titles and messages."""
        return " · ".join(self.setting)


def run_kind(result: Mapping[str, Any]) -> str:
    """``"sample"`` for a sample-based run (trajectory over queries), ``"oneshot"`` for a
    supernet search (trajectory over epochs)."""
    return "sample" if "num_queries" in result else "oneshot"


def setting_of(result: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(benchmark, dataset, protocol)`` a run's numbers come from.

    One-shot runs are scored on the NB201 table's 200-epoch test accuracy of the found cell;
    their protocol is ``"one-shot"`` (not comparable with a sample-based protocol).
    """
    dataset = str(result.get("dataset") or "?")
    if run_kind(result) == "oneshot":
        bench = "nb201" if (result.get("bench") or {}).get("nb201_index") is not None \
            else str(result.get("space") or "?")
        return bench, dataset, "one-shot"
    ev = result.get("evaluator") or {}
    bench = str(ev.get("benchmark") or result.get("space") or "?")
    if bench.endswith(".csv"):
        bench = Path(bench).name
    protocol = ev.get("protocol") or (result.get("bench") or {}).get("protocol") or "table"
    return bench, dataset, str(protocol)


def load_groups(dirs: Sequence[str | Path]) -> list[Group]:
    """One :class:`Group` per folder; a folder mixing kinds or settings is refused."""
    groups = []
    for d in dirs:
        try:
            results = report.load_results([Path(d)])
        except json.JSONDecodeError as e:
            raise ValueError(f"{d}: a result.json there is not valid JSON ({e}); delete it or "
                             "re-run that seed") from None
        kinds = {run_kind(r) for r in results}
        settings = {setting_of(r) for r in results}
        if len(kinds) > 1 or len(settings) > 1:
            shown = ", ".join(" · ".join(s) for s in sorted(settings))
            raise ValueError(f"{d} mixes runs of different settings ({shown}); keep one "
                             "setting per folder")
        groups.append(Group(str(d), tuple(results), kinds.pop(), settings.pop()))
    return groups


def check_settings(groups: Sequence[Group], mixed: bool = False) -> None:
    """Raises ValueError naming the folders when they differ in benchmark, dataset or
    protocol (or mix one-shot and sample-based runs), unless ``mixed``."""
    settings = {g.setting for g in groups}
    if len(settings) > 1 and not mixed:
        shown = "; ".join(f"{g.name}: {g.label}" for g in groups)
        raise ValueError(f"the runs differ in benchmark, dataset or protocol ({shown}); "
                         "compare one setting at a time, or pass --mixed to show each "
                         "setting separately")


def panels(groups: Sequence[Group]) -> dict[str, list[Group]]:
    """Groups by setting label (one table section / plot panel each), in order of first
    appearance."""
    out: dict[str, list[Group]] = {}
    for g in groups:
        out.setdefault(g.label, []).append(g)
    return out


def epoch_curve(results: Sequence[Mapping[str, Any]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std, n)`` of one-shot runs' per-epoch test accuracy (runs without a
    score at an epoch are left out there)."""
    per: dict[int, list[float]] = {}
    for r in results:
        for e, v in r.get("trajectory") or []:
            if v is not None and math.isfinite(float(v)):
                per.setdefault(int(e), []).append(float(v))
    epochs = np.array(sorted(per), dtype=int)
    vals = [np.array(per[e]) for e in epochs]
    return (epochs, np.array([v.mean() for v in vals]), np.array([v.std() for v in vals]),
            np.array([len(v) for v in vals]))


def _shown_epochs(epochs: np.ndarray, most: int = 10) -> list[int]:
    if len(epochs) <= most:
        return [int(e) for e in epochs]
    idx = np.unique(np.linspace(0, len(epochs) - 1, most).round().astype(int))
    return [int(epochs[i]) for i in idx]


def format_group(group: Group, budgets: Sequence[int]) -> str:
    """A markdown table of one group: mean ± std over runs at each reached budget (sample)
    or epoch (one-shot)."""
    n_runs = len(group.results)
    method = group.results[0].get("method")
    head = f"== {group.name}: {method} | {group.label} | {n_runs} runs"
    if group.kind == "oneshot":
        epochs, mu, sd, n = epoch_curve(group.results)
        if not len(epochs):
            return head + "\n(no scored epochs: the found cells have no table entry)"
        lines = [head, "| epoch | test accuracy mean ± std | runs |", "|---|---|---|"]
        where = {int(e): i for i, e in enumerate(epochs)}
        for e in _shown_epochs(epochs):
            i = where[e]
            lines.append(f"| {e} | {mu[i]:.2f} ± {sd[i]:.2f} | {n[i]} |")
        return "\n".join(lines)
    summary = report.summarise(list(group.results), budgets)
    reached = {b: s for b, s in summary["budgets"].items() if s["n"] > 0}
    lines = [head, "| queries | mean ± std | runs | mean simulated s |", "|---|---|---|---|"]
    for b, s in reached.items():
        sim = f"{s['sim_s']:.0f}" if math.isfinite(s["sim_s"]) else "-"
        lines.append(f"| {b} | {s['mean']:.2f} ± {s['std']:.2f} | {s['n']} | {sim} |")
    skipped = [b for b in summary["budgets"] if b not in reached]
    if skipped:
        longest = max(int(r.get("num_queries") or 0) for r in group.results)
        lines.append(f"(not reached by any run: {', '.join(map(str, skipped))} queries; "
                     f"the longest run has {longest})")
    return "\n".join(lines)


def plot_groups(groups: Sequence[Group], path: str | Path, from_query: int = 10) -> Path:
    """One panel per setting, titled with benchmark, dataset and protocol: mean best-so-far
    reported score (± standard error over runs) against queries for sample-based runs (log
    scale, from ``from_query`` when runs are longer), against epochs for one-shot runs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_panel = panels(groups)
    fig, axes = plt.subplots(1, len(by_panel), figsize=(6 * len(by_panel), 4), squeeze=False)
    for ax, (label, members) in zip(axes[0], by_panel.items()):
        oneshot = members[0].kind == "oneshot"
        for g in members:
            name = f"{g.name} (n={len(g.results)})"
            if oneshot:
                x, mu, sd, n = epoch_curve(g.results)
                if not len(x):
                    continue
                se = sd / np.sqrt(np.maximum(n, 1))
                line, = ax.plot(x, mu, marker="o", label=name)
            else:
                x, mu, sd = report.best_so_far_curve(g.results)
                se = sd / np.sqrt(max(len(g.results), 1))
                i0 = from_query - 1 if len(x) > from_query else 0
                x, mu, se = x[i0:], mu[i0:], se[i0:]
                line, = ax.plot(x, mu, label=name, marker="o" if len(x) == 1 else None)
            ax.fill_between(x, mu - se, mu + se, color=line.get_color(), alpha=0.2)
        if oneshot:
            from matplotlib.ticker import MaxNLocator
            epochs = sorted({int(e) for g in members for e in epoch_curve(g.results)[0]})
            if epochs and len(epochs) <= 12:
                ax.set_xticks(epochs)
                ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy of the current cell (%)\nmean ± s.e.")
        else:
            ax.set_xscale("log")
            ax.set_xlabel("queries")
            ax.set_ylabel("reported score, best by signal (%)\nmean ± s.e.")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return report.save_figure(fig, path, dpi=120)


def compare(dirs: Sequence[str | Path], budgets: Sequence[int] = (50, 100, 200, 500), *,
            plot: str | Path | None = None, mixed: bool = False) -> str:
    """The comparison text of ``dirs`` (one table per folder, grouped by setting); writes the
    plot to ``plot`` when given.

    Raises:
      ValueError: the folders differ in benchmark, dataset or protocol and ``mixed`` is
        False; a budget is not a positive integer.
      FileNotFoundError: a folder holds no ``result.json``.
    """
    if not budgets or any(int(b) < 1 for b in budgets):
        raise ValueError(f"budgets must be positive query counts, got {list(budgets)}")
    groups = load_groups(dirs)
    check_settings(groups, mixed)
    by_panel = panels(groups)
    parts = []
    for label, members in by_panel.items():
        if len(by_panel) > 1:
            parts.append(f"## {label}")
        parts.extend(format_group(g, budgets) for g in members)
    if plot is not None:
        parts.append(f"plot -> {plot_groups(groups, plot)}")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- one folder
def jsonish(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, arrays lists, ...)."""
    return json.loads(json.dumps(obj, default=report.jsonable))


def differences(here: Any, there: Any, name: str = "") -> list[str]:
    """``"field: X there, Y here"`` for every leaf where two settings records differ
    (nested fields dotted: ``config.population``)."""
    if isinstance(here, dict) and isinstance(there, dict):
        out = []
        for k in sorted(set(here) | set(there), key=str):
            out += differences(here.get(k, "<unset>"), there.get(k, "<unset>"),
                               f"{name}.{k}" if name else str(k))
        return out
    return [] if here == there else [f"{name}: {there!r} there, {here!r} here"]


def _saved_settings(seed_dir: Path, budget: int | None) -> tuple[str, dict[str, Any] | None]:
    result = seed_dir / "result.json"
    if result.is_file():
        try:
            saved = json.loads(result.read_text())
        except ValueError as e:
            raise ValueError(f"{result} is not valid JSON ({e}); delete it or pass "
                             "--force") from None
        done = int(saved.get("num_queries") or 0)
        if budget is not None and done < budget and not saved.get("note"):
            return "resume", saved  # a shorter run of the same settings: extended
        return "finished", saved
    history = seed_dir / "history.jsonl"
    if budget is not None and history.is_file():
        with open(history) as f:
            try:
                meta = json.loads(f.readline()).get("meta")
            except (ValueError, AttributeError):
                meta = None
        return "resume", meta if isinstance(meta, dict) else None
    return "new", None


def existing_run(seed_dir: str | Path, settings: dict[str, Any],
                 budget: int | None = None,
                 config_defaults: dict[str, Any] | None = None) -> str:
    """What ``seed_dir`` holds for a run of ``settings`` (``method``, ``space``, ``dataset``,
    ``config``, ``evaluator`` as in ``result.json``; ``budget`` queries for sample-based
    runs): ``"new"`` (nothing), ``"resume"`` (a partial or shorter run of the same settings)
    or ``"finished"``. A saved config lacking a field (one added later) counts as holding
    its value in ``config_defaults``.

    Raises:
      ValueError: the folder holds a run of other settings; the message names the fields
        that differ (a partial run is checked against its ``history.jsonl`` header).
    """
    seed_dir = Path(seed_dir)
    state, saved = _saved_settings(seed_dir, budget)
    if saved is None:
        return state
    if state == "resume" and "num_queries" not in saved:  # a history header: its fields only
        settings = {k: v for k, v in settings.items() if k in saved}
    elif budget is not None and int(saved.get("num_queries") or 0) > budget:
        settings = {**settings, "num_queries": budget}
    if config_defaults and isinstance(saved.get("config"), dict):
        saved = {**saved, "config": {**config_defaults, **saved["config"]}}
    if saved.get("method", settings.get("method")) != settings.get("method"):
        settings = {"method": settings.get("method")}  # the rest differs as a consequence
    diffs = differences(settings, {k: saved.get(k, "<unset>") for k in settings})
    if diffs:
        raise ValueError(f"{seed_dir} holds a run with other settings ("
                         f"{'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''}); use "
                         "another --out, or --force to replace it")
    return state
