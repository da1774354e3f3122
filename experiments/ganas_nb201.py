"""GA-NAS on NAS-Bench-201 vs random search and regularised evolution (same loop, same seeds).

Command (the run recorded in RESULTS.md; 2-core CPU, shared):

    cd /work/main && JNAS_DATA_DIR=/work/shared/data nice -n 10 \
      python experiments/ganas_nb201.py --datasets cifar10 --seeds 0-19 \
      --budget 500 --out /tmp/jnas_ganas

Optional: ``--protocol 200epoch``, ``--datasets cifar10 cifar100 ImageNet16-120``,
``--set key=value`` (GANASConfig overrides), ``--max-params 0.8`` (constrained search:
GA-NAS best cell under the params budget vs the table's true constrained optimum),
``--methods ganas`` (skip the baselines), ``--methods bonas`` (BONAS with its default
``BONASConfig``, k = 10 cells per ask, the same records as ``experiments/bonas_search.py``;
≈ 100-200 CPU-s per 500-query seed). Records of several folders can be merged by
concatenating their ``runs.jsonl`` into one ``OUT``: every seed found there is loaded.

Prints, per dataset, the best signal and the reported score (200-epoch test accuracy of the
best-by-signal cell) at 50/100/200/500 queries (mean ± std over seeds) for every method, each
method minus REA paired by seed (mean ± s.e., seeds ahead/behind), the queries until the
table's best-by-signal cell is first queried, the GA-NAS generator diagnostics per round
(G's end-of-round entropy and distinct fraction of its samples, the proposals' distinct
fraction and entropy -- these differ with ``propose_unseen``, which masks seen cells while
proposing), time per round and compile time, and
writes ``OUT/summary_<dataset>_<protocol>.json``, a best-so-far plot
``OUT/ganas_<dataset>_<protocol>.png`` and ``OUT/runs.jsonl`` (one line per finished seed with
its whole trajectory; a re-run of the same command loads those seeds instead of re-running them).

Results (2-core shared CPU, load 7-20, ``nice -n 10``; mean over seeds; the best signal is the
12-epoch validation accuracy of the best queried cell, "test" the 200-epoch test accuracy of
that cell; at 100 / 200 / 500 queries):

* default config (``g_reset=True, mle_steps=20``), CIFAR-10, seeds 0-19: best signal
  84.48 / 84.89 / 84.89 (REA 84.40 / 84.56 / 84.79), test 94.18 / 94.37 / 94.37 (REA 94.03 /
  94.13 / 94.26); 29 CPU-s per 500-query seed under that load.
* ``--set mle_steps=0`` (D-ranked sampling, the ablation), earlier measurement, seeds 0-19,
  test: 94.31 / 94.37 / 94.37.

Details, the generator diagnostics and the constrained run: RESULTS.md (GA-NAS).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jnas import benchmarks, cost, registry  # noqa: E402
from jnas.config import apply_overrides, config_to_dict, parse_seeds  # noqa: E402
from jnas.gan import GANASConfig, GANASSearcher  # noqa: E402
from jnas.report import load_jsonl, plot_best_so_far, score_at  # noqa: E402
from jnas.rng import as_key  # noqa: E402
from jnas.search import run_search  # noqa: E402
from jnas.spaces import get_space  # noqa: E402

BUDGETS = (50, 100, 200, 500)
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def ceiling(bench, dataset: str, protocol: str, max_params: float | None = None) -> dict:
    """The table's optimum (best reported) and best-by-signal cell, optionally constrained."""
    rep = np.asarray(bench.test_acc[dataset])
    sig = np.asarray(bench.val12[dataset] if protocol == "12epoch" else rep)
    ok = np.ones(len(rep), bool)
    if max_params is not None:
        params = np.array([cost.arch_cost("nb201", bench.arch_at(i),
                                          num_classes=NUM_CLASSES[dataset])["params_M"]
                           for i in range(len(rep))])
        ok = params <= max_params + 1e-9
    i_rep = int(np.argmax(np.where(ok, rep, -np.inf)))
    i_sig = int(np.argmax(np.where(ok, sig, -np.inf)))
    return {"n_feasible": int(ok.sum()), "optimum_reported": float(rep[i_rep]),
            "optimum_arch": str(bench.arch_strings[i_rep]),
            "best_by_signal_reported": float(rep[i_sig]),
            "best_by_signal_arch": str(bench.arch_strings[i_sig])}


def method_config(method: str, dataset: str, overrides, max_params=None):
    """The searcher config a run of ``method`` uses (GA-NAS: ``num_classes`` of the dataset,
    ``--set`` overrides and the params budget; baselines and BONAS: their defaults)."""
    if method == "ganas":
        cfg = apply_overrides(GANASConfig(num_classes=NUM_CLASSES[dataset]), overrides)
        if max_params is not None:
            cfg = apply_overrides(cfg, {"max_params": max_params})
        return cfg
    return registry.get_method(method).default_config()


def run_method(method: str, seeds, bench, dataset, protocol, budget, overrides, max_params=None,
               jsonl: Path | None = None):
    """Runs ``method`` for every seed; each finished seed is appended to ``jsonl`` (one JSON
    line with the whole trajectory and the full searcher config) and a seed already there
    with the same config is loaded instead of re-run (a changed default re-runs it)."""
    sp = get_space("nb201")
    spec = registry.get_method(method)
    cfg = method_config(method, dataset, overrides, max_params)
    cfg_json = json.dumps(config_to_dict(cfg), sort_keys=True)
    out, diags = [], []
    # the full config is the identity of a run (the --set overrides are kept for reading only)
    key = ("method", "dataset", "protocol", "budget", "max_params", "config", "seed")
    done = (load_jsonl([jsonl], key, defaults={"config": None})
            if jsonl is not None and jsonl.exists() else {})
    for seed in seeds:
        tag = (method, dataset, protocol, budget, max_params, cfg_json, seed)
        prev = done.get(tag)
        if prev is not None:
            out.append(prev["result"])
            if prev.get("diag") is not None:
                diags.append(prev["diag"])
            print(f"  {method} seed {seed}: loaded from {jsonl}", flush=True)
            continue
        ev = benchmarks.TabularEvaluator(bench, dataset, protocol)
        if method == "ganas":
            s = GANASSearcher(sp, as_key(seed), cfg)
        else:
            s = spec.load()(sp, as_key(seed), cfg)
        batch = cfg.k if method == "bonas" else 1  # BONAS: one round of k cells per batch
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_search(s, ev, budget, batch, method=method, seed=seed).to_json()
        res["wall_s"] = time.perf_counter() - t0
        res["cpu_s"] = time.process_time() - c0
        out.append(res)
        if method == "ganas":
            rounds = s.rounds
            diags.append({"seed": seed, "compile_s": s.compile_s, "rounds": rounds,
                          "round_s_mean": float(np.mean([r["time_s"] for r in rounds])),
                          "params_M": [cost.arch_cost("nb201", h["arch"],
                                                      num_classes=NUM_CLASSES[dataset])[
                                                          "params_M"]
                                       for h in res["history"] if h.get("new")]})
        if jsonl is not None:
            rec = dict(zip(key, tag), overrides=json.dumps(list(overrides)), result=res,
                       diag=diags[-1] if method == "ganas" else None)
            with open(jsonl, "a") as f:
                f.write(json.dumps(rec, default=float) + "\n")
        print(f"  {method} seed {seed}: " + " ".join(
            f"{b}:{score_at(res, b):.2f}" for b in BUDGETS if b <= budget)
            + f"  wall {res['wall_s']:.1f}s", flush=True)
    return out, diags


def signal_at(result: dict, budget: int) -> float:
    """Best signal (what the searcher sees, e.g. the 12-epoch validation accuracy) among the
    first ``budget`` distinct queries of one run (NaN if it has fewer)."""
    sig = [h["signal"] for h in result["history"] if h.get("new", True)]
    return float(max(sig[:budget])) if len(sig) >= budget else float("nan")


def table(results: dict, budget: int, score=score_at) -> str:
    """Mean ± std over seeds of ``score(result, b)`` (default: the reported score)."""
    bs = [b for b in BUDGETS if b <= budget]
    lines = ["| method | " + " | ".join(f"{b} q" for b in bs) + " |",
             "|---|" + "---|" * len(bs)]
    for m, res in results.items():
        cells = []
        for b in bs:
            v = np.array([score(r, b) for r in res])
            cells.append(f"{v.mean():.2f} ± {v.std():.2f}")
        lines.append(f"| {m} (n={len(res)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(results: dict, budget: int, ref: str = "rea", score=score_at) -> str:
    """Each method minus ``ref`` paired by seed (``score``, default the reported score): mean
    ± standard error of the difference, and seeds ahead / behind (ties not counted)."""
    bs = [b for b in BUDGETS if b <= budget]
    if ref not in results:
        return ""
    by_seed = {r["seed"]: r for r in results[ref]}
    lines = [f"| method − {ref} (paired) | " + " | ".join(f"{b} q" for b in bs) + " |",
             "|---|" + "---|" * len(bs)]
    for m, res in results.items():
        pairs = [(r, by_seed[r["seed"]]) for r in res if m != ref and r["seed"] in by_seed]
        if not pairs:
            continue
        cells = []
        for b in bs:
            d = np.array([score(a, b) - score(c, b) for a, c in pairs])
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.2f} ± {se:.2f} ({(d > 1e-9).sum()}/{(d < -1e-9).sum()})")
        lines.append(f"| {m} (n={len(pairs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def first_hit(results: dict, arch: str, budget: int) -> str:
    """Per method: distinct queries until ``arch`` (the table's best-by-signal cell) is first
    queried, median over the seeds that found it, (found / seeds)."""
    parts = []
    for m, res in results.items():
        qs = []
        for r in res:
            new = [h["arch"] for h in r["history"] if h.get("new", True)][:budget]
            qs.append(new.index(arch) + 1 if arch in new else None)
        found = [q for q in qs if q is not None]
        med = f"{np.median(found):.0f}" if found else "-"
        parts.append(f"{m} {med} ({len(found)}/{len(qs)})")
    return "queries to the best-by-signal cell, median (found/seeds): " + "; ".join(parts)


def round_table(diags: list[dict]) -> str:
    """Per-round generator diagnostics, mean over seeds: G's entropy at the round's end (a
    Monte-Carlo estimate, :data:`jnas.gan.ENTROPY_ESTIMATE`) and distinct fraction of its
    ``g_batch`` samples, then the proposals' distinct fraction and entropy (seen cells
    masked when ``propose_unseen``), D loss, refit NLL per decision, random fill, time."""
    n = min(len(d["rounds"]) for d in diags)
    lines = ["| round | queried before | G entropy (nats) | G unique frac | proposal unique frac "
             "| proposal entropy | D loss | refit NLL | random fill | s/round |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i in sorted(set(range(0, n, max(1, n // 12))) | {n - 1}):
        rs = [d["rounds"][i] for d in diags]

        def f(k):
            return float(np.mean([np.nan if r.get(k) is None else r[k] for r in rs]))
        lines.append(f"| {i + 1} | {f('n_told'):.0f} | {f('g_entropy_end'):.2f} | "
                     f"{f('g_unique_frac'):.3f} | {f('unique_frac'):.3f} | {f('entropy'):.2f} | "
                     f"{f('d_loss'):.3f} | {f('mle_nll'):.3f} | {f('random_fill'):.2f} | "
                     f"{f('time_s'):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["cifar10"])
    ap.add_argument("--protocol", default="12epoch", choices=["12epoch", "200epoch"])
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--methods", default="ganas,rs,rea")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    ap.add_argument("--max-params", type=float, default=None)
    ap.add_argument("--out", default="/tmp/jnas_ganas")
    args = ap.parse_args(argv)
    seeds = parse_seeds(None, args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_load = time.perf_counter()
    bench = benchmarks.load_nb201()
    print(f"loaded NB201 in {time.perf_counter() - t_load:.1f}s", flush=True)
    for ds in args.datasets:
        tag = f"{ds}_{args.protocol}" + (f"_max{args.max_params}" if args.max_params else "")
        print(f"== {ds}, protocol {args.protocol}, seeds {args.seeds}, budget {args.budget}"
              + (f", max_params {args.max_params} M" if args.max_params else ""), flush=True)
        results, diags, cpu = {}, [], {}
        for m in args.methods.split(","):
            res, d = run_method(m, seeds, bench, ds, args.protocol, args.budget,
                                args.overrides if m == "ganas" else [],
                                args.max_params if m == "ganas" else None,
                                jsonl=out / "runs.jsonl")
            results[m] = res
            diags += d
            # per-seed CPU time, loaded seeds included (records before it existed: not counted)
            cpu[m] = float(sum(r.get("cpu_s", 0.0) for r in res))
            missing = sum("cpu_s" not in r for r in res)
            print(f"  {m}: {cpu[m]:.0f} CPU-s for {len(seeds)} seeds"
                  + (f" ({missing} loaded seeds have no CPU record)" if missing else ""),
                  flush=True)
        print("best signal (what the searcher sees; decisions use this):")
        print(table(results, args.budget, signal_at))
        print(paired_table(results, args.budget, score=signal_at))
        print("reported (best-by-signal cell's 200-epoch test accuracy):")
        print(table(results, args.budget))
        print(paired_table(results, args.budget))
        ceil = ceiling(bench, ds, args.protocol, args.max_params)
        print("table:", json.dumps(ceil))
        print(first_hit(results, ceil["best_by_signal_arch"], args.budget))
        summary = {"dataset": ds, "protocol": args.protocol, "seeds": seeds,
                   "budget": args.budget, "overrides": args.overrides,
                   "max_params": args.max_params, "ceiling": ceil,
                   "scores": {m: {b: [score_at(r, b) for r in res] for b in BUDGETS
                                  if b <= args.budget} for m, res in results.items()},
                   "signals": {m: {b: [signal_at(r, b) for r in res] for b in BUDGETS
                                   if b <= args.budget} for m, res in results.items()},
                   "wall_s": {m: [r["wall_s"] for r in res] for m, res in results.items()},
                   "cpu_s": cpu}
        if diags:
            print(round_table(diags))
            comp = [d["compile_s"] for d in diags]
            rmean = [d["round_s_mean"] for d in diags]
            print(f"GA-NAS compile s: first seed {comp[0]:.1f}, later seeds "
                  f"{np.mean(comp[1:]) if len(comp) > 1 else float('nan'):.2f}; "
                  f"steady s/round {np.mean(rmean):.3f} ± {np.std(rmean):.3f}; "
                  f"rounds/seed {np.mean([len(d['rounds']) for d in diags]):.1f}")
            summary["ganas_compile_s"] = comp
            summary["ganas_round_s"] = rmean
            summary["ganas_rounds"] = [d["rounds"] for d in diags]
            if args.max_params:
                allp = [p for d in diags for p in d["params_M"]]
                best = [max(r["trajectory"], key=lambda t: t[0])[1] for r in results["ganas"]]
                hit_opt = np.mean([abs(b - ceil["best_by_signal_reported"]) < 1e-6 for b in best])
                print(f"constrained: max params of any queried cell {max(allp):.4f} M "
                      f"(budget {args.max_params}); GA-NAS best reported "
                      f"{np.mean(best):.2f} ± {np.std(best):.2f}; fraction of seeds ending on "
                      f"the feasible best-by-signal cell {hit_opt:.2f}")
                summary["constrained"] = {"max_queried_params_M": max(allp), "best": best,
                                          "hit_best_by_signal_frac": float(hit_opt)}
        (out / f"summary_{tag}.json").write_text(json.dumps(summary, default=float))
        groups = {m: res for m, res in results.items()}
        p = plot_best_so_far(groups, out / f"ganas_{tag}.png",
                             title=f"NB201 {ds} ({args.protocol})")
        print(f"wrote {out / f'summary_{tag}.json'} and {p}", flush=True)


if __name__ == "__main__":
    main()
