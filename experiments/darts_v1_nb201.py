"""Table row "DARTS first order (Liu et al., ICLR 2019)" (issue 3): NB201 / CIFAR-10 one-shot
search, the preset ``--method darts`` of :mod:`darts_nb201` (same flags, same reduced budget).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/darts_v1_nb201.py --seeds 0-2 --out runs/x

Machine and time: the 2-core CPU, no GPU (2026-11-23, load 5-9), 121-219 s wall per search.
Result (seeds 0-2; NB201 200-epoch test accuracy of the found cell, CIFAR-10 / CIFAR-100 /
ImageNet16-120): 92.08 ± 0.67 / 67.52 ± 1.76 / 39.34 ± 4.36. Expected at the reference budget:
the known collapse towards skip connections (NB201 paper: 54.30 ± 0.00 on CIFAR-10). Not
reached in 256 steps: the cells stay mostly convolutional.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "darts", *sys.argv[1:]]))
