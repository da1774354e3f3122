"""Table row "GDAS-style search (straight-through hard Gumbel, τ 10 -> 0.1)" (issue 3) on NAS-
Bench-201 / CIFAR-10.

A thin preset of :mod:`darts_nb201` (same flags; ``--method gdas`` fixed):

    cd /work/main && JNAS_DATA_DIR=/work/shared/data nice -n 5 \
        python experiments/gdas_nb201.py --seeds 0-2 --out runs/darts_nb201

Machine and budget: the project's 2-core CPU, no GPU (load 5-9 while it ran, 2026-11-23);
the reduced budget of :mod:`darts_nb201` (C=4, N=1, batch 16, 1,024/1,024 real CIFAR-10
images, 4 epochs = 256 steps, α lr scaled to the budget). Wall per search: 133-199 s.
Reference budget (GPU): add ``--epochs 50 --set C=16 --set N=5 --set train_size=25000
--set val_size=25000 --set batch_size=64 --no-scale-alpha-lr``.

Result it gave (seeds 0-2, 200-epoch NB201 test accuracy of the found cell, CIFAR-10 /
CIFAR-100 / ImageNet16-120, mean ± std): 64.78 ± 11.73 / 31.89 ± 16.64 / 15.22 ± 4.32.
Target (published) 93.61: missed; falls to parameter-free cells early like SNAS.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "gdas", *sys.argv[1:]]))
