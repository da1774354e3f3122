"""Tests for jnas.cost: the one params/FLOPs counter, taking a space name or object."""
import numpy as np
import pytest

from jnas import benchmarks, cost, spaces


def test_space_name_or_object_give_the_same_costs():
    a = spaces.NB201.sample(0, 1)[0]
    assert cost.arch_cost(spaces.NB201, a) == cost.arch_cost("nb201", a.to_string())
    for key in ("params", "flops"):
        np.testing.assert_array_equal(cost.op_costs(spaces.NB201)[key],
                                      cost.op_costs("nb201")[key])
        np.testing.assert_array_equal(cost.cell_costs(spaces.NB201, a)[key],
                                      cost.cell_costs("nb201", a)[key])
    g = spaces.DARTS.sample(0, 1)[0]
    assert cost.arch_cost(spaces.DARTS, g) == cost.arch_cost("darts", g.to_string())
    with pytest.raises(ValueError, match="unknown space 'nb999'"):
        cost.arch_cost("nb999", a)


def test_cells_arch_cost_takes_a_space_object():
    from jnas import cells
    a = spaces.NB201.sample(1, 1)[0]
    assert cells.arch_cost(spaces.NB201, a) == cost.arch_cost("nb201", a)


def test_reference_cost_is_the_benchmark_counter():
    for counts in ([6, 0, 0, 0, 0], [0, 0, 0, 6, 0], [1, 1, 2, 1, 1]):
        for ds in benchmarks.DATASETS:
            assert benchmarks.nb201_cost(counts, ds) == cost.nb201_reference_cost(counts, ds)
    allconv = cost.nb201_reference_cost([0, 0, 0, 6, 0], "cifar10")
    assert allconv["flops_M"] == pytest.approx(222.86, abs=0.01)
    assert allconv["params_M"] == pytest.approx(1.5315, abs=1e-4)
    with pytest.raises(ValueError, match="unknown NB201 dataset"):
        cost.nb201_reference_cost([6, 0, 0, 0, 0], "mnist")
