"""Tests for GA-NAS (jnas.gan, jnas.gan_models): validity, log-probs, PPO, searcher."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.gan import GANASConfig, GANASSearcher, get_steps
from jnas import cost
from jnas.gan_models import Generator, batch_graph, make_codec
from jnas.gan_steps import StepsConfig, make_steps
from jnas.spaces import NB201_OPS, NB101Arch, NB201Arch, get_space

# Tiny config (CPU): all searchers below share its compiled steps (see get_steps).
TINY = GANASConfig(n_init=8, m=4, top_k=4, hidden=16, gru=16, d_steps=2, d_batch=16,
                   g_iters=1, g_batch=16, ppo_epochs=2, cand_batch=32)
INF = jnp.float32(np.inf)
# the same with a fitted generator (continued G, max-likelihood refit, KL to the last G)
FITTED = GANASConfig(n_init=8, m=4, top_k=4, hidden=16, gru=16, d_steps=2, d_batch=16,
                     g_iters=1, g_batch=16, ppo_epochs=2, cand_batch=32, g_reset=False,
                     mle_steps=2, kl_coef=0.1)


def nb201_params_M(op_ids, num_classes=10):
    """Params (M) of the NB201 network of a cell given by op ids (jnas.cost)."""
    arch = NB201Arch(ops=tuple(NB201_OPS[int(i)] for i in op_ids))
    return cost.arch_cost("nb201", arch, num_classes=num_classes)["params_M"]


def _nb101_ok(arch: NB101Arch) -> None:
    """Independent check of an NB101 cell: <= 9 edges, <= 7 nodes, DAG, all nodes on an
    input -> output path (connected)."""
    m = np.asarray(arch.matrix)
    n = m.shape[0]
    assert n <= 7 and m.sum() <= 9
    assert np.all(np.tril(m) == 0)  # upper-triangular = DAG
    reach_fwd = {0}
    for j in range(n):
        if j in reach_fwd:
            reach_fwd |= set(np.nonzero(m[j])[0].tolist())
    reach_bwd = {n - 1}
    for i in reversed(range(n)):
        if set(np.nonzero(m[i])[0].tolist()) & reach_bwd:
            reach_bwd.add(i)
    assert reach_fwd == set(range(n)) and reach_bwd == set(range(n)), m
    assert arch.ops[0] == "input" and arch.ops[-1] == "output"


def test_params_closed_form_matches_zc_table(data_dir):
    """The NB201 params counter used for the constraint matches zc_nasbench201.json."""
    raw = json.loads((data_dir / "nb201" / "zc_nasbench201.json").read_text())
    zc_ops = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
    for ds, ncls in (("cifar10", 10), ("cifar100", 100)):
        items = list(raw[ds].items())[:200]
        for k, rec in items:
            i = [int(x) for x in k.strip("()").split(",")]
            ops = [zc_ops[i[0]], zc_ops[i[1]], zc_ops[i[3]], zc_ops[i[2]], zc_ops[i[4]],
                   zc_ops[i[5]]]
            ids = [NB201_OPS.index(o) for o in ops]
            assert nb201_params_M(ids, ncls) == pytest.approx(rec["params"]["score"], abs=2e-4)
    assert nb201_params_M([3] * 6) == pytest.approx(1.5315, abs=1e-4)


@pytest.mark.parametrize("space", ["nb201", "nb101"])
def test_generated_cells_valid_and_deterministic(space):
    codec = make_codec(space)
    steps = get_steps(codec, TINY)
    g, _ = steps.init(jax.random.key(0))
    ctx = jnp.zeros((256, codec.T), jnp.int32)
    toks, lp, ent = steps.sample(g[0], ctx, jax.random.key(1), INF)
    toks2, lp2, _ = steps.sample(g[0], ctx, jax.random.key(1), INF)
    toks3, _, _ = steps.sample(g[0], ctx, jax.random.key(2), INF)
    np.testing.assert_array_equal(toks, toks2)
    np.testing.assert_array_equal(lp, lp2)
    assert not np.array_equal(toks, toks3)
    assert np.all(np.isfinite(lp)) and np.all(lp <= 0) and np.all(ent > 0)
    sp = get_space(space)
    archs = [codec.decode(t) for t in np.asarray(toks)]
    for a in archs:
        sp.validate(a)
        if space == "nb101":
            _nb101_ok(a)
    # the masks never leave the valid set, so teacher-forced log-probs are finite and equal
    lp_f, _ = steps.log_prob(g[0], ctx, toks, INF)
    np.testing.assert_allclose(lp_f, lp, rtol=1e-5, atol=1e-5)
    if space == "nb101":  # encode/decode round trip (pruned, isomorphism-aware)
        for a in sp.sample(jax.random.key(3), 30):
            assert codec.decode(codec.encode(a)).spec_hash() == a.spec_hash()


def _manual_nb101_mask(prefix: list[int], t: int, codec) -> np.ndarray:
    if codec.kind[t] == 0:
        return np.array([True, True, True])
    used = sum(1 for s, v in enumerate(prefix) if codec.kind[s] == 1 and v == 1)
    i, j = codec.src[t], codec.dst[t]
    has_in = any(codec.kind[s] == 1 and codec.dst[s] == j and v == 1
                 for s, v in enumerate(prefix))
    return np.array([has_in or i < j - 1, used + 1 + (6 - j) <= 9, False])


def test_log_probs_match_manual_computation():
    """Log-probs of a fixed NB101 sequence = sum of masked log-softmaxes, stepped by hand."""
    codec = make_codec("nb101")
    steps = get_steps(codec, TINY)
    g, _ = steps.init(jax.random.key(4))
    gp = g[0]
    # a fixed valid cell: 0->1, 1->2, 0->3, 2->5, 3->6, 5->6, 4 dangling from 0, 1->4 ...
    arch = NB101Arch([[0, 1, 0, 1, 0, 0, 0], [0, 0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0],
                      [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1],
                      [0] * 7], ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu",
                                 "conv1x1-bn-relu", "conv3x3-bn-relu", "output"])
    seq = codec.encode(arch)
    ctx = codec.encode(get_space("nb101").sample(jax.random.key(5), 1)[0])
    lp, ent = steps.log_prob(gp, jnp.asarray(ctx)[None], jnp.asarray(seq)[None], INF)
    gen = Generator(codec.T, codec.K, TINY.hidden, TINY.gnn_layers, TINY.gru)
    adj, feats = batch_graph(codec, jnp.asarray(ctx)[None])
    h = gen.apply({"params": gp}, adj, feats, method=Generator.encode)
    prev = jnp.array([codec.K])
    total, total_ent = 0.0, 0.0
    for t in range(codec.T):
        h, logits = gen.apply({"params": gp}, h, prev, jnp.int32(t), method=Generator.step)
        mask = _manual_nb101_mask(list(seq[:t]), t, codec)
        assert mask[seq[t]], f"step {t}: the fixed sequence is illegal under the mask"
        lg = np.asarray(logits[0], np.float64)[mask]
        logp = lg - np.log(np.exp(lg - lg.max()).sum()) - lg.max()
        total += logp[int(np.nonzero(mask)[0].tolist().index(seq[t]))]
        total_ent += -(np.exp(logp) * logp).sum()
        prev = jnp.array([seq[t]])
    assert float(lp[0]) == pytest.approx(total, abs=1e-4)
    assert float(ent[0]) == pytest.approx(total_ent, abs=1e-4)


@pytest.mark.parametrize("pg", ["ppo"])
def test_policy_gradient_moves_towards_rewarded_cells(pg):
    """Toy reward = number of nor_conv_3x3 edges: PPO raises it and its loss decreases."""
    codec = make_codec("nb201")
    steps = get_steps(codec, TINY)
    g, _ = steps.init(jax.random.key(6))
    ctx = jnp.zeros((64, codec.T), jnp.int32)
    win = jnp.zeros((4, codec.T), jnp.int32)

    def mean_reward(gp, k):
        toks, _, _ = steps.sample(gp, ctx, k, INF)
        return float((np.asarray(toks) == 3).sum(-1).mean())

    r0 = mean_reward(g[0], jax.random.key(100))
    first_losses, last_losses = [], []
    for it in range(25):
        toks, lp, _ = steps.sample(g[0], ctx, jax.random.key(it), INF)
        rew = (toks == 3).sum(-1).astype(jnp.float32)
        g, met = steps.pg_update(g, ctx, toks, lp, rew, win, jax.random.key(1000 + it), INF,
                                 g[0])
        first_losses.append(float(met["loss_first"]))
        last_losses.append(float(met["loss_last"]))
    r1 = mean_reward(g[0], jax.random.key(100))
    assert r1 > r0 + 1.0, (r0, r1)  # chance level: 6/5 = 1.2 conv3x3 edges
    # within each PPO iteration, the surrogate loss goes down over the epochs
    assert np.mean(np.array(last_losses) < np.array(first_losses)) > 0.8


def _synthetic_score(arch) -> float:
    """A deterministic toy benchmark: number of convs (NB201) or edges+convs (NB101)."""
    if hasattr(arch, "op_ids"):
        return float(sum(1 for o in arch.ops if o.startswith("nor_conv")))
    return float(sum(1 for o in arch.ops if o.startswith("conv")) + arch.num_edges / 10)


def _run(searcher, budget, batch):
    asked = []
    while len(asked) < budget:
        archs = searcher.ask(min(batch, budget - len(asked)))
        searcher.tell(archs, [_synthetic_score(a) for a in archs])
        asked += archs
    return asked


@pytest.mark.parametrize("space", ["nb201", "nb101"])
def test_searcher_budget_no_repeats_and_determinism(space):
    s1 = GANASSearcher(space, 0, TINY)
    a1 = _run(s1, 24, 3)
    assert len(a1) == 24
    keyf = (lambda a: a.spec_hash()) if space == "nb101" else (lambda a: a.to_string())
    assert len({keyf(a) for a in a1}) == 24, "GA-NAS returned a cell twice"
    sp = get_space(space)
    for a in a1:
        sp.validate(a)
    assert len(s1.rounds) >= 3
    for r in s1.rounds:
        assert r["valid_frac"] == 1.0 and 0 < r["unique_frac"] <= 1 and r["entropy"] >= 0
    a2 = _run(GANASSearcher(space, 0, TINY), 24, 3)
    assert [keyf(a) for a in a1] == [keyf(a) for a in a2]
    a3 = _run(GANASSearcher(space, 1, TINY), 24, 3)
    assert [keyf(a) for a in a1] != [keyf(a) for a in a3]


@pytest.mark.parametrize("constraint", ["mask", "reject"])
def test_params_constraint_respected(constraint):
    import dataclasses
    cfg = dataclasses.replace(TINY, max_params=0.5, constraint=constraint)
    s = GANASSearcher("nb201", 2, cfg)
    archs = _run(s, 24, 4)
    params = [nb201_params_M(a.op_ids) for a in archs]
    assert max(params) <= 0.5 + 1e-9
    assert len(set(a.to_string() for a in archs)) == 24
    # the toy score prefers convs: the search pushes towards the budget
    assert max(params) > 0.3
    if constraint == "mask":  # masking alone never emits an over-budget cell
        codec = make_codec("nb201")
        steps = get_steps(codec, cfg)
        toks, _, _ = steps.sample(s.generator_params, jnp.zeros((128, 6), jnp.int32),
                                  jax.random.key(9),
                                  jnp.float32(0.5 - codec.base_cost))
        assert max(nb201_params_M(t) for t in np.asarray(toks)) <= 0.5 + 1e-6


def test_bad_config_errors():
    with pytest.raises(ValueError, match="pg"):
        GANASSearcher("nb201", 0, GANASConfig(pg="a2c"))
    with pytest.raises(ValueError, match="nb201"):
        GANASSearcher("darts", 0, TINY)
    with pytest.raises(ValueError, match="max_params"):
        import dataclasses
        GANASSearcher("nb201", 0, dataclasses.replace(TINY, max_params=0.01))


def test_config_validates_itself_and_steps_are_shared():
    with pytest.raises(ValueError, match="GANASConfig.context"):
        GANASConfig(context="none")
    with pytest.raises(ValueError, match="d_loser_frac"):
        GANASConfig(d_loser_frac=2.0)
    import dataclasses
    steps = get_steps(make_codec("nb201"), TINY)
    assert isinstance(steps.config, StepsConfig)
    # host-side fields do not change the compiled steps: the same object is shared
    other = dataclasses.replace(TINY, n_init=3, select="first", g_reset=False, num_classes=100)
    assert get_steps(make_codec("nb201", 100), other) is steps
    assert make_steps("nb201", TINY.steps()) is steps


def test_registered_for_cli():
    from jnas.registry import get_method
    spec = get_method("ganas")
    assert spec.kind == "sample" and set(spec.spaces) == {"nb201", "nb101"}
    assert spec.config_cls() is GANASConfig


def test_conditioned_decode_masks_towards_the_available_set():
    """``decode(allowed=...)`` samples only available rows; its log-probs are G's step-wise
    log-softmax over the choices that still lead to an available row (checked by hand),
    and they sum to one over the available set."""
    from jnas.gan_models import decode, nb201_all_sequences
    codec = make_codec("nb201")
    steps = get_steps(codec, TINY)
    g, _ = steps.init(jax.random.key(11))
    all_seqs = nb201_all_sequences()
    seqs = jnp.asarray(all_seqs)
    rng = np.random.default_rng(0)
    avail_rows = rng.choice(seqs.shape[0], 40, replace=False)
    avail = np.zeros(seqs.shape[0], np.float32)
    avail[avail_rows] = 1.0
    allowed = (seqs, jnp.asarray(avail))
    gen = steps.gen
    ctx = jnp.zeros((512, codec.T), jnp.int32)
    toks, _, _ = decode(gen, g[0], codec, ctx, jax.random.key(12), INF, allowed=allowed)
    rows = np.asarray(toks) @ (5 ** np.arange(5, -1, -1))
    assert set(rows.tolist()) <= set(avail_rows.tolist())
    assert len(set(rows.tolist())) > 5  # a distribution over the set, not one cell
    ctx40 = jnp.zeros((40, codec.T), jnp.int32)
    _, lp_c, _ = decode(gen, g[0], codec, ctx40, None, INF, forced=seqs[avail_rows],
                        allowed=allowed)
    assert float(jnp.exp(lp_c).sum()) == pytest.approx(1.0, abs=1e-4)
    adj, feats = batch_graph(codec, ctx40[:1])
    avail_set = all_seqs[avail_rows]
    for r in range(3):  # by hand: mask = next tokens of available rows sharing the prefix
        seq = all_seqs[avail_rows[r]]
        h = gen.apply({"params": g[0]}, adj, feats, method=Generator.encode)
        prev, total = jnp.array([codec.K]), 0.0
        for t in range(codec.T):
            h, logits = gen.apply({"params": g[0]}, h, prev, jnp.int32(t), method=Generator.step)
            same = np.all(avail_set[:, :t] == seq[:t], axis=1)
            ok = np.zeros(codec.K, bool)
            ok[avail_set[same, t]] = True
            lg = np.asarray(logits[0], np.float64)
            lse = np.log(np.exp(lg[ok] - lg[ok].max()).sum()) + lg[ok].max()
            total += lg[seq[t]] - lse
            prev = jnp.array([seq[t]])
        assert float(lp_c[r]) == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("unseen", [True, False])
def test_propose_unseen_never_needs_random_fill(unseen):
    """With ``propose_unseen`` every round's cells come from G (no random fill) and no cell
    repeats; without it the searcher still works (rejection + fill)."""
    import dataclasses
    cfg = dataclasses.replace(TINY, propose_unseen=unseen, cand_batch=8, max_resample=0)
    s = GANASSearcher("nb201", 3, cfg)
    archs = _run(s, 40, 4)
    assert len({a.to_string() for a in archs}) == 40
    assert all(r["conditioned"] is unseen for r in s.rounds)
    if unseen:
        assert sum(r["random_fill"] for r in s.rounds) == 0


@pytest.mark.parametrize("unseen", [True, False])
def test_nb101_table_subspace_only_proposes_table_cells(data_dir, unseen):
    """On the offline NB101 subset (292 cells) GA-NAS proposes only cells the table holds,
    so the CLI's ``--space nb101`` search can score every query."""
    import dataclasses
    from jnas import benchmarks
    from jnas.benchmarks_nb101 import TableSpace
    t = benchmarks.load_nb101_json(data_dir / "nb101" / "zc_nasbench101.json")
    space = TableSpace(t, get_space("nb101"))
    s = GANASSearcher(space, 0, dataclasses.replace(TINY, propose_unseen=unseen))
    archs = _run(s, 24, 4)
    held = {t.arch_at(i).spec_hash() for i in range(len(t))}
    assert all(a.spec_hash() in held for a in archs)
    assert len({a.spec_hash() for a in archs}) == 24
    if unseen:
        assert sum(r["random_fill"] for r in s.rounds) == 0


def test_g_reset_keeps_the_generator_from_concentrating():
    """With ``g_reset`` G is re-initialised every round, so its entropy after a round's
    training stays well above that of a G continued from round to round, which keeps
    concentrating.
    Both are deterministic in the key."""
    import dataclasses
    fast = dataclasses.replace(TINY, g_iters=3, ppo_epochs=4, g_lr=2e-2, mle_steps=0)
    ents = {}
    for reset in (False, True):
        s = GANASSearcher("nb201", 5, dataclasses.replace(fast, g_reset=reset))
        _run(s, 8 + 6 * 4, 4)
        ents[reset] = [r["g_entropy"] for r in s.rounds]
        again = GANASSearcher("nb201", 5, dataclasses.replace(fast, g_reset=reset))
        _run(again, 8 + 6 * 4, 4)
        assert [r["g_entropy"] for r in again.rounds] == ents[reset]
    assert ents[False][-1] < ents[False][0] - 0.5  # continued G concentrates
    assert ents[True][-1] > ents[False][-1] + 0.5  # a fresh G each round does not
    assert np.mean(ents[True][1:]) > np.mean(ents[False][1:]) + 2  # measured 6.3 vs 2.1


def test_entropy_per_round_in_diagnostics_and_result_record():
    """``diagnostics()`` logs G's entropy (a Monte-Carlo estimate, said so) every round, and
    the record ``run_search`` returns carries it (``extra['diagnostics']``)."""
    from jnas.search import run_search
    s = GANASSearcher("nb201", 3, TINY)
    res = run_search(s, lambda archs: [_synthetic_score(a) for a in archs], 16, 4)
    diag = s.diagnostics()
    assert "Monte-Carlo" in diag["entropy_estimate"]
    assert diag["uniform_entropy"] == pytest.approx(np.log(15625))
    rounds = diag["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert 0.0 < r["g_entropy_end"] <= np.log(15625) + 1e-4
        assert 0.0 < r["g_unique_frac"] <= 1.0 and r["mle_nll"] > 0  # default refit
    json.dumps(diag, allow_nan=False)  # strict JSON
    assert res.extra["diagnostics"]["rounds"] == json.loads(json.dumps(rounds))


def test_refit_raises_the_winners_likelihood():
    """Max-likelihood steps (``mle_update``, run ``mle_steps`` times per round) raise the
    winners' likelihood under G."""
    codec = make_codec("nb201")
    steps = get_steps(codec, FITTED)
    g, _ = steps.init(jax.random.key(12))
    win = jnp.asarray(np.stack([codec.encode(a) for a in
                                get_space("nb201").sample(jax.random.key(13), 4)]))
    lp0, _ = steps.log_prob(g[0], win, win, INF)
    g1 = g
    for i in range(30):
        g1, nll = steps.mle_update(g1, win, jax.random.key(100 + i), INF)
    lp1, _ = steps.log_prob(g1[0], win, win, INF)
    assert float(lp1.mean()) > float(lp0.mean()) + 1.0
    assert float(nll) == pytest.approx(-float(lp1.mean()) / codec.T, rel=0.2)


def test_fitted_generator_search_logs_its_refit_and_is_deterministic():
    """A search with the refit and the KL term runs, logs the refit NLL every round and is a
    function of its key."""
    cfg = FITTED
    logs = []
    for _ in range(2):
        s = GANASSearcher("nb201", 4, cfg)
        archs = _run(s, 16, 4)
        logs.append(([a.to_string() for a in archs], s.diagnostics()["rounds"]))
    assert logs[0][0] == logs[1][0]
    assert all(r["mle_nll"] is not None and r["mle_nll"] > 0 for r in logs[0][1])
    assert [r["g_entropy_end"] for r in logs[0][1]] == [r["g_entropy_end"] for r in logs[1][1]]
