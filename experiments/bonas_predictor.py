"""BONAS predictor quality (paper Table 1 style): GCN (+ BLR mean) vs an MLP on the one-hot
encoding, trained on n random NB201 cells, ranked against the 200-epoch CIFAR-10 test accuracy
of all 15,625 cells (Kendall tau, Spearman rho).

Command (2-core CPU shared with other jobs):
    JNAS_DATA_DIR=/work/shared/data nice python experiments/bonas_predictor.py \
        --sizes 50,100,200,500,1000 --seeds 0-9 --out /tmp/bonas/predictor.jsonl
Prints one JSON line per (size, seed, model) and a markdown summary table (mean ± std over
seeds). Runtime and the numbers obtained are recorded in RESULTS.md. The full command above
(bidirectional GCN, 10 seeds) took 7.5 min wall, 4 CPU-min, on the shared 2-core CPU (load
about 6). Kendall τ, GCN vs MLP: 0.36 vs 0.33 at 50 cells, 0.45 vs 0.40 at 100, 0.52 vs 0.56 at
200, 0.60 vs 0.64 at 500, 0.68 vs 0.73 at 1000 (the GCN+BLR mean is within 0.04 of the GCN).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jnas.benchmarks import load_nb201
from jnas.bo import fit_blr, logit, to_accuracy_space
from jnas.config import parse_seeds
from jnas.gcn import PredictorConfig, graphs_to_arrays, train_predictor
from jnas.metrics import kendall_tau, spearman_rho
from jnas.rng import np_rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50,100,200,500,1000")
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--out", default=None)
    ap.add_argument("--unidirectional", action="store_true",
                    help="GCN messages only along the edges (the first version of jnas.gcn)")
    ap.add_argument("--summarise", default=None, help="only print the table of a JSONL file")
    args = ap.parse_args()
    if args.summarise:
        return _table([json.loads(line) for line in open(args.summarise)])
    bench = load_nb201()
    y_all = bench.test_acc[args.dataset] / 100.0
    archs = [bench.arch_at(i) for i in range(len(bench))]
    t0 = time.perf_counter()
    data = graphs_to_arrays([a.to_graph() for a in archs], n_max=8)
    print(f"# encoded {len(archs)} graphs in {time.perf_counter() - t0:.1f}s", flush=True)
    rows = []
    fh = open(args.out, "a") if args.out else None
    for n in [int(s) for s in args.sizes.split(",")]:
        for seed in parse_seeds(None, args.seeds):
            idx = np_rng(seed * 7919 + n).choice(len(archs), size=n, replace=False)
            tr = data.take(idx)
            for model in ("gcn", "mlp"):
                cfg = PredictorConfig(model=model, epochs=args.epochs,
                                      bidirectional=not args.unidirectional)
                p = train_predictor(tr, y_all[idx], seed, cfg)
                t1 = time.perf_counter()
                pred, emb = p.predict(data)
                rec = {"n": n, "seed": seed, "model": model, "train_s": round(p.train_s, 2),
                       "compile_s": round(p.compile_s, 2),
                       "tau": kendall_tau(y_all, pred), "rho": spearman_rho(y_all, pred)}
                if model == "gcn":
                    post = fit_blr(emb[idx], logit(y_all[idx]))
                    mean, _ = to_accuracy_space(*post.predict(emb))
                    rec.update(tau_blr=kendall_tau(y_all, mean), rho_blr=spearman_rho(y_all, mean))
                rec["predict_s"] = round(time.perf_counter() - t1, 2)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
                if fh:
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
    _table(rows)


def _table(rows: list[dict]) -> None:
    print("\n| train cells | GCN τ | GCN+BLR τ | MLP τ | GCN ρ | GCN+BLR ρ | MLP ρ | seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in rows}):
        g = [r for r in rows if r["n"] == n and r["model"] == "gcn"]
        m = [r for r in rows if r["n"] == n and r["model"] == "mlp"]
        f = lambda rs, k: f"{np.mean([r[k] for r in rs]):.3f} ± {np.std([r[k] for r in rs]):.3f}"  # noqa
        print(f"| {n} | {f(g, 'tau')} | {f(g, 'tau_blr')} | {f(m, 'tau')} | {f(g, 'rho')} | "
              f"{f(g, 'rho_blr')} | {f(m, 'rho')} | {len(g)} |")


if __name__ == "__main__":
    main()
