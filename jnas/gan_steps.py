"""GA-NAS training steps: the jit-compiled generator, discriminator, policy-gradient and
proposal functions of one codec and step config (Rezaei et al., IJCAI 2021, arXiv 2105.09356).

Pure module-level functions of their inputs, bound to a :class:`StepsConfig` and the networks
with :func:`functools.partial`; :class:`jnas.gan.GANASSearcher` drives them. Every executable
is compiled ahead of time per input signature (:class:`jnas.xla.Compiled`) and shared by all
searchers whose configs give the same :class:`StepsConfig` (:func:`make_steps` is cached).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jnas.gan_models import CellCodec, Discriminator, Generator, batch_graph, decode, make_codec
from jnas.xla import Compiled

__all__ = ["StepsConfig", "GANASSteps", "make_steps", "get_steps"]


@dataclasses.dataclass(frozen=True)
class StepsConfig:
    """The GA-NAS settings the compiled steps read (see :class:`jnas.gan.GANASConfig`)."""
    hidden: int = 32            # width of the GCN encoders (G and D)
    gnn_layers: int = 2         # depth of the GCN encoders
    gru: int = 64               # hidden size of the generator's GRU decoder
    d_steps: int = 30           # discriminator updates per round
    d_batch: int = 64           # pairs per discriminator update
    d_lr: float = 1e-3          # discriminator Adam learning rate
    d_loser_frac: float = 0.5   # fraction of D's negatives that are queried non-winners
    pg: str = "ppo"             # 'ppo' (clipped surrogate) or 'reinforce'
    g_iters: int = 5            # policy-gradient iterations per round
    g_batch: int = 64           # cells sampled per policy-gradient iteration
    ppo_epochs: int = 4         # PPO epochs over each batch
    clip_eps: float = 0.2       # PPO clip range
    ent_coef: float = 0.01      # entropy bonus
    g_lr: float = 2e-3          # generator Adam learning rate
    mle_coef: float = 0.0       # weight of the max-likelihood fit to the winning set
    mle_steps: int = 20         # max-likelihood Adam steps of G on the winning set per round
    kl_coef: float = 0.0        # weight of KL(G || previous round's G) in the G loss
    cand_batch: int = 256       # cells sampled per proposal
    context: str = "winner"     # encoder input: 'winner', 'best' or 'empty'
    temperature: float = 1.0    # sampling temperature of proposals
    fast_compile: bool = True   # XLA backend optimisation level 0 (3x faster CPU compiles)


@dataclasses.dataclass(frozen=True)
class GANASSteps:
    """The jit-compiled pieces of GA-NAS for one codec and step config (pure functions).

    ``init(key) -> (g_state, d_state)``;
    ``sample(g_params, ctx, key, budget) -> (tokens, logp, ent)``;
    ``log_prob(g_params, ctx, tokens, budget) -> (logp, ent)``;
    ``pg_update(g_state, ctx, tokens, logp_old, rewards, winners, key, budget, g_prev) ->
    (g_state, metrics)`` (one PPO/REINFORCE iteration on given rewards; ``g_prev`` = the
    previous round's generator params, read when ``kl_coef`` > 0);
    ``mle_update(g_state, winners, key, budget) -> (g_state, nll)`` (one max-likelihood step
    of G on the winning set);
    ``round(g_state, d_state, g_prev, winners, losers, loser_w, key, budget) -> (g_state,
    d_state, metrics)`` (``mle_steps`` refit steps, then D training, then G training, then
    G's entropy: see :func:`train_round`);
    ``propose(g_params, d_params, winners, key, budget) -> (tokens, reward, logp, ent)``;
    ``propose_in(g_params, d_params, winners, key, budget, seqs, avail)``: the same, sampled
    from G conditioned on the available rows of ``seqs`` (see :func:`decode`).
    States are ``(params, opt_state)`` tuples; ``budget`` is the cell cost budget
    (``max_params - codec.base_cost``, ``inf`` for none) as an f32 scalar.
    """
    codec: CellCodec
    config: StepsConfig
    gen: Generator
    disc: Discriminator
    init: Compiled
    sample: Compiled
    log_prob: Compiled
    pg_update: Compiled
    mle_update: Compiled
    reward: Compiled
    round: Compiled
    propose: Compiled
    propose_in: Compiled


@dataclasses.dataclass(frozen=True)
class _Nets:
    """What every step closes over: config, codec, networks and optimisers."""
    cfg: StepsConfig
    codec: CellCodec
    gen: Generator
    disc: Discriminator
    g_opt: Any
    d_opt: Any


def init_states(n: _Nets, key: jax.Array) -> tuple:
    """Fresh ``(g_state, d_state)``: generator and discriminator params with Adam states."""
    kg, kd = jax.random.split(key)
    toks = jnp.zeros((1, n.codec.T), jnp.int32)
    adj, feats = batch_graph(n.codec, toks)
    gp = n.gen.init(kg, adj, feats, method=Generator.init_all)["params"]
    dp = n.disc.init(kd, adj, feats, adj, feats)["params"]
    return (gp, n.g_opt.init(gp)), (dp, n.d_opt.init(dp))


def contexts(n: _Nets, winners: jax.Array, size: int, key: jax.Array) -> jax.Array:
    """``size`` encoder context cells per ``cfg.context``."""
    if n.cfg.context == "winner":
        return winners[jax.random.randint(key, (size,), 0, winners.shape[0])]
    if n.cfg.context == "best":
        return jnp.broadcast_to(winners[0], (size, n.codec.T))
    return jnp.zeros((size, n.codec.T), jnp.int32)


def sample(n: _Nets, gp: Any, ctx: jax.Array, key: jax.Array, budget: jax.Array,
           temperature: float = 1.0, allowed: Any = None) -> tuple:
    """Cells sampled from G: ``(tokens, logp, entropy)``."""
    return decode(n.gen, gp, n.codec, ctx, key, budget, temperature=temperature, allowed=allowed)


def log_prob(n: _Nets, gp: Any, ctx: jax.Array, toks: jax.Array, budget: jax.Array) -> tuple:
    """G's log-probability and entropy of given cells: ``(logp, entropy)``."""
    _, lp, ent = decode(n.gen, gp, n.codec, ctx, None, budget, forced=toks)
    return lp, ent


def pair_logits(n: _Nets, dp: Any, a: jax.Array, b: jax.Array) -> jax.Array:
    """D's logit that cell ``a`` beats cell ``b`` (row-wise)."""
    ga, fa = batch_graph(n.codec, a)
    gb, fb = batch_graph(n.codec, b)
    return n.disc.apply({"params": dp}, ga, fa, gb, fb)


def embed(n: _Nets, dp: Any, toks: jax.Array) -> jax.Array:
    """D's embedding of cells."""
    adj, feats = batch_graph(n.codec, toks)
    return n.disc.apply({"params": dp}, adj, feats, method=Discriminator.embed)


def reward(n: _Nets, dp: Any, toks: jax.Array, winners: jax.Array) -> jax.Array:
    """Mean over the winning set of P(sample beats winner) under D, in (0, 1)."""
    ea, ew = embed(n, dp, toks), embed(n, dp, winners)  # [B, H], [k, H]
    B, k = ea.shape[0], ew.shape[0]
    ea2 = jnp.broadcast_to(ea[:, None], (B, k, ea.shape[-1]))
    ew2 = jnp.broadcast_to(ew[None], (B, k, ew.shape[-1]))
    logits = n.disc.apply({"params": dp}, ea2, ew2, method=Discriminator.pair)
    return jax.nn.sigmoid(logits).mean(-1)


def step_kl(n: _Nets, gp: Any, gq: Any, ctx: jax.Array, toks: jax.Array, budget: jax.Array
            ) -> jax.Array:
    """f32[B]: sum over the decoding steps of KL(G_p || G_q) of each step's choice, along the
    prefixes of ``toks`` (a path-wise estimate of the sequence KL; exact in expectation when
    ``toks`` are samples of G_p)."""
    lp = decode(n.gen, gp, n.codec, ctx, None, budget, forced=toks, dists=True)[3]
    lq = decode(n.gen, gq, n.codec, ctx, None, budget, forced=toks, dists=True)[3]
    return jnp.sum(jnp.exp(lp) * (lp - lq), (-1, -2))


def mle_loss(n: _Nets, gp: Any, winners: jax.Array, key: jax.Array, budget: jax.Array
             ) -> jax.Array:
    """Mean negative log-likelihood per decision of the winning set under G (each winner
    decoded with a random winning cell as context)."""
    wctx = contexts(n, winners, winners.shape[0], key)
    wlp, _ = log_prob(n, gp, wctx, winners, budget)
    return -wlp.mean() / n.codec.T


def mle_update(n: _Nets, g_state: tuple, winners: jax.Array, key: jax.Array,
               budget: jax.Array) -> tuple:
    """One Adam step of G on :func:`mle_loss` (fits G to the winning set)."""
    gp, opt = g_state
    loss, grads = jax.value_and_grad(lambda p: mle_loss(n, p, winners, key, budget))(gp)
    upd, opt = n.g_opt.update(grads, opt, gp)
    return (optax.apply_updates(gp, upd), opt), loss


def pg_update(n: _Nets, g_state: tuple, ctx: jax.Array, toks: jax.Array, logp_old: jax.Array,
              rewards: jax.Array, winners: jax.Array, key: jax.Array, budget: jax.Array,
              g_prev: Any) -> tuple:
    """One PPO (``ppo_epochs`` epochs) or REINFORCE update of G on given rewards; the loss
    adds ``-ent_coef`` × entropy, ``mle_coef`` × :func:`mle_loss` and ``kl_coef`` ×
    :func:`step_kl` to ``g_prev`` (the previous round's generator)."""
    cfg = n.cfg
    gp, opt = g_state
    adv = (rewards - rewards.mean()) / (rewards.std() + 1e-6)

    def loss_fn(p):
        lp, ent = log_prob(n, p, ctx, toks, budget)
        if cfg.pg == "ppo":
            ratio = jnp.exp(lp - logp_old)
            surr = jnp.minimum(ratio * adv,
                               jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
            pg = -surr.mean()
        else:
            pg = -(adv * lp).mean()
        loss = pg - cfg.ent_coef * ent.mean()
        if cfg.mle_coef > 0:
            loss = loss + cfg.mle_coef * mle_loss(n, p, winners, key, budget)
        if cfg.kl_coef > 0:
            loss = loss + cfg.kl_coef * step_kl(n, p, g_prev, ctx, toks, budget).mean()
        return loss, (pg, ent.mean())

    def epoch(carry, _):
        p, o = carry
        (loss, (pg, ent)), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        upd, o = n.g_opt.update(grads, o, p)
        return (optax.apply_updates(p, upd), o), (loss, ent)

    n_epochs = cfg.ppo_epochs if cfg.pg == "ppo" else 1
    (gp, opt), (losses, ents) = jax.lax.scan(epoch, (gp, opt), None, length=n_epochs)
    return (gp, opt), {"loss_first": losses[0], "loss_last": losses[-1], "entropy": ents[0]}


def d_update(n: _Nets, d_state: tuple, gp: Any, winners: jax.Array, losers: jax.Array,
             loser_w: jax.Array, key: jax.Array, budget: jax.Array) -> tuple:
    """One D update: winners against generated cells (and queried losers)."""
    cfg = n.cfg
    dp, opt = d_state
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    b = cfg.d_batch
    fake, _, _ = sample(n, gp, contexts(n, winners, b, k1), k2, budget)
    wi = jax.random.randint(k3, (b,), 0, winners.shape[0])
    li = jax.random.randint(k4, (b,), 0, losers.shape[0])
    use_loser = jax.random.uniform(k5, (b,)) < cfg.d_loser_frac * loser_w
    neg = jnp.where(use_loser[:, None], losers[li], fake)

    def loss_fn(p):
        return jax.nn.softplus(-pair_logits(n, p, winners[wi], neg)).mean()

    loss, grads = jax.value_and_grad(loss_fn)(dp)
    upd, opt = n.d_opt.update(grads, opt, dp)
    return (optax.apply_updates(dp, upd), opt), loss


def train_round(n: _Nets, g_state: tuple, d_state: tuple, g_prev: Any, winners: jax.Array,
                losers: jax.Array, loser_w: jax.Array, key: jax.Array, budget: jax.Array
                ) -> tuple:
    """One GA-NAS round: ``mle_steps`` max-likelihood steps of G on the winning set, then
    ``d_steps`` D updates (negatives from that G), then ``g_iters`` policy-gradient updates of
    G on D's reward (KL to ``g_prev`` when ``kl_coef`` > 0).

    Metrics: D's last loss, G's last reward and losses, ``g_entropy`` (G's entropy on the
    last policy-gradient batch, before its update), ``mle_nll`` (per decision, after the
    refit; NaN without one), ``entropy_end``: a Monte-Carlo estimate of the entropy (nats)
    of the round's final G, the mean over ``g_batch`` cells sampled from it (contexts =
    random winners) of the summed per-step entropies of its (budget-masked, not
    seen-masked) policy, unbiased for the entropy of G given a context by the chain rule,
    and ``end_tokens``, those samples.
    """
    cfg = n.cfg
    kd, kg = jax.random.split(key)
    kf, ke = jax.random.fold_in(key, 7), jax.random.fold_in(key, 8)
    if cfg.mle_steps > 0:
        g_state, _ = jax.lax.scan(
            lambda gs, k: mle_update(n, gs, winners, k, budget), g_state,
            jax.random.split(kf, cfg.mle_steps))
        nll = mle_loss(n, g_state[0], winners, kf, budget)
    else:
        nll = jnp.float32(jnp.nan)

    def d_body(ds, k):
        return d_update(n, ds, g_state[0], winners, losers, loser_w, k, budget)

    if cfg.d_steps > 0:
        d_state, d_losses = jax.lax.scan(d_body, d_state, jax.random.split(kd, cfg.d_steps))
        d_loss = d_losses[-1]
    else:
        d_loss = jnp.float32(jnp.nan)

    def g_body(gs, k):
        k1, k2, k3 = jax.random.split(k, 3)
        ctx = contexts(n, winners, cfg.g_batch, k1)
        toks, lp, _ = sample(n, gs[0], ctx, k2, budget)
        r = reward(n, d_state[0], toks, winners)
        gs, met = pg_update(n, gs, ctx, toks, lp, r, winners, k3, budget, g_prev)
        return gs, (r.mean(), met["entropy"], met["loss_first"], met["loss_last"])

    g_state, (r, ent, l0, l1) = jax.lax.scan(g_body, g_state, jax.random.split(kg, cfg.g_iters))
    ke1, ke2 = jax.random.split(ke)
    end_toks, _, end_ent = sample(n, g_state[0], contexts(n, winners, cfg.g_batch, ke1), ke2,
                                  budget)
    return g_state, d_state, {"d_loss": d_loss, "reward": r[-1], "g_entropy": ent[-1],
                              "g_loss_first": l0[0], "g_loss_last": l1[-1], "mle_nll": nll,
                              "entropy_end": end_ent.mean(), "end_tokens": end_toks}


def propose(n: _Nets, gp: Any, dp: Any, winners: jax.Array, key: jax.Array, budget: jax.Array
            ) -> tuple:
    """``cand_batch`` proposals from G with D's rewards: ``(tokens, reward, logp, ent)``."""
    k1, k2 = jax.random.split(key)
    ctx = contexts(n, winners, n.cfg.cand_batch, k1)
    toks, lp, ent = sample(n, gp, ctx, k2, budget, n.cfg.temperature)
    return toks, reward(n, dp, toks, winners), lp, ent


def propose_in(n: _Nets, gp: Any, dp: Any, winners: jax.Array, key: jax.Array,
               budget: jax.Array, seqs: jax.Array, avail: jax.Array) -> tuple:
    """:func:`propose` restricted to the available rows of ``seqs`` (a trie mask)."""
    k1, k2 = jax.random.split(key)
    ctx = contexts(n, winners, n.cfg.cand_batch, k1)
    toks, lp, ent = sample(n, gp, ctx, k2, budget, n.cfg.temperature, (seqs, avail))
    return toks, reward(n, dp, toks, winners), lp, ent


@functools.cache
def make_steps(space: str, cfg: StepsConfig) -> GANASSteps:
    """The compiled GA-NAS steps of ``space`` (``'nb201'``/``'nb101'``) and ``cfg``; cached,
    so searchers with the same step config share executables. The steps read only the
    codec's decision layout and per-choice costs, which do not depend on ``num_classes``."""
    codec = make_codec(space)
    gen = Generator(codec.T, codec.K, cfg.hidden, cfg.gnn_layers, cfg.gru)
    disc = Discriminator(cfg.hidden, cfg.gnn_layers)
    nets = _Nets(cfg, codec, gen, disc, optax.adam(cfg.g_lr), optax.adam(cfg.d_lr))
    options = {"xla_backend_optimization_level": 0} if cfg.fast_compile else None
    fns = [init_states, sample, log_prob, pg_update, mle_update, reward, train_round, propose,
           propose_in]
    return GANASSteps(codec, cfg, gen, disc,
                      *[Compiled(functools.partial(f, nets), options=options) for f in fns])


def get_steps(codec: CellCodec, config: Any) -> GANASSteps:
    """:func:`make_steps` for ``codec``'s space and a :class:`jnas.gan.GANASConfig` (its
    ``steps()``) or a :class:`StepsConfig`."""
    cfg = config if isinstance(config, StepsConfig) else config.steps()
    return make_steps(codec.name, cfg)
