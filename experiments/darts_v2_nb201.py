"""Table row "DARTS exact second order (hypergradient through one virtual SGD step)" (issue 3):
NB201 / CIFAR-10 one-shot search, the preset ``--method darts2`` of :mod:`darts_nb201` (same
flags, same reduced budget).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/darts_v2_nb201.py --seeds 0-2 --out runs/x

Machine and time: the 2-core CPU, no GPU (2026-11-23, load 5-9), 395-480 s wall per search.
Result (seeds 0-2; NB201 200-epoch test accuracy of the found cell, CIFAR-10 / CIFAR-100 /
ImageNet16-120): 91.64 ± 2.00 / 66.49 ± 4.02 / 39.30 ± 6.59. NB201 paper: 54.30 ± 0.00
(collapse) at the reference budget. ~3.3x the cost of first order per search.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "darts2", *sys.argv[1:]]))
