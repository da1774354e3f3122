"""SNAS (Xie et al., ICLR 2019) on NB201 / CIFAR-10 at the reduced CPU budget of
:mod:`darts_nb201` (the preset ``--method snas``, same flags): a smoke run of the method on a
tiny supernet, **not a method result**.

Command:

    JNAS_DATA_DIR=/work/shared/data python experiments/snas_nb201.py --seeds 0-2 --out runs/x

Defaults since issue 17 (the SNAS code's): the per-edge log resource penalty averaged over
cells (``penalty=edge_log``, ``cost=all``, mild η 1.5e-3), the whole training set
(``split=all``; at this budget 1,024 of its images), α gradient clip 10; drop-path 0.3 is
DARTS-space only, so it does not apply here.

Earlier runs (2026-11-23, 2-core CPU, load 5-9, 102-141 s per search), made with the earlier
defaults (``penalty=total_log cost=flops split=halves``, no α clip) and the α learning rate
scaled 76x the reference (:func:`darts_nb201.scaled_alpha_lr`, 256 steps): NB201 200-epoch
test accuracy of the found cell C10 / C100 / IN16, seeds 0-2: 52.28 ± 0.35 / 10.57 ± 0.06 /
11.33 ± 0.29; with ``--set eta=0`` 68.54 ± 11.62 / 32.26 ± 15.40 / 15.97 ± 4.58. These are
not SNAS results and are not comparable with the published NB201 re-run (92.77 ± 0.83): at
this budget every variant that samples ops (SNAS, GDAS, DARTS with Gumbel samples) drifts to
parameter-free cells whatever the penalty or temperature, while softmax variants do not
(the one-shot review, ``shared/reference/AUDIT.md`` part 1 (b)). The penalty is not needed
for that drift (η=0 drifts too), but it speeds it up: 52.3 ± 0.4 with it against 68.5 ± 11.6
without.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_nb201 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--method", "snas", *sys.argv[1:]]))
