"""Random search and regularised evolution on NAS-Bench-201: 3 datasets x 2 protocols.

Command (from the repository root, offline data in ../shared/data):

    JNAS_DATA_DIR=../shared/data nice python experiments/baselines_nb201.py \
        --out /tmp/jnas_baselines --seeds 0-19 --budget 600

Runs RS and REA (population 10, sample 3) for every seed on CIFAR-10, CIFAR-100 and
ImageNet16-120 under both protocols of :mod:`jnas.benchmarks` ('12epoch': the searcher sees
12-epoch validation accuracy; '200epoch': it sees the 200-epoch test accuracy), and prints
markdown tables of the reported 200-epoch test accuracy (mean ± std over seeds) at 50, 100,
200 and 500 queries, plus (12-epoch protocol) at 12,000 simulated seconds, the NB201 paper's
budget. The score at b queries is read from the prefix of each run (with batch size 1 the
first b queries of a longer run are exactly a run of budget b). Writes
``OUT/<method>_<dataset>_<protocol>/seed_<S>/{history.jsonl,result.json}`` (re-running
resumes), ``OUT/summary.md``, and best-so-far plots ``OUT/best_so_far_<dataset>_<protocol>.png``
(RS and REA in one figure). Finally it times one 500-query REA run (search overhead per
query = wall time minus evaluator time).

Runtime: 564 s on the shared 2-core CPU (load ≈ 13; 240 runs of 600 queries).
Result (full tables in RESULTS.md), 20 seeds, 12epoch protocol, CIFAR-10:
RS 93.68 ± 0.44 / REA 94.03 ± 0.27 at 100 queries (reference RS 93.70 ± 0.36, REA
93.92 ± 0.30); REA search overhead 2.64 ms per query.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jnas import benchmarks, report, search  # noqa: E402
from jnas.cli import parse_seeds  # noqa: E402
from jnas.spaces import get_space  # noqa: E402

METHODS = ("rs", "rea")
REFERENCE = {  # METHODS.md, NB201 200-epoch test accuracy (%)
    ("rs", "cifar10"): "93.70±0.36", ("rs", "cifar100"): "71.04±1.07",
    ("rs", "ImageNet16-120"): "44.57±1.25", ("rea", "cifar10"): "93.92±0.30",
    ("rea", "cifar100"): "71.84±0.99", ("rea", "ImageNet16-120"): "45.54±1.03"}


def _fmt(vals: list[float]) -> str:
    v = np.array([x for x in vals if not math.isnan(x)])
    return f"{v.mean():.2f} ± {v.std():.2f}" + ("" if len(v) == len(vals) else
                                                f" (n={len(v)})") if v.size else "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0-19")
    p.add_argument("--budget", type=int, default=600)
    p.add_argument("--budgets", default="50,100,200,500")
    p.add_argument("--datasets", default=",".join(benchmarks.DATASETS))
    p.add_argument("--protocols", default="12epoch,200epoch")
    args = p.parse_args()
    seeds = parse_seeds(None, args.seeds)
    budgets = [int(b) for b in args.budgets.split(",")]
    out = Path(args.out)
    lines = [f"seeds {args.seeds} ({len(seeds)} runs per row), budget {args.budget} queries, "
             "reported = 200-epoch test accuracy (%) of the best-by-signal cell, mean ± std "
             "(ddof=0)", ""]
    t_all = time.time()
    for protocol in args.protocols.split(","):
        head = "| method | dataset | " + " | ".join(f"{b} q" for b in budgets)
        head += (" | 12,000 sim. s (queries) | reference |" if protocol == "12epoch"
                 else " | reference |")
        lines += [f"### protocol {protocol}", "", head,
                  "|" + "---|" * (head.count("|") - 1)]
        for ds in args.datasets.split(","):
            groups = {}
            for m in METHODS:
                t0 = time.time()
                res = search.run_seeds(m, seeds, args.budget, dataset=ds, protocol=protocol,
                                       out_dir=out / f"{m}_{ds}_{protocol}")
                groups[m] = res
                cells = [_fmt([report.score_at(r, b) for r in res]) for b in budgets]
                row = f"| {m} | {ds} | " + " | ".join(cells)
                if protocol == "12epoch":
                    qs = [sum(1 for t, _ in r["trajectory_sim_s"] if t <= 12000) for r in res]
                    row += (f" | {_fmt([report.score_at_time(r, 12000) for r in res])} "
                            f"({np.mean(qs):.0f})")
                row += f" | {REFERENCE[(m, ds)]} |"
                lines.append(row)
                print(row, f"[{time.time() - t0:.1f}s]", flush=True)
            report.plot_best_so_far(
                {m.upper(): r for m, r in groups.items()},
                out / f"best_so_far_{ds}_{protocol}.png",
                title=f"NB201 {ds}, protocol {protocol}, {len(seeds)} seeds")
        lines.append("")
    # Search overhead of one 500-query REA run (fresh, not resumed).
    ev = benchmarks.make_evaluator("nb201", "cifar10", "12epoch")
    t0 = time.perf_counter()
    res = search.run_search(search.RegularizedEvolution(get_space("nb201"), 0), ev, 500)
    wall = time.perf_counter() - t0
    lines.append(f"REA, 500 queries, CIFAR-10 12epoch, seed 0: wall {wall:.3f} s, search "
                 f"overhead {res.extra['search_overhead_s']:.3f} s = "
                 f"{1e3 * res.extra['search_overhead_s'] / res.extra['num_queries']:.2f} ms per "
                 f"query (evaluator lookups "
                 f"{1e3 * (res.wall_s - res.extra['search_overhead_s']) / 500:.2f} "
                 f"ms per query); simulated cost {res.extra['simulated_cost_s']:.0f} s")
    lines.append(f"total experiment wall time {time.time() - t_all:.0f} s")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    print(json.dumps({"summary": str(out / "summary.md")}))


if __name__ == "__main__":
    main()
