"""The result record of both search flows, its JSON writer, multi-seed summaries and plots.

:class:`Result` is what :func:`jnas.search.run_search` and the one-shot runs return;
:func:`write_json` writes it (or any JSON-able object) atomically. The summaries work on
the records that :func:`jnas.search.run_search` / the CLI write (``result.json``: a
``trajectory`` of ``[queries, best reported score so far]``). The score at budget ``b`` of
one run is the reported score of its best-by-signal architecture among its first ``b``
queries; a run with fewer than ``b`` queries does not count at ``b``. The std is
the population std over runs (``ddof=0``, as the NAS-Bench-201 reference code reports).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["Result", "jsonable", "write_json", "load_jsonl", "load_results", "score_at",
           "score_at_time", "summarise", "format_summary", "best_so_far_curve",
           "plot_best_so_far", "plot_alpha", "save_figure"]


def jsonable(o: Any) -> Any:
    """``json.dumps(..., default=jsonable)``: NumPy/JAX scalars and arrays become numbers and
    lists, architectures their standard string, dataclasses dicts, paths strings."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_string"):
        return o.to_string()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if hasattr(o, "__array__") and hasattr(o, "shape"):  # jax.Array and friends
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_RESULT_DEFAULTS: dict[str, Any] = {
    "method": "", "space": "", "dataset": None, "seed": None, "best_arch": None, "bench": {},
    "trajectory": [], "history": [], "wall_s": 0.0, "compile_s": 0.0, "config": {}}


@dataclasses.dataclass(frozen=True)
class Result:
    """The one result record of both flows (``result.json``).

    ``trajectory`` is ``[[queries, best reported so far], ...]`` for sample-based searches
    and ``[[epoch, ...], ...]`` for one-shot ones; flow-specific top-level fields (e.g.
    ``best_signal``, ``genotype``, ``alpha_final``) live in ``extra`` and are written at the
    top level of the JSON record.
    """
    method: str                      # registry name of the method
    space: str                       # search space name
    dataset: str | None              # dataset name
    seed: int | None                 # seed of the run
    best_arch: str | None            # standard string of the chosen architecture
    bench: dict                      # table numbers for best_arch ({} if none)
    trajectory: list                 # [[queries or epoch, best so far], ...]
    history: list                    # per-query (or per-epoch) records
    wall_s: float                    # wall-clock seconds of the run
    compile_s: float                 # seconds spent compiling
    config: dict                     # the method config as a dict
    extra: dict = dataclasses.field(default_factory=dict)  # flow-specific top-level fields

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready flat dict: the named fields, then ``extra``'s items at top level."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "extra"}
        clash = set(d) & set(self.extra)
        if clash:
            raise ValueError(f"Result.extra repeats named fields {sorted(clash)}; set them "
                             "as fields instead")
        d.update(self.extra)
        return json.loads(json.dumps(d, default=jsonable))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Result":
        """The record of a :meth:`to_json` dict (fields it lacks take empty defaults)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        kw = {n: d.get(n, _RESULT_DEFAULTS[n]) for n in names}
        return cls(**kw, extra={k: v for k, v in d.items() if k not in kw})

    def replace(self, **kw: Any) -> "Result":
        """A copy with fields changed; unknown names go to (a copy of) ``extra``."""
        names = {f.name for f in dataclasses.fields(self)}
        extra = {k: v for k, v in kw.items() if k not in names}
        fields = {k: v for k, v in kw.items() if k in names}
        if extra:
            fields["extra"] = {**fields.get("extra", self.extra), **extra}
        return dataclasses.replace(self, **fields)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> Path:
    """Writes ``obj`` (a :class:`Result`, or anything :func:`jsonable` handles) as JSON to
    ``path`` atomically (a temp file in the same folder, then ``os.replace``); returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(obj, "to_json"):
        obj = obj.to_json()
    text = json.dumps(obj, indent=indent, default=jsonable)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_jsonl(paths: Sequence[str | Path], key: Sequence[str],
               defaults: dict[str, Any] | None = None,
               keep: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None
               ) -> dict[tuple, dict[str, Any]]:
    """Records of JSON-lines files, keyed by the tuple of their ``key`` fields.

    ``defaults`` fills fields that older records lack (e.g. one added to the format later).
    Of two records with the same key the later one wins (re-runs and resumed runs), unless
    ``keep(new, old)`` is given: then ``new`` replaces ``old`` only where it returns True.
    """
    recs: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = {**(defaults or {}), **json.loads(line)}
                    k = tuple(r[f] for f in key)
                    if k not in recs or keep is None or keep(r, recs[k]):
                        recs[k] = r
    return recs


def load_results(dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """All ``result.json`` records under ``dirs`` (the folder itself and ``seed_*/``)."""
    out = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files = [d]
        else:
            if not d.is_dir():
                raise FileNotFoundError(f"result folder {d} not found")
            files = sorted(d.glob("result.json")) + sorted(d.glob("*/result.json"))
        if not files:
            raise FileNotFoundError(f"no result.json under {d}; expected DIR/seed_<S>/"
                                    "result.json from `jnas search`")
        for f in files:
            with open(f) as fh:
                out.append(json.load(fh))
    return out


def _curve_at(traj: Sequence[Sequence[float]], x: float) -> float:
    """Value of a best-so-far step curve ``[[x, best], ...]`` at ``x`` (NaN if it ends sooner)."""
    if not traj or traj[-1][0] < x:
        return math.nan
    best = math.nan
    for q, v in traj:
        if q > x:
            break
        best = v
    return float(best)


def score_at(result: Mapping[str, Any], budget: int) -> float:
    """Best-so-far reported score of one run after ``budget`` queries (NaN if it has fewer)."""
    return _curve_at(result.get("trajectory") or [], budget)


def score_at_time(result: Mapping[str, Any], seconds: float) -> float:
    """Best-so-far reported score once ``seconds`` of *simulated* query cost are spent (the
    NB201 paper's time budget); NaN if the run stopped before spending that much."""
    return _curve_at(result.get("trajectory_sim_s") or [], seconds)

def summarise(results: Sequence[Mapping[str, Any]],
              budgets: Sequence[int] = (50, 100, 200, 500)) -> dict[str, Any]:
    """Mean ± std of the reported score at each budget, over runs (seeds).

    Returns:
      ``{"method", "dataset", "protocol", "runs", "budgets": {b: {"mean", "std", "n",
      "sim_s"}}}`` where ``sim_s`` is the mean simulated cost spent by budget ``b``.
    """
    if not results:
        raise ValueError("summarise needs at least one result")
    first = results[0]
    out: dict[str, Any] = {
        "method": first.get("method"), "dataset": first.get("dataset"),
        "protocol": (first.get("evaluator") or {}).get("protocol")
        or (first.get("bench") or {}).get("protocol"),
        "runs": len(results), "budgets": {}}
    for b in budgets:
        vals = np.array([score_at(r, b) for r in results], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        sims = []
        for r in results:
            ts = r.get("trajectory_sim_s") or []
            if len(ts) >= b:
                sims.append(ts[b - 1][0])
        out["budgets"][int(b)] = {
            "mean": float(ok.mean()) if ok.size else math.nan,
            "std": float(ok.std()) if ok.size else math.nan, "n": int(ok.size),
            "sim_s": float(np.mean(sims)) if sims else math.nan}
    return out


def format_summary(summary: Mapping[str, Any]) -> str:
    """A small markdown table of a :func:`summarise` output."""
    head = (f"{summary.get('method')} | {summary.get('dataset')} | protocol "
            f"{summary.get('protocol')} | {summary['runs']} runs")
    lines = [head, "| queries | mean ± std | runs | mean simulated s |", "|---|---|---|---|"]
    for b, s in summary["budgets"].items():
        lines.append(f"| {b} | {s['mean']:.2f} ± {s['std']:.2f} | {s['n']} | "
                     f"{s['sim_s']:.0f} |")
    return "\n".join(lines)


def best_so_far_curve(results: Sequence[Mapping[str, Any]], max_queries: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(queries, mean, std)`` of best-so-far reported score over runs, at 1..max_queries
    (only queries every run reached)."""
    runs = []
    for r in results:
        traj = r.get("trajectory") or []
        if not traj:
            continue
        q = np.array([t[0] for t in traj], dtype=int)
        v = np.array([t[1] for t in traj], dtype=np.float64)
        dense = np.full(int(q[-1]), np.nan)
        dense[q - 1] = v
        # carry forward (trajectory has one point per query, but be safe)
        for i in range(1, dense.size):
            if np.isnan(dense[i]):
                dense[i] = dense[i - 1]
        runs.append(dense)
    if not runs:
        raise ValueError("no trajectories to plot")
    n = min(len(x) for x in runs)
    if max_queries is not None:
        n = min(n, max_queries)
    m = np.stack([x[:n] for x in runs])
    return np.arange(1, n + 1), np.nanmean(m, 0), np.nanstd(m, 0)


def plot_best_so_far(groups: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path,
                     title: str | None = None, max_queries: int | None = None,
                     log_x: bool = True, from_query: int = 10) -> Path:
    """One figure: for each group (method), the mean best-so-far reported score vs queries
    with a ±1 standard-error band (std / sqrt(runs): the band to compare methods by).
    Queries before ``from_query`` are left out (a few random cells would set the y scale);
    all are drawn when runs are shorter than that. Writes a PNG (or any format matplotlib
    infers from ``path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, results in groups.items():
        x, mu, sd = best_so_far_curve(results, max_queries)
        se = sd / np.sqrt(max(sum(bool(r.get("trajectory")) for r in results), 1))
        i0 = from_query - 1 if len(x) > from_query else 0
        x, mu, se = x[i0:], mu[i0:], se[i0:]
        line, = ax.plot(x, mu, label=f"{name} (n={len(results)})")
        ax.fill_between(x, mu - se, mu + se, color=line.get_color(), alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("reported score, best by signal (%)\nmean ± s.e.")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120)


def plot_alpha(history: Sequence[Mapping[str, Any]], ops: Sequence[str],
               path: str | Path) -> Path | None:
    """Plots softmax(α) of a one-shot search (``history[i]["alpha"]``: per weight tensor, per
    edge, the op probabilities of epoch ``history[i]["epoch"]``): one panel per edge and
    tensor, one line per op, over epochs; points get markers so a 1-epoch run shows. Writes a
    PNG; returns the path (None when matplotlib is missing or the history is empty)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    names = list(history[0]["alpha"].keys())
    panels = [(n, e) for n in names for e in range(len(history[0]["alpha"][n]))]
    cols = 6 if len(panels) <= 6 else 7
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    marker = "o" if len(epochs) <= 30 else None
    for ax, (n, e) in zip(axes.ravel(), panels):
        arr = np.array([h["alpha"][n][e] for h in history])
        for k, op in enumerate(ops):
            ax.plot(epochs, arr[:, k], label=op, marker=marker, markersize=3)
        ax.set_title(f"{n} edge {e}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=5)
    fig.supxlabel("epoch")
    fig.supylabel("softmax(α)")
    return save_figure(fig, path, dpi=80)


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lays out a matplotlib figure, writes it to ``path`` (parent folders made) and closes
    it; returns the path."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
