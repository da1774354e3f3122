"""ReNAS predictor quality: Kendall tau vs training-set size, ranking loss vs MSE.

Xu et al., CVPR 2021 (arXiv 1910.01523), Table 2/3 protocol: train the ReNAS CNN on N random
cells (whole set as one batch, Adam 1e-3, keep the best training tau), then Kendall tau /
Spearman rho / precision@k of its predictions on *all other* cells of the table.
NB201: labels = 200-epoch test accuracy (``--dataset``), sizes 16/78/156/781 = 0.1/0.5/1/5 %.
NB101: the deduplicated cells of the NASLib 500-cell subset (108-epoch validation accuracy).

Command (2-core CPU shared with 7 other jobs, see RESULTS.md for what ran):
  JNAS_DATA_DIR=/work/shared/data nice python experiments/renas_predictor.py \
      --space nb201 --sizes 16,78,156 --seeds 0-2 --losses rank,mse --out /tmp/renas_pred.jsonl
Prints and appends one JSON line per (space, size, loss, seed).
Ran (2-core CPU, heavily shared, 40-260 s per run): NB201 tau rank/MSE 0.31/0.28 (16 cells),
0.49/0.23 (78), 0.59/0.34 (156); NB101 0.58/0.47 (100), 0.69/0.51 (200); 2-3 seeds each,
table in RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jnas import renas
from jnas.cli import parse_seeds
from jnas.metrics import kendall_tau, precision_at_k, spearman_rho


def _table(space: str, dataset: str) -> tuple[list, np.ndarray]:
    from jnas import benchmarks
    if space == "nb201":
        b = benchmarks.load_nb201()
        return [b.arch_at(i) for i in range(len(b))], np.asarray(b.test_acc[dataset])
    t = benchmarks.load_nb101_json()
    return list(t.archs), np.asarray(t.signal)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nb201", choices=("nb201", "nb101"))
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--sizes", default="16,78,156,781")
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--losses", default="rank,mse")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--out", default=None, help="append JSON lines here")
    a = p.parse_args(argv)
    archs, y = _table(a.space, a.dataset)
    x = renas.features(a.space, archs)
    for size in [int(s) for s in a.sizes.split(",")]:
        for seed in parse_seeds(None, a.seeds):
            rng = np.random.default_rng(seed)
            perm = rng.permutation(len(archs))
            tr, te = perm[:size], perm[size:]
            for loss in a.losses.split(","):
                t0 = time.time()
                tp = renas.train_predictor(seed, x[tr], y[tr], epochs=a.epochs, loss=loss)
                pred = tp.predict(x[te])
                rec = {"space": a.space, "dataset": a.dataset, "size": size, "seed": seed,
                       "loss": loss, "epochs": a.epochs, "n_test": int(te.size),
                       "tau": kendall_tau(y[te], pred), "rho": spearman_rho(y[te], pred),
                       "p@10": precision_at_k(y[te], pred, 10),
                       "p@1%": precision_at_k(y[te], pred, max(1, te.size // 100)),
                       "train_tau": tp.best_train_tau, "best_epoch": tp.best_epoch,
                       "wall_s": round(time.time() - t0, 1)}
                print(json.dumps(rec), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
