"""One-shot searches on NAS-Bench-201 / CIFAR-10 at a reduced CPU budget, scored by the table.

Command (one method per call; each seed writes OUT/METHOD/seed_S/result.json + alpha.png):

    JNAS_DATA_DIR=/work/shared/data nice python experiments/darts_nb201.py \
        --method darts --seeds 0-2 --out runs/darts_nb201

Reduced budget (2-core CPU, no GPU): the tiny supernet C=4, N=1, batch 16, 1,024/1,024
images of the stratified search split of the real CIFAR-10 training set (shared JPEG zip), 4
epochs = 256 steps; α Adam lr scaled to the budget (:func:`scaled_alpha_lr`, 0.0229) so that α
can travel as far as in the reference search. The reference budget (C=16, N=5, 50 epochs,
25k/25k, a_lr 3e-4) needs a GPU: ``--epochs 50 --set C=16 --set N=5 --set train_size=25000
--set val_size=25000 --set batch_size=64 --no-scale-alpha-lr``.

Results it gave (2026-11-23, 2-core CPU at load 5-9, seeds 0-2; C10 / C100 / IN16 200-epoch
test accuracy of the found cell, mean ± std; wall per search):

* ``--method darts``:      92.08 ± 0.67 / 67.52 ± 1.76 / 39.34 ± 4.36   (121-219 s)
* ``--method darts2``:     91.64 ± 2.00 / 66.49 ± 4.02 / 39.30 ± 6.59   (395-480 s)
* ``--method snas``:       52.28 ± 0.35 / 10.57 ± 0.06 / 11.33 ± 0.29   (102-141 s)
* ``--method snas --set eta=0``: 68.54 ± 11.62 / 32.26 ± 15.40 / 15.97 ± 4.58
* ``--method gdas``:       64.78 ± 11.73 / 31.89 ± 16.64 / 15.22 ± 4.32 (133-199 s)
* ``--method less-local``: 93.05 ± 0.93 / 70.28 ± 1.55 / 43.25 ± 2.03   (453-510 s; re-run
  after the split-order fix of the third session; before it 93.13 ± 0.54)

SNAS and GDAS fall to parameter-free cells within 1-2 epochs at this budget; DARTS does not
reach its known skip collapse in 256 steps. Discussion: RESULTS.md (issue 3 section).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jnas.cli import main as cli

#: Reduced budget for a 2-core CPU: tiny supernet, 1,024/1,024 images, 4 epochs of 64 steps.
REDUCED = ["C=4", "N=1", "batch_size=16", "train_size=1024", "val_size=1024", "eval_batches=4"]
EXTRA = {"snas": [], "gdas": [], "darts": [], "darts2": [], "less-local": ["population=4"]}
#: Steps of the reference DARTS search (50 epochs of 25,000 / 64 images).
REFERENCE_STEPS = 50 * (25000 // 64)
REFERENCE_A_LR = 3e-4


def scaled_alpha_lr(steps: int) -> float:
    """α learning rate that lets α travel as far in ``steps`` Adam steps as the reference
    3e-4 does in the reference search (Adam moves each entry by about lr per step)."""
    return REFERENCE_A_LR * REFERENCE_STEPS / max(steps, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--method", required=True, choices=sorted(EXTRA))
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-scale-alpha-lr", action="store_true",
                   help="keep the reference a_lr=3e-4 instead of scaling it to the budget")
    p.add_argument("--out", default="runs/darts_nb201")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    a = p.parse_args(argv)
    out = Path(a.out) / a.method
    args = ["search", a.method, "--space", "nb201", "--dataset", "cifar10", "--epochs",
            str(a.epochs), "--seeds", a.seeds, "--out", str(out)]
    extra = list(REDUCED + EXTRA[a.method])
    if not a.no_scale_alpha_lr:
        kv = dict(o.split("=", 1) for o in extra + a.overrides)
        steps = a.epochs * (min(int(kv["train_size"]), int(kv["val_size"]))
                            // int(kv["batch_size"]))
        extra.append(f"a_lr={scaled_alpha_lr(steps):.4g}")
    for s in extra + a.overrides:
        args += ["--set", s]
    rc = cli(args)
    rows = [json.loads(f.read_text()) for f in sorted(out.glob("seed_*/result.json"))]
    accs = {ds: [r["bench"][f"test_accuracy_{ds}"] for r in rows]
            for ds in ("cifar10", "cifar100", "ImageNet16-120")}
    walls = [r["wall_s"] for r in rows]
    summary = {"method": a.method, "n": len(rows), "archs": [r["best_arch"] for r in rows],
               **{f"{ds}_mean": float(np.mean(v)) for ds, v in accs.items()},
               **{f"{ds}_std": float(np.std(v)) for ds, v in accs.items()},
               "wall_s_mean": float(np.mean(walls)),
               "compile_s_mean": float(np.mean([r["compile_s"] for r in rows]))}
    print(json.dumps(summary), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
