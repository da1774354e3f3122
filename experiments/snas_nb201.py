"""Table row "SNAS (Xie et al., ICLR 2019): single-level Gumbel-softmax, τ 1.0 -> 0.03, mild FLOPs
penalty" (issue 3): NB201 / CIFAR-10 one-shot search, the preset ``--method snas`` of
:mod:`darts_nb201` (same flags, same reduced budget).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/snas_nb201.py --seeds 0-2 --out runs/x

Machine and time: the 2-core CPU, no GPU (2026-11-23, load 5-9), 102-141 s wall per search.
Result (seeds 0-2; NB201 200-epoch test accuracy of the found cell, CIFAR-10 / CIFAR-100 /
ImageNet16-120): 52.28 ± 0.35 / 10.57 ± 0.06 / 11.33 ± 0.29. Target (published re-run) 92.77 ±
0.83: missed. The relaxation moves to parameter-free cells within 1-2 epochs; with ``--set
eta=0`` (no resource penalty) 68.54 ± 11.62 / 32.26 ± 15.40 / 15.97 ± 4.58, so the penalty is
not the cause.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "snas", *sys.argv[1:]]))
