"""Table row "less-local DARTS (population P=4 in one vmapped step, exploit/explore each epoch)"
(issue 3): NB201 / CIFAR-10 one-shot search, the preset ``--method less-local`` of
:mod:`darts_nb201` (same flags, same reduced budget).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/less_local_nb201.py --seeds 0-2 --out runs/x

Machine and time: the 2-core CPU, no GPU (2026-11-23, load ~5), 453-510 s wall per search.
Result (seeds 0-2; NB201 200-epoch test accuracy of the found cell, CIFAR-10 / CIFAR-100 /
ImageNet16-120): 93.05 ± 0.93 / 70.28 ± 1.55 / 43.25 ± 2.03 (re-run after the split-order fix
of the third session; before it 93.13 ± 0.54). Target ≥ 93.5 and no collapse: no collapse,
target missed by 0.45 (3 seeds; not significantly better than DARTS-V1 here). The final member
choice uses the discretised cells' validation accuracy, which is about chance (3-19 % on 64
images) at this budget, so it is close to arbitrary.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "less-local", *sys.argv[1:]]))
