"""Table row "GDAS-style search (straight-through hard Gumbel, τ 10 -> 0.1)" (issue 3): NB201 /
CIFAR-10 one-shot search, the preset ``--method gdas`` of :mod:`darts_nb201` (same flags, same
reduced budget).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/gdas_nb201.py --seeds 0-2 --out runs/x

Machine and time: the 2-core CPU, no GPU (2026-11-23, load 5-9), 133-199 s wall per search.
Result (seeds 0-2; NB201 200-epoch test accuracy of the found cell, CIFAR-10 / CIFAR-100 /
ImageNet16-120): 64.78 ± 11.73 / 31.89 ± 16.64 / 15.22 ± 4.32. Target (published) 93.61:
missed; falls to parameter-free cells early like SNAS.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "gdas", *sys.argv[1:]]))
