"""ReNAS predictor-guided search on NB201 vs random search and REA at the same query count.

Protocol (Xu et al., CVPR 2021, arXiv 1910.01523, NB101 Table 4 transferred to NB201):
``train_size`` random cells (default 424) + the ``top_k`` (10) best-predicted unseen ones =
434 queries; RS and REA get the same 434 queries. The searcher sees the NB201 12-epoch
validation accuracy (``--protocol 12epoch``, the NB201 paper's signal); the reported number is
the 200-epoch test accuracy of the best-by-signal cell, plus its top-percentile in the table.

Commands (2-core CPU shared with 3 other jobs; what ran and its results: RESULTS.md, ReNAS):
  JNAS_DATA_DIR=/work/shared/data nice -n 10 python experiments/renas_search.py \
      --dataset cifar100 --seeds 0-4 --baseline-seeds 0-19 --out FILE.jsonl
  python experiments/renas_search.py --summarise FILE.jsonl [FILE2.jsonl ...]
Prints one JSON line per (method, seed) and a mean ± std summary per method; ``--summarise``
prints the table (mean ± std, ddof 0, and mean top-percentile) per (dataset, method), and
``--compare BONAS.jsonl GANAS/runs.jsonl`` adds BONAS / GA-NAS runs read at the same number of
queries (``--queries``, default 434).
A ReNAS seed costs ~55-62 CPU-s (200 epochs on 424 cells + scoring 15,625), RS/REA < 1 CPU-s.
Result (434 queries, 200-epoch test of the best-by-signal cell, 20 seeds each; load ~5,
80-100 s wall per ReNAS seed): C10 RS 94.01, REA 94.28, GA-NAS 94.18, ReNAS 94.09 ± 0.22;
C100 72.26 / 72.61 / 72.42 / 72.29 ± 0.76; ImageNet16-120 45.91 / 46.13 / 46.28 / 45.86 ± 0.83
(BONAS at 434 with 5-8 seeds, top-percentiles and paired differences in RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jnas.report import load_jsonl
from jnas import benchmarks, search
from jnas.config import parse_seeds


def other_records(paths: list[str], queries: int) -> list[dict]:
    """Records of other searchers at ``queries`` distinct queries, in this script's format:
    BONAS lines of ``experiments/bonas_search.py`` (``best`` per budget) and GA-NAS lines of
    ``experiments/ganas_nb201.py`` (``OUT/runs.jsonl``, whole trajectory). Runs with fewer
    queries are left out."""
    if not paths:
        return []
    from jnas.report import score_at
    bench = benchmarks.load_nb201()
    out = []
    for path in paths:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r["method"] in ("rs", "rea"):  # baselines come from this script's runs
                    continue
                if "result" in r:  # GA-NAS runs.jsonl
                    if r.get("max_params") is not None or r["budget"] < queries:
                        continue
                    acc, proto = score_at(r["result"], queries), r["protocol"]
                elif "best" in r:  # bonas_search.py
                    if str(queries) not in r["best"]:
                        continue
                    acc, proto = r["best"][str(queries)], r.get("protocol", "12epoch")
                else:
                    raise ValueError(f"{path}: unknown record format (keys {sorted(r)})")
                if proto != "12epoch":
                    continue
                table = np.asarray(bench.test_acc[r["dataset"]])
                out.append({"method": r["method"], "dataset": r["dataset"], "seed": r["seed"],
                            "queries": queries, "test_acc": float(acc),
                            "top_percent": 100.0 * float(np.mean(table > acc)),
                            "wall_s": r.get("wall_s", r.get("result", {}).get("wall_s", 0.0)),
                            "cpu_s": r.get("cpu_s", float("nan"))})
    return out


def summarise(paths: list[str], others: list[str] | None = None, queries: int = 434) -> None:
    """Markdown table per (dataset, method) of JSON-line result files (later duplicates win),
    with BONAS / GA-NAS runs (``others``) read at the same number of queries."""
    recs = load_jsonl(paths, ("dataset", "method", "queries", "seed"))
    for r in other_records(others or [], queries):
        recs[(r["dataset"], r["method"], r["queries"], r["seed"])] = r
    groups: dict[tuple, list[dict]] = {}
    for k, r in sorted(recs.items()):
        groups.setdefault(k[:3], []).append(r)
    print("| dataset | method | queries | seeds | test acc (200 ep) | top % (mean) | "
          "top % (median) | wall s/seed | CPU s/seed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (ds, m, q), rs in groups.items():
        acc = np.array([r["test_acc"] for r in rs])
        top = np.array([r["top_percent"] for r in rs])
        cpu = [r["cpu_s"] for r in rs if np.isfinite(r.get("cpu_s", np.nan))]
        print(f"| {ds} | {m} | {q} | {len(rs)} | {acc.mean():.2f} ± {acc.std():.2f} | "
              f"{top.mean():.3f} | {np.median(top):.3f} | "
              f"{np.median([r['wall_s'] for r in rs]):.0f} | "
              f"{np.median(cpu) if cpu else float('nan'):.0f} |")
    print()
    print("| dataset | method − ref (paired by seed) | queries | seeds | mean ± s.e. "
          "(ahead/behind) |")
    print("|---|---|---|---|---|")
    for (ds, m, q), rs in groups.items():
        for ref in ("rs", "rea"):
            if m == ref or (ds, ref, q) not in groups:
                continue
            by_seed = {r["seed"]: r["test_acc"] for r in groups[(ds, ref, q)]}
            d = np.array([r["test_acc"] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed])
            if len(d) < 2:
                continue
            print(f"| {ds} | {m} − {ref} | {q} | {len(d)} | {d.mean():+.2f} ± "
                  f"{d.std(ddof=1) / np.sqrt(len(d)):.2f} ({(d > 1e-9).sum()}/"
                  f"{(d < -1e-9).sum()}) |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--protocol", default="12epoch")
    p.add_argument("--seeds", default="0-9", help="ReNAS seeds")
    p.add_argument("--baseline-seeds", default="0-9", help="RS/REA seeds")
    p.add_argument("--methods", default="rs,rea,renas")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="ReNAS config overrides, e.g. epochs=200")
    p.add_argument("--out", default=None)
    p.add_argument("--summarise", nargs="+", default=None, metavar="JSONL",
                   help="only print the summary table of these result files")
    p.add_argument("--compare", nargs="+", default=None, metavar="JSONL",
                   help="with --summarise: BONAS (bonas_search.py) / GA-NAS (ganas_nb201.py "
                        "runs.jsonl) results, read at --queries")
    p.add_argument("--queries", type=int, default=434)
    a = p.parse_args(argv)
    if a.summarise:
        return summarise(a.summarise, a.compare, a.queries)
    bench = benchmarks.load_nb201()
    acc = np.asarray(bench.test_acc[a.dataset])
    budget = 0
    rows: dict[str, list[float]] = {}
    for method in a.methods.split(","):
        ov = a.overrides if method == "renas" else None
        if method == "renas":
            from jnas.renas import ReNASConfig
            from jnas.config import apply_overrides
            cfg = apply_overrides(ReNASConfig(), ov)
            budget = cfg.train_size + cfg.top_k
        budget = budget or 434
        seeds = parse_seeds(None, a.seeds if method == "renas" else a.baseline_seeds)
        # resumable: a (method, dataset, protocol, queries, seed) already in --out is loaded
        key = ("method", "dataset", "protocol", "queries", "seed")
        done = (load_jsonl([a.out], key, defaults={"protocol": None})
                if a.out and Path(a.out).exists() else {})
        for seed in seeds:
            prev = done.get((method, a.dataset, a.protocol, budget, seed))
            if prev is not None:
                rows.setdefault(method, []).append(prev["test_acc"])
                print(f"{method} seed {seed}: loaded from {a.out}", flush=True)
                continue
            t0, c0 = time.time(), time.process_time()
            res = search.run_seeds(
                method, [seed], budget, space="nb201", dataset=a.dataset, protocol=a.protocol,
                overrides=ov, evaluator_factory=lambda s: benchmarks.TabularEvaluator(
                    bench, dataset=a.dataset, protocol=a.protocol))[0]
            best = float(bench.test_acc[a.dataset][bench.index_of(res["best_arch"])])
            rec = {"method": method, "dataset": a.dataset, "protocol": a.protocol, "seed": seed,
                   "queries": budget,
                   "best_arch": res["best_arch"], "test_acc": best,
                   "top_percent": 100.0 * float(np.mean(acc > best)),
                   "wall_s": round(time.time() - t0, 1),
                   "cpu_s": round(time.process_time() - c0, 1)}
            rows.setdefault(method, []).append(best)
            print(json.dumps(rec), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    for m, v in rows.items():
        print(f"{m}: {np.mean(v):.2f} ± {np.std(v):.2f} ({len(v)} seeds, {budget} queries)")


if __name__ == "__main__":
    main()
