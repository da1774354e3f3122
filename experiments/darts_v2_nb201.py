"""Table row "DARTS exact second order (hypergradient through one virtual SGD step)" (issue 3)
on NAS-Bench-201 / CIFAR-10.

A thin preset of :mod:`darts_nb201` (same flags; ``--method darts2`` fixed):

    cd /work/main && JNAS_DATA_DIR=/work/shared/data nice -n 5 \
        python experiments/darts_v2_nb201.py --seeds 0-2 --out runs/darts_nb201

Machine and budget: the project's 2-core CPU, no GPU (load 5-9 while it ran, 2026-11-23);
the reduced budget of :mod:`darts_nb201` (C=4, N=1, batch 16, 1,024/1,024 real CIFAR-10
images, 4 epochs = 256 steps, α lr scaled to the budget). Wall per search: 395-480 s.
Reference budget (GPU): add ``--epochs 50 --set C=16 --set N=5 --set train_size=25000
--set val_size=25000 --set batch_size=64 --no-scale-alpha-lr``.

Result it gave (seeds 0-2, 200-epoch NB201 test accuracy of the found cell, CIFAR-10 /
CIFAR-100 / ImageNet16-120, mean ± std): 91.64 ± 2.00 / 66.49 ± 4.02 / 39.30 ± 6.59.
NB201 paper: 54.30 ± 0.00 (collapse) at the reference budget. ~3.3x the cost of first order per
search.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "darts2", *sys.argv[1:]]))
