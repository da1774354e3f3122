"""BONAS search on NB201 (tabular, ask/tell loop of jnas.search) next to RS and REA.

Command (2-core CPU shared with other jobs; comma lists of datasets/protocols run in one
process, so the compiled GCN programs are shared; set JAX_COMPILATION_CACHE_DIR to also share
them between processes):
    JNAS_DATA_DIR=/work/shared/data nice python experiments/bonas_search.py \
        --dataset cifar10,cifar100,ImageNet16-120 --protocol 12epoch,200epoch \
        --seeds 0-19 --budget 200 --out /tmp/bonas/search.jsonl
    python experiments/bonas_search.py --summarise /tmp/bonas/search.jsonl \
        --dataset cifar10 --protocol 12epoch     # tables only
Protocol '12epoch': the searcher sees the 12-epoch validation accuracy; the reported score is
the 200-epoch test accuracy of the best-by-signal cell (jnas.search.run_search); '200epoch':
signal = reported = the 200-epoch test accuracy. BONAS asks k=10 cells per round
(BONASConfig defaults: 10 random warm-up cells, GCN 100 epochs, BLR on raw embeddings by
evidence maximisation, UCB 0.5 over the official evolutionary pool). Prints a markdown table
per (dataset, protocol): best reported score at 50/100/200 queries (mean ± std over seeds),
queries until a top-0.1 % cell (by 200-epoch test accuracy) is first *queried*, and BONAS
per-round timings; each JSON line also holds ``best_signal`` (the searcher's own column) and,
for BONAS, the simulated cost as table queries and with merged-supernet batches
(:func:`ws_cost`). ``--skip-isomorphs`` counts NB201 isomorphs of queried cells as repeats.
Runtime and results: RESULTS.md (sixth session for the current defaults). NB201 CIFAR-10,
12-epoch protocol, 20 seeds, seeds 0-19, 100 queries (2-core CPU, load 7): 4.5 min wall for
BONAS + REA; BONAS 94.21 ± 0.25 (REA 94.03 ± 0.27). Before the official defaults (random
pool, standardised BLR): 93.97 ± 0.34 at 100 queries, 94.15 ± 0.24 at 200.
``--protocol 200epoch``, 20 seeds per dataset (42-50 CPU-s per 200-query seed at load
5-7, ≈ 200 CPU-s per 500-query seed): CIFAR-10 94.00 / 94.06 / 94.30 at 50 / 100 / 200
(REA 94.02 / 94.26 / 94.34), CIFAR-100 71.97 / 72.37 / 72.92 (REA 72.14 / 72.97 / 73.30),
ImageNet16-120 45.81 / 46.30 / 46.75 (REA 45.91 / 46.35 / 46.79). ``--summarise`` takes a
comma list of files and keeps one record per (method, dataset, protocol, seed), the longest
run; budgets beyond 200 that the records hold (e.g. 500) get their own column.

Weight-sharing mode (real CIFAR-10 images, jnas.weight_sharing):
    JNAS_DATA_DIR=/work/shared/data nice python experiments/bonas_search.py --ws-tau \
        --ws-k 16 --ws-rounds 3 --ws-per-class 500 --set C=4 N=1 steps=300 batch_size=32 \
        recal_batches=2 eval_batches=2 eval_batch_size=250 --out /tmp/bonas/ws.jsonl
trains k random NB201 cells together in one supernet (BONAS) and, separately, each alone for
steps/k steps (same total steps), and prints Kendall tau of both read-outs against the
NB201 200-epoch CIFAR-10 test accuracy, per round and pooled. This command on the shared
2-core CPU: 32.5 min wall, 1,237 CPU-s (≈ 50 s compile per mode); per-round tau
shared 0.055 ± 0.192, independent -0.083 ± 0.139 (pooled 0.086 / -0.086): at this budget
neither read-out ranks cells; a meaningful budget needs a GPU (RESULTS.md, BONAS 4).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jnas.benchmarks import TabularEvaluator, load_nb201
from jnas.config import apply_overrides, parse_seeds
from jnas.registry import get_method
from jnas.report import load_jsonl, score_at
from jnas.rng import as_key
from jnas.search import run_search
from jnas.spaces import get_space


def ws_tau(args) -> None:
    """Kendall tau of weight-shared vs stand-alone read-outs of k random cells (see docstring).

    Per round: k random NB201 cells (the same cells for both modes), tau of each mode's
    read-out against the 200-epoch CIFAR-10 test accuracy. At the end: mean ± std of the
    per-round tau, and tau over all rounds' cells pooled."""
    import dataclasses

    from jnas.data import load_cifar10, search_split
    from jnas.metrics import kendall_tau
    from jnas.weight_sharing import WeightSharingEvaluator, WSConfig
    bench = load_nb201()
    acc = bench.test_acc["cifar10"]
    x, y = load_cifar10("auto", "train", max_per_class=args.ws_per_class)
    tr, va = search_split(x, y, 0)
    base = apply_overrides(WSConfig(), args.set)
    space = get_space("nb201")
    modes = ("shared", "independent")
    evs = {m: WeightSharingEvaluator(tr, va, 0, dataclasses.replace(base, mode=m))
           for m in modes}
    recs = []
    for r in range(args.ws_rounds):
        archs = space.sample(as_key(1000 + r), args.ws_k)
        true = [float(acc[bench.index_of(a)]) for a in archs]
        rec = {"round": r, "k": args.ws_k, "config": dataclasses.asdict(base), "true": true,
               "archs": [a.to_string() for a in archs]}
        for m, ev in evs.items():
            sc = ev.evaluate(archs)
            rec[m] = {"scores": sc, "tau": kendall_tau(true, sc), **ev.last_timing}
        recs.append(rec)
        print(json.dumps(rec), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    true_all = [t for rec in recs for t in rec["true"]]
    print(f"\nk={args.ws_k}, {len(recs)} rounds, {len(tr[0])} train / {len(va[0])} val images")
    for m in modes:
        taus = [rec[m]["tau"] for rec in recs]
        pooled = kendall_tau(true_all, [s for rec in recs for s in rec[m]["scores"]])
        mean_acc = np.mean([s for rec in recs for s in rec[m]["scores"]])
        run_s = np.median([rec[m]["run_s"] for rec in recs])
        print(f"{m}: per-round tau {np.mean(taus):.3f} ± {np.std(taus):.3f} "
              f"({', '.join(f'{t:.2f}' for t in taus)}); pooled tau {pooled:.3f}; "
              f"mean read-out acc {mean_acc:.1f}%; run {run_s:.1f}s per round, "
              f"compile {recs[0][m]['compile_s']:.1f}s")


def ws_cost(new: list[dict], ev, cfg, dataset: str, space) -> dict:
    """Simulated GPU-seconds of a BONAS run's queries: as table queries (each cell trained
    alone for the protocol's epochs, :class:`jnas.benchmarks.TabularEvaluator`'s cost model)
    and with every k-cell batch after the warm-up evaluated by one merged supernet trained
    on as many images as one 12-epoch query (12 x 25,000 images, batch 64; read-outs of
    4 + 4 batches of 250 images per cell; :func:`jnas.weight_sharing.simulated_batch_s`)."""
    from jnas.weight_sharing import WSConfig, simulated_batch_s
    archs = [space.parse(h["arch"]) for h in new]
    tab = [ev.query_cost_s(a) for a in archs]
    wcfg = WSConfig(steps=12 * 25_000 // 64, batch_size=64)
    n0 = cfg.n_init
    ws = sum(tab[:n0]) + sum(simulated_batch_s(archs[i:i + cfg.k], wcfg, dataset)
                             for i in range(n0, len(archs), cfg.k))
    return {"sim_s_tabular": float(sum(tab)), "sim_s_ws": float(ws)}


def _table(rows: list[dict], dataset: str, protocol: str, thr: float, methods: list[str]) -> None:
    """Markdown table of one (dataset, protocol): mean ± std at 50/100/200 queries (and at
    every other budget the records hold, e.g. 500), and the queries until a top-0.1 % cell
    is first queried (median over the seeds that found one)."""
    budgets = sorted({b for r in rows for b in r["best"]} | {50, 100, 200})
    print(f"\n{dataset}, protocol {protocol}, top-0.1% threshold {thr:.2f}")
    print("| method | " + " | ".join(f"@{b}" for b in budgets)
          + " | queries to top 0.1 % (median; found/seeds) | seeds |")
    print("|---|" + "---|" * len(budgets) + "---|---|")
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        cells = []
        for b in budgets:
            v = [r["best"][b] for r in rs if b in r["best"]]
            n = f" (n={len(v)})" if 0 < len(v) < len(rs) else ""  # e.g. fewer 500-query runs
            cells.append(f"{np.mean(v):.2f} ± {np.std(v):.2f}{n}" if v else "-")
        hits = [r["queries_to_top0.1%"] for r in rs  # within 200 queries, as in the paper
                if r["queries_to_top0.1%"] is not None and r["queries_to_top0.1%"] <= 200]
        med = f"{np.median(hits):.0f}" if hits else "-"
        print(f"| {method} | {' | '.join(cells)} | {med} ({len(hits)}/{len(rs)}) | {len(rs)} |")
    rounds = [x for r in rows if r["method"] == "bonas" for x in r.get("rounds", [])]
    if rounds:
        f = lambda k: np.median([x[k] for x in rounds])  # noqa: E731
        print(f"\nBONAS round (median of {len(rounds)}): GCN retrain {f('gcn_s'):.2f}s, "
              f"BLR {f('blr_s'):.3f}s, candidate sampling {f('sample_s'):.2f}s, "
              f"acquisition over {f('n_candidates'):.0f} candidates {f('acq_s'):.2f}s, "
              f"total {f('total_s'):.2f}s; compile (first round per data bucket) "
              f"{max(x['compile_s'] for x in rounds):.1f}s max")


def _load_records(paths: list[str]) -> list[dict]:
    """Records of one or more JSONL files; one record per (method, dataset, protocol, seed):
    where a seed was run twice (e.g. to 200 and to 500 queries) the longer run is kept (runs
    are deterministic in the seed, so the shorter one is its prefix)."""
    longest = lambda r: max(int(b) for b in r["best"])  # noqa: E731
    recs = load_jsonl(paths, ("method", "dataset", "protocol", "seed"),
                      defaults={"protocol": "12epoch"},  # records before the field existed
                      keep=lambda new, old: longest(new) > longest(old))
    for r in recs.values():
        r["best"] = {int(k): v for k, v in r["best"].items()}
    return list(recs.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cifar10",
                    help="comma list of cifar10, cifar100, ImageNet16-120 (one process shares "
                         "the compiled GCN programs across them)")
    ap.add_argument("--protocol", default="12epoch", help="comma list of 12epoch, 200epoch")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--methods", default="bonas,rs,rea")
    ap.add_argument("--set", nargs="*", default=[], help="BONASConfig overrides key=value")
    ap.add_argument("--out", default=None)
    ap.add_argument("--skip-isomorphs", action="store_true",
                    help="run_search(skip_isomorphs=True): NB201 isomorphs of queried cells "
                         "are repeats, not queries")
    ap.add_argument("--summarise", default=None,
                    help="only print the tables of JSONL files (comma list)")
    ap.add_argument("--ws-tau", action="store_true", help="weight-sharing tau experiment")
    ap.add_argument("--ws-k", type=int, default=8)
    ap.add_argument("--ws-rounds", type=int, default=3)
    ap.add_argument("--ws-per-class", type=int, default=1000)
    args = ap.parse_args()
    if args.ws_tau:
        return ws_tau(args)
    bench = load_nb201()
    space = get_space("nb201")
    combos = [(d, p) for d in args.dataset.split(",") for p in args.protocol.split(",")]
    methods = args.methods.split(",")
    rows: list[dict] = []
    if args.summarise:
        rows = _load_records(args.summarise.split(","))
        methods = list(dict.fromkeys(r["method"] for r in rows))
    for dataset, protocol in combos:
        acc = bench.test_acc[dataset]
        thr = np.sort(acc)[::-1][int(np.ceil(0.001 * len(acc))) - 1]  # top 0.1 % = best 16
        for method in ([] if args.summarise else methods):
            spec = get_method(method)
            cfg = apply_overrides(spec.config_cls(), args.set if method == "bonas" else None)
            batch = cfg.k if method == "bonas" else 1
            for seed in parse_seeds(None, args.seeds):
                ev = TabularEvaluator(bench, dataset, protocol)
                searcher = spec.load()(space, as_key(seed), cfg)
                t0 = time.perf_counter()
                c0 = time.process_time()
                res = run_search(searcher, ev, args.budget, batch, method=method, seed=seed,
                                 config=cfg, skip_isomorphs=args.skip_isomorphs)
                new = [h for h in res.history if h.get("new", True)]  # distinct queries only
                hit = next((i + 1 for i, h in enumerate(new)
                            if acc[bench.index_of(h["arch"])] >= thr), None)
                rec = {"method": method, "seed": seed, "dataset": dataset, "protocol": protocol,
                       "skip_isomorphs": args.skip_isomorphs,
                       "best": {b: score_at(res.to_json(), b) for b in sorted({50, 100, 200, args.budget})
                                if b <= args.budget},
                       "best_signal": {b: max(h["signal"] for h in new[:b])
                                       for b in sorted({50, 100, 200, args.budget})
                                       if b <= len(new)},
                       "queries_to_top0.1%": hit, "wall_s": time.perf_counter() - t0,
                       "cpu_s": time.process_time() - c0, "best_arch": res.best_arch}
                if method == "bonas":
                    rec["rounds"] = searcher.round_log
                    rec.update(ws_cost(new, ev, cfg, dataset, space))
                rows.append(rec)
                print(json.dumps({k: v for k, v in rec.items() if k != "rounds"}), flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
        sel = [r for r in rows if r["dataset"] == dataset and r["protocol"] == protocol]
        _table(sel, dataset, protocol, thr, methods)


if __name__ == "__main__":
    main()
