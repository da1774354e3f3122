"""ReNAS predictor-guided search on NB201 vs random search and REA at the same query count.

Protocol (Xu et al., CVPR 2021, arXiv 1910.01523, NB101 Table 4 transferred to NB201):
``train_size`` random cells (default 424) + the ``top_k`` (10) best-predicted unseen ones =
434 queries; RS and REA get the same 434 queries. The searcher sees the NB201 12-epoch
validation accuracy (``--protocol 12epoch``, the NB201 paper's signal); the reported number is
the 200-epoch test accuracy of the best-by-signal cell, plus its top-percentile in the table.

Command (2-core CPU shared with 7 other jobs, see RESULTS.md for what ran):
  JNAS_DATA_DIR=/work/shared/data nice python experiments/renas_search.py \
      --dataset cifar10 --seeds 0-2 --baseline-seeds 0-9 --out /tmp/renas_search.jsonl
Prints one JSON line per (method, seed) and a mean ± std summary per method.
Ran (2-core CPU, heavily shared; ~460 s per ReNAS seed, ~2 s per RS/REA seed), C10 test:
RS 94.03 ± 0.16 (10 seeds), REA 94.32 ± 0.14 (10), ReNAS 94.23 ± 0.12 (3 seeds, top 0.07 %).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jnas import benchmarks, search
from jnas.cli import parse_seeds


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
    a = p.parse_args(argv)
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
        for seed in seeds:
            t0 = time.time()
            res = search.run_seeds(
                method, [seed], budget, space="nb201", dataset=a.dataset, protocol=a.protocol,
                overrides=ov, evaluator_factory=lambda s: benchmarks.TabularEvaluator(
                    bench, dataset=a.dataset, protocol=a.protocol))[0]
            best = float(bench.test_acc[a.dataset][bench.index_of(res["best_arch"])])
            rec = {"method": method, "dataset": a.dataset, "seed": seed, "queries": budget,
                   "best_arch": res["best_arch"], "test_acc": best,
                   "top_percent": 100.0 * float(np.mean(acc > best)),
                   "wall_s": round(time.time() - t0, 1)}
            rows.setdefault(method, []).append(best)
            print(json.dumps(rec), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    for m, v in rows.items():
        print(f"{m}: {np.mean(v):.2f} ± {np.std(v):.2f} ({len(v)} seeds, {budget} queries)")


if __name__ == "__main__":
    main()
