"""ReNAS predictor quality: Kendall tau vs training-set size, ranking loss vs MSE vs BONAS GCN.

Xu et al., CVPR 2021 (arXiv 1910.01523), Table 2/3 protocol: train the ReNAS CNN on N random
cells (whole set as one batch, Adam 1e-3, keep the best training tau), then Kendall tau /
Spearman rho / precision@k of its predictions on *all other* cells of the table.
NB201: labels = 200-epoch test accuracy (``--dataset``), sizes 16/78/156/781 = 0.1/0.5/1/5 %.
NB101: the deduplicated cells of the NASLib 500-cell subset (108-epoch validation accuracy).

``--losses`` picks the predictors: ``rank`` (ReNAS, pairwise logistic loss), ``mse`` (the
same CNN regressed with MSE, the paper's ablation) and ``gcn`` (the BONAS GCN of
:mod:`jnas.gcn`, Shi et al., NeurIPS 2020, default :class:`~jnas.gcn.PredictorConfig`: 4
bidirectional layers, hidden 64, exp(y-1)-weighted MSE, 100 epochs, batch 128; ``tau`` is its
head, ``tau_blr`` the mean of the Bayesian linear regression on its embedding). All three
see the same split for a given (size, seed): ``np.random.default_rng(seed).permutation``.

Commands (2-core CPU shared with 3 other jobs; timings and results in RESULTS.md, ReNAS):
  JNAS_DATA_DIR=/work/shared/data nice -n 10 python experiments/renas_predictor.py \
      --space nb201 --sizes 16,78,156 --seeds 0-9 --losses rank,mse,gcn --out FILE.jsonl
  python experiments/renas_predictor.py --summarise FILE.jsonl [FILE2.jsonl ...]
Prints and appends one JSON line per (space, size, loss, seed); ``--summarise`` prints the
mean ± std table per (space, size, loss) over the seeds found (later duplicates win).
Result (NB201 C10, 10 seeds at every size): Kendall tau rank / mse / GCN = 0.35 / 0.23 / 0.15
(16 cells), 0.52 / 0.23 / 0.44 (78), 0.58 / 0.31 / 0.50 (156), 0.69 / 0.46 / 0.65 (781);
NB101 (``--space nb101 --sizes 100,200``, 10 seeds): 0.57 / 0.46 / 0.53 and 0.67 / 0.50 / 0.61.
CPU per CNN run: 4 s (16 cells) to ~130 s (781); GCN 1-10 s.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from jnas.report import load_jsonl
from jnas import renas
from jnas.config import parse_seeds
from jnas.metrics import kendall_tau, precision_at_k, spearman_rho

LOSSES = ("rank", "mse", "gcn")


def _table(space: str, dataset: str) -> tuple[list, np.ndarray]:
    from jnas import benchmarks
    if space == "nb201":
        b = benchmarks.load_nb201()
        return [b.arch_at(i) for i in range(len(b))], np.asarray(b.test_acc[dataset])
    t = benchmarks.load_nb101_json()
    return list(t.archs), np.asarray(t.signal)


def _gcn_scores(data: Any, y: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int,
                epochs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """BONAS GCN head and GCN+BLR mean predictions on ``te`` after training on ``tr``
    (``data``: :func:`jnas.gcn.graphs_to_arrays` of every cell)."""
    from jnas.bo import fit_blr, logit, to_accuracy_space
    from jnas.gcn import PredictorConfig, train_predictor
    scale = 100.0 if y.max() > 1.0 else 1.0
    p = train_predictor(data.take(tr), y[tr] / scale, seed, PredictorConfig(epochs=epochs))
    pred, emb = p.predict(data)
    post = fit_blr(emb[tr], logit(y[tr] / scale))
    mean, _ = to_accuracy_space(*post.predict(emb[te]))
    return pred[te], mean, p.compile_s


def summarise(paths: list[str]) -> None:
    """Prints the markdown table (mean ± std over seeds, ddof 0) of JSON-line result files."""
    recs = load_jsonl(paths, ("space", "dataset", "size", "loss", "seed"))
    groups: dict[tuple, list[dict]] = {}
    for (sp, ds, size, loss, _), r in sorted(recs.items()):
        groups.setdefault((sp, ds, size, loss), []).append(r)
    def f(rs: list[dict], k: str) -> str:
        v = [r[k] for r in rs]
        return f"{np.mean(v):.3f} ± {np.std(v):.3f}"

    print("| space | train size | predictor | seeds | Kendall τ | Spearman ρ | p@1% | "
          "GCN+BLR τ | wall s/run | CPU s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    order = {k: i for i, k in enumerate(LOSSES)}
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 9))):
        rs = groups[key]
        blr = f(rs, "tau_blr") if "tau_blr" in rs[0] else ""
        print(f"| {key[0]} | {key[2]} | {key[3]} | {len(rs)} | {f(rs, 'tau')} | {f(rs, 'rho')} "
              f"| {np.mean([r['p@1%'] for r in rs]):.3f} | {blr} | "
              f"{np.median([r['wall_s'] for r in rs]):.0f} | "
              f"{np.nanmedian([r.get('cpu_s', np.nan) for r in rs]):.0f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nb201", choices=("nb201", "nb101"))
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--sizes", default="16,78,156,781")
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--losses", default="rank,mse,gcn", help=f"subset of {','.join(LOSSES)}")
    p.add_argument("--epochs", type=int, default=200, help="ReNAS CNN epochs (paper: 200)")
    p.add_argument("--gcn-epochs", type=int, default=100, help="BONAS GCN epochs (paper: 100)")
    p.add_argument("--out", default=None, help="append JSON lines here")
    p.add_argument("--summarise", nargs="+", default=None, metavar="JSONL",
                   help="only print the summary table of these result files")
    a = p.parse_args(argv)
    if a.summarise:
        return summarise(a.summarise)
    losses = [s for s in a.losses.split(",") if s]
    bad = [s for s in losses if s not in LOSSES]
    if bad:
        p.error(f"--losses: unknown {bad}; valid: {','.join(LOSSES)}")
    archs, y = _table(a.space, a.dataset)
    x = renas.features(a.space, archs)
    graphs = None
    if "gcn" in losses:
        from jnas.gcn import graphs_to_arrays
        graphs = graphs_to_arrays([a.to_graph() for a in archs])
    for size in [int(s) for s in a.sizes.split(",")]:
        if not 2 <= size < len(archs):
            p.error(f"--sizes: {size} is not in [2, {len(archs) - 1}] ({len(archs)} cells)")
        for seed in parse_seeds(None, a.seeds):
            rng = np.random.default_rng(seed)
            perm = rng.permutation(len(archs))
            tr, te = perm[:size], perm[size:]
            for loss in losses:
                t0 = time.time()
                c0 = time.process_time()
                extra = {}
                if loss == "gcn":
                    pred, blr, comp = _gcn_scores(graphs, y, tr, te, seed, a.gcn_epochs)
                    extra = {"tau_blr": kendall_tau(y[te], blr), "compile_s": round(comp, 1),
                             "epochs": a.gcn_epochs}
                else:
                    tp = renas.train_predictor(seed, x[tr], y[tr], epochs=a.epochs, loss=loss)
                    pred = tp.predict(x[te])
                    extra = {"train_tau": tp.best_train_tau, "best_epoch": tp.best_epoch,
                             "epochs": a.epochs}
                rec = {"space": a.space, "dataset": a.dataset, "size": size, "seed": seed,
                       "loss": loss, "n_test": int(te.size),
                       "tau": kendall_tau(y[te], pred), "rho": spearman_rho(y[te], pred),
                       "p@10": precision_at_k(y[te], pred, 10),
                       "p@1%": precision_at_k(y[te], pred, max(1, te.size // 100)),
                       **extra, "wall_s": round(time.time() - t0, 1),
                       "cpu_s": round(time.process_time() - c0, 1)}
                print(json.dumps(rec), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
