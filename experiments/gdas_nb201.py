"""GDAS (straight-through hard Gumbel, τ 10 -> 0.1, only the sampled op computed; Dong & Yang,
CVPR 2019) on NB201 / CIFAR-10: the preset ``--method gdas`` of :mod:`darts_nb201` (same flags;
``--protocol cpu17`` is issue 17's reduced CPU protocol, the method unchanged).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/gdas_nb201.py --protocol cpu17 \
        --seeds 0-2 --out runs/x

Results: RESULTS.md, "Seventh session: one-shot methods under a reduced CPU protocol
(issue 17)". The default ``--protocol scaled256`` (2026-11-23, 2-core CPU, 133-199 s wall per
search) gave 64.78 ± 11.73 / 31.89 ± 16.64 / 15.22 ± 4.32 (CIFAR-10 / CIFAR-100 /
ImageNet16-120, seeds 0-2), but it is **not a GDAS result**: the α lr was scaled 76× the
reference (under it every op-sampling variant drifts to parameter-free cells within ~64
steps) and the step then computed every op, not GDAS's sampled-op forward. The published
93.61 ± 0.09 needs the reference search on a GPU; none has been run.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "gdas", *sys.argv[1:]]))
