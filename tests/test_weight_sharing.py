"""Tests of jnas.weight_sharing: the BONAS weight-sharing evaluator (Shi et al., arXiv
1911.09336) trains k candidates in one supernet and reads all k out in one compiled program."""
from __future__ import annotations

import numpy as np
import pytest

from jnas.data import mock_cifar
from jnas.spaces import NB201
from jnas.weight_sharing import (WSConfig, WeightSharingEvaluator, arch_masks, make_evaluator,
                                 ws_programs)

_CFG = WSConfig(C=4, N=1, batch_size=8, steps=6, recal_batches=1, eval_batches=2,
                eval_batch_size=8, augment=True)


def _data():
    x, y = mock_cifar(96, 0)
    return (x[:64], y[:64]), (x[64:], y[64:])


def test_arch_masks_one_hot():
    archs = [NB201.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|"
                         "nor_conv_1x1~1|nor_conv_3x3~2|")]
    m = arch_masks(archs)
    assert m.shape == (1, 6, 5) and (m.sum(-1) == 1).all()
    np.testing.assert_array_equal(m[0].argmax(-1), [3, 0, 1, 4, 2, 3])
    with pytest.raises(ValueError, match="NB201"):
        arch_masks(["not an arch"])


def test_weight_sharing_returns_k_scores_from_one_compiled_program():
    tr, va = _data()
    ev = WeightSharingEvaluator(tr, va, key=0, config=_CFG)
    archs = NB201.sample(0, 4)
    s1 = ev.evaluate(archs)
    assert len(s1) == 4 and all(0.0 <= s <= 100.0 for s in s1)
    _, run = ws_programs(_CFG, ev.num_classes, 4, None)
    n_prog = run.num_compiles
    assert ev.last_timing["compile_s"] > 0 and n_prog >= 1  # one program for all k
    assert ev.compile_s == ev.last_timing["compile_s"]
    # the next round of the same k reuses the compiled program (no Python loop over k nets)
    s2 = ev.evaluate(NB201.sample(1, 4))
    assert ev.simulated_cost_s == pytest.approx(ev.simulated_batch_s(archs)
                                                + ev.simulated_batch_s(NB201.sample(1, 4)))
    assert run.num_compiles == n_prog
    assert ev.last_timing["compile_s"] == 0.0
    assert len(s2) == 4 and ev.num_queries == 8
    # determinism: same key and round -> same scores
    ev2 = WeightSharingEvaluator(tr, va, key=0, config=_CFG)
    np.testing.assert_allclose(ev2.evaluate(archs), s1, atol=1e-6)
    # the compiled program is vmapped over masks: its HLO has one training loop
    prog = run.executables[-1]
    assert prog.as_text().count("while") >= 1
    assert ev2.last_timing["compile_s"] == 0.0  # a second evaluator reuses the program


def test_simulated_cost_is_the_merged_supernets():
    from jnas.benchmarks import nb201_cost, simulated_time_s
    tr, va = _data()
    cfg = WSConfig(**{**_CFG.__dict__, "steps": 3125, "batch_size": 8, "recal_batches": 0,
                      "eval_batches": 1})  # read-outs of 8 images: ~1e-4 of the training
    ev = WeightSharingEvaluator(tr, va, config=cfg)
    a = NB201.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|"
                    "nor_conv_3x3~2|")
    counts = [a.ops.count(o) for o in NB201.ops]
    one = float(simulated_time_s(nb201_cost(counts, "cifar10")["flops_M"], 1))
    assert ev.simulated_batch_s([a]) == pytest.approx(one, rel=1e-3)  # 25,000 images: 1 epoch
    assert ev.simulated_batch_s([a, a, a]) == pytest.approx(one, rel=1e-3)  # same supernet
    archs = NB201.sample(0, 8)
    merged = ev.simulated_batch_s(archs)
    alone = [ev.simulated_batch_s([b]) for b in archs]
    assert max(alone) < merged < sum(alone)  # the union costs more than one, less than k
    ind = WeightSharingEvaluator(tr, va, config=WSConfig(**{**cfg.__dict__,
                                                            "mode": "independent"}))
    assert ind.simulated_batch_s(archs) == pytest.approx(np.mean(alone), rel=1e-2)  # steps/k


def test_independent_mode_trains_each_candidate_alone():
    """mode='independent' (the same-total-steps baseline): candidate i's score depends only on
    its own mask and key, not on the other candidates of the round."""
    tr, va = _data()
    cfg = WSConfig(**{**_CFG.__dict__, "mode": "independent", "steps": 8})
    a, b, c = NB201.sample(3, 3)
    s_ab = WeightSharingEvaluator(tr, va, key=0, config=cfg).evaluate([a, b])
    s_ac = WeightSharingEvaluator(tr, va, key=0, config=cfg).evaluate([a, c])
    assert len(s_ab) == 2 and all(0.0 <= s <= 100.0 for s in s_ab)
    np.testing.assert_allclose(s_ab[0], s_ac[0], atol=1e-6)


def test_config_and_input_errors():
    tr, va = _data()
    with pytest.raises(ValueError, match="mode"):
        WeightSharingEvaluator(tr, va, config=WSConfig(mode="alone"))
    with pytest.raises(ValueError, match="eval_batch_size"):
        WeightSharingEvaluator(tr, (va[0][:4], va[1][:4]), config=_CFG)
    with pytest.raises(ValueError, match="valid"):
        make_evaluator("live")
    with pytest.raises(ValueError, match="readout"):
        WeightSharingEvaluator(tr, va, config=WSConfig(readout="loop"))
