"""Tests of jnas.less_local: the population search after Bodin et al. 2021."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from conftest import TINY, toy_data, toy_net
from jnas import less_local, oneshot, spaces, xla
from jnas.darts import make_bilevel_step


def test_vmapped_population_step_equals_separate_member_steps():
    net = toy_net()
    cfg = less_local.LessLocalConfig(**{**TINY, "population": 3, "a_lr": 1e-2})
    xt, yt, xv, yv = toy_data()
    w_opt, a_opt = oneshot.weight_optimizer(cfg, 10), oneshot.alpha_optimizer(cfg)
    x0 = oneshot.preprocess(jax.random.key(0), jnp.asarray(xt[:8]), False)
    pop = less_local.init_population(net, cfg, jax.random.key(0), w_opt, a_opt, x0)
    single = make_bilevel_step(net, cfg, w_opt, a_opt, 10)
    batch = {"xt": xt[:8], "yt": yt[:8], "xv": xv[:8], "yv": yv[:8]}
    # members start apart: different α and weights
    assert float(jnp.abs(pop.alpha["cell"][1] - pop.alpha["cell"][2]).max()) > 0.5
    new_pop, m_pop = xla.run_once(less_local.make_population_step(single), pop, batch)
    jsingle = xla.Compiled(single, options="fastest")
    for i in range(3):
        member = jax.tree_util.tree_map(lambda x: x[i], pop)
        new_i, m_i = jsingle(member, batch)
        for a, b in zip(jax.tree_util.tree_leaves(new_i),
                        jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x: x[i],
                                                                         new_pop))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(float(m_i["val_loss"]), float(m_pop["val_loss"][i]),
                                   rtol=1e-5)


def test_exploit_explore_copies_best_into_worst():
    net = toy_net()
    cfg = less_local.LessLocalConfig(**{**TINY, "population": 4})
    w_opt, a_opt = oneshot.weight_optimizer(cfg, 10), oneshot.alpha_optimizer(cfg)
    x0 = jnp.zeros((8, 16, 16, 3))
    pop = less_local.init_population(net, cfg, jax.random.key(1), w_opt, a_opt, x0)
    val_loss = jnp.array([0.5, 2.0, 0.1, 1.0])  # best 2, worst 1
    new, src = less_local.exploit_explore(pop, val_loss, jax.random.key(2), 0.25, 0.3)
    src = np.asarray(src)
    np.testing.assert_array_equal(src, [0, 2, 2, 3])
    leaf = lambda t: jax.tree_util.tree_leaves(t.params)[0]  # noqa: E731
    np.testing.assert_array_equal(np.asarray(leaf(new)[1]), np.asarray(leaf(pop)[2]))
    np.testing.assert_array_equal(np.asarray(new.alpha["cell"][0]),
                                  np.asarray(pop.alpha["cell"][0]))
    d = np.asarray(new.alpha["cell"][1] - pop.alpha["cell"][2])
    assert 0.05 < d.std() < 1.0  # perturbed copy
    np.testing.assert_array_equal(np.asarray(new.key), np.asarray(pop.key))  # own randomness


def test_less_local_on_real_images_chooses_the_best_discrete_member(real_data, tmp_path):
    """The population search on real CIFAR-10 images (toy supernet: the member logic; the real
    supernet's population step is traced below): the chosen member has the best validation
    accuracy of the discretised cells, exploit/explore ran, the progress file is written."""
    cfg = less_local.LessLocalConfig(**{**TINY, "population": 2, "a_lr": 3e-2,
                                        "eval_batches": 1, "epochs": 2})
    res, state = less_local.run_less_local(cfg, space="nb201", dataset="cifar10", key=0,
                                           out_dir=tmp_path, data=real_data, quiet=True,
                                           net=toy_net())
    res = res.to_json()
    assert res["method"] == "less-local" and res["seed"] == 0
    assert state.alpha["cell"].shape == (2, 6, 5)  # the whole population
    assert len(res["members"]) == 2
    accs = [m["val_acc_discrete"] for m in res["members"]]
    assert res["chosen_member"] == int(np.argmax(accs))
    assert res["best_arch"] == res["members"][res["chosen_member"]]["arch"]
    spaces.NB201.parse(res["best_arch"])
    assert res["history"][0]["exploit_src"] is not None
    assert (tmp_path / "search_progress.json").exists()


def test_population_step_of_the_real_supernet_traces(real_data):
    """The vmapped DARTS step over 2 members of the real NB201Supernet: traced (no compile),
    every state leaf keeps its member axis."""
    cfg = less_local.LessLocalConfig(**{**TINY, "population": 2})
    setup = oneshot.prepare(cfg, space="nb201", dataset="cifar10", key=0, data=real_data)
    net = setup.net

    def member(k):
        alpha = oneshot.init_alpha(net, k, 1.0)
        return oneshot.build_state(net, k, alpha, setup.w_opt, setup.a_opt, setup.sample_x)
    pop = jax.eval_shape(lambda: jax.vmap(member)(jax.random.split(jax.random.key(0), 2)))
    single = make_bilevel_step(setup.net, cfg, setup.w_opt, setup.a_opt, setup.total_steps)
    batch = {k: v[:8] for k, v in zip(("xt", "yt", "xv", "yv"), real_data)}
    new, m = jax.eval_shape(less_local.make_population_step(single), pop, batch)
    assert jax.tree.structure(new) == jax.tree.structure(pop)
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(new))
    assert m["val_loss"].shape == (2,)
