"""Tests of GDAS's sampled-op forward (jnas.cells_gdas): the estimator against a direct
implementation of xautodl's ``forward_gdas`` formula on a toy cell, the full supernet against
the mixed-op supernet, and the executed FLOPs against DARTS (XLA cost analysis)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnas import cells, relax, xla
from jnas.cells_gdas import NB201SampledSupernet, sampled_edge
from jnas.layers import avg_pool, batch_norm_train

from conftest import randn


def _bn(y):
    c = y.shape[-1]
    return batch_norm_train(y, jnp.ones((c,)), jnp.zeros((c,)), 1e-5)[0]


def _conv(x, k):
    p = (k.shape[0] - 1) // 2
    return jax.lax.conv_general_dilated(jax.nn.relu(x), k, (1, 1), ((p, p), (p, p)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _reference_edge(x, h, k1, k3, idx):
    """xautodl: sum(h[k] * op_k(x) if k == argmax else h[k] for k) with every op computed."""
    ops = [x * 0.0, x, _bn(_conv(x, k1)), _bn(_conv(x, k3)), avg_pool(x)]
    return sum(h[k] * ops[k] if k == idx else h[k] for k in range(5))


def test_sampled_edge_matches_xautodl_formula_values_and_gradients(key):
    kg = jax.random.split(key, 6)[4]  # the Gumbel samples' key
    x = randn(20, (8, 6, 6, 4))
    kern = {"k1": 0.5 * randn(21, (3, 1, 1, 4, 4)),
            "k3": 0.2 * randn(22, (3, 3, 3, 4, 4))}
    alpha = randn(23, (3, 5))
    target = randn(24, (8, 6, 6, 4))
    for trial in range(4):  # different samples select different ops
        g = jax.random.fold_in(kg, trial)
        idx = [int(i) for i in np.argmax(np.asarray(relax.hard_gumbel(g, alpha, 1.0)), -1)]

        def cell(kern, alpha, edge):
            h = relax.hard_gumbel(g, alpha, 1.0)
            n1 = edge(x, h[0], kern["k1"][0], kern["k3"][0], idx[0])
            n2 = edge(x, h[1], kern["k1"][1], kern["k3"][1], idx[1]) + \
                edge(n1, h[2], kern["k1"][2], kern["k3"][2], idx[2])
            return jnp.sum(n2 * target)

        def ours_edge(x, h, k1, k3, _):
            return sampled_edge(x, h, k1, k3)  # the index from argmax(h), lax.switch

        ours = jax.value_and_grad(lambda kk, a: cell(kk, a, ours_edge), argnums=(0, 1))
        ref = jax.value_and_grad(lambda kk, a: cell(kk, a, _reference_edge), argnums=(0, 1))
        (v, (gk, ga)), (rv, (rgk, rga)) = xla.run_once(ours, kern, alpha), xla.run_once(ref, kern,
                                                                                 alpha)
        np.testing.assert_allclose(float(v), float(rv), rtol=1e-5)
        for name in kern:
            np.testing.assert_allclose(np.asarray(gk[name]), np.asarray(rgk[name]),
                                       rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(ga), np.asarray(rga), rtol=1e-4, atol=1e-5)
        assert np.abs(np.asarray(ga)).sum() > 0


def test_sampled_supernet_matches_mixed_supernet_for_the_sample(key):
    ki = jax.random.split(key, 3)[1]  # the init key
    x = randn(25, (8, 16, 16, 3))
    alpha = randn(26, (6, 5))
    h = relax.hard_gumbel(jax.random.key(5), alpha, 1.0)
    mixed = cells.NB201Supernet(C=4, N=1)
    sampled = NB201SampledSupernet(C=4, N=1)
    variables = cells.init_fast(mixed, ki, x, h, train=True)
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(
        jax.eval_shape(lambda: sampled.init(ki, x, h, train=True)))

    def loss(mod, params, a):
        w = relax.hard_gumbel(jax.random.key(5), a, 1.0)
        out, _ = mod.apply({**variables, "params": params}, x, w, train=True,
                           mutable=["batch_stats"])
        return jnp.mean(out ** 2)

    vm, (gm, _) = xla.run_once(jax.value_and_grad(lambda p, a: loss(mixed, p, a), (0, 1)),
                               variables["params"], alpha)
    vs, (gs, _) = xla.run_once(jax.value_and_grad(lambda p, a: loss(sampled, p, a), (0, 1)),
                               variables["params"], alpha)
    np.testing.assert_allclose(float(vs), float(vm), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(gs), jax.tree_util.tree_leaves(gm)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-6)


def _grad_flops(mod, x, alpha):
    variables = jax.eval_shape(lambda: cells.NB201Supernet(C=4, N=1).init(
        jax.random.key(0), x, alpha, train=True))

    def f(params, bs, a):
        out, _ = mod.apply({"params": params, "batch_stats": bs}, x,
                           relax.hard_gumbel(jax.random.key(1), a, 1.0), train=True,
                           mutable=["batch_stats"])
        return jnp.mean(out ** 2)
    cost = jax.jit(jax.grad(f, (0, 2))).lower(variables["params"], variables["batch_stats"],
                                              alpha).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def test_sampled_forward_executes_at_most_half_the_darts_flops(key):
    x = jnp.zeros((8, 16, 16, 3))
    alpha = jnp.zeros((6, 5))
    darts = _grad_flops(cells.NB201Supernet(C=4, N=1), x, alpha)
    rng = np.random.default_rng(0)
    samples = [tuple(int(i) for i in rng.integers(0, 5, 6)) for _ in range(4)]
    gdas = np.mean([_grad_flops(NB201SampledSupernet(C=4, N=1, fixed_ops=s), x, alpha)
                    for s in samples])
    print(f"grad FLOPs C=4 N=1 batch 8: DARTS {darts:.3g}, GDAS (mean of 4 samples) "
          f"{gdas:.3g}, ratio {gdas / darts:.2f}")
    assert gdas <= 0.5 * darts
