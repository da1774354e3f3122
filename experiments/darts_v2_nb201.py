"""DARTS exact second order (hypergradient through one virtual SGD step; Liu et al., ICLR 2019)
on NB201 / CIFAR-10: the preset ``--method darts2`` of :mod:`darts_nb201` (same flags;
``--protocol cpu17`` is issue 17's reduced CPU protocol, the method unchanged).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/darts_v2_nb201.py --protocol cpu17 \
        --seeds 0-2 --out runs/x

Results: RESULTS.md, "Seventh session: one-shot methods under a reduced CPU protocol
(issue 17)". The default ``--protocol scaled256`` (2026-11-23, 2-core CPU, 395-480 s wall per
search, ~3.3x first order) gave 91.64 ± 2.00 / 66.49 ± 4.02 / 39.30 ± 6.59 (CIFAR-10 /
CIFAR-100 / ImageNet16-120, seeds 0-2) with the α lr scaled 76× the reference: a record of
that budget, not a DARTS-V2 result. The reference search (NB201 paper: 54.30 ± 0.00, the
collapse) needs a GPU; none has been run.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "darts2", *sys.argv[1:]]))
