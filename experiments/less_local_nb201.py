"""less-local DARTS (population P=4 in one vmapped step, exploit/explore each epoch; after Bodin
et al., 2021) on NB201 / CIFAR-10: the preset ``--method less-local`` of :mod:`darts_nb201`
(same flags; ``--protocol cpu17`` is issue 17's reduced CPU protocol, the method unchanged; its
equal-compute baseline is ``darts_v1_nb201.py --protocol cpu17 --best-of 4 --seeds 0-11``).

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/less_local_nb201.py --protocol cpu17 \
        --seeds 0-2 --out runs/x

Results: RESULTS.md, "Seventh session: one-shot methods under a reduced CPU protocol
(issue 17)". The default ``--protocol scaled256`` (2026-11-23, 2-core CPU, 453-510 s wall per
search) gave 93.05 ± 0.93 / 70.28 ± 1.55 / 43.25 ± 2.03 (CIFAR-10 / CIFAR-100 /
ImageNet16-120, seeds 0-2) with the α lr scaled 76× the reference, compared with DARTS-V1 at
equal *steps* (less-local costs P = 4×), its final member picked on 64 validation images (now
the whole validation half): a record of that budget, not a less-local result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "less-local", *sys.argv[1:]]))
