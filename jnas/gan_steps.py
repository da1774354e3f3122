"""GA-NAS training steps: the jit-compiled generator, discriminator, policy-gradient and
proposal functions of one codec and config (Rezaei et al., IJCAI 2021, arXiv 2105.09356).

Pure functions of their inputs; :class:`jnas.gan.GANASSearcher` drives them. Every
executable is compiled ahead of time per input signature (:class:`_AOTFunction`) and shared
by all searchers with the same config (:func:`get_steps`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.gan_models import CellCodec, Discriminator, Generator, batch_graph, decode

if TYPE_CHECKING:
    from jnas.gan import GANASConfig


# ---------------------------------------------------------------------------------------
# Jitted training steps
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GANASSteps:
    """The jit-compiled pieces of GA-NAS for one codec and config (pure functions).

    ``init(key) -> (g_state, d_state)``;
    ``sample(g_params, ctx, key, budget) -> (tokens, logp, ent)``;
    ``log_prob(g_params, ctx, tokens, budget) -> (logp, ent)``;
    ``pg_update(g_state, ctx, tokens, logp_old, rewards, winners, key, budget) -> (g_state,
    metrics)`` (one PPO/REINFORCE iteration on given rewards);
    ``round(g_state, d_state, winners, losers, loser_w, key, budget) -> (g_state, d_state,
    metrics)`` (D training then G training);
    ``propose(g_params, d_params, winners, key, budget) -> (tokens, reward, logp, ent)``;
    ``propose_in(g_params, d_params, winners, key, budget, seqs, avail)``: the same, sampled
    from G conditioned on the available rows of ``seqs`` (see :func:`decode`).
    States are ``(params, opt_state)`` tuples; ``budget`` is the cell cost budget
    (``max_params - codec.base_cost``, ``inf`` for none) as an f32 scalar.
    """
    codec: CellCodec
    config: GANASConfig
    gen: Generator
    disc: Discriminator
    init: Any
    sample: Any
    log_prob: Any
    pg_update: Any
    reward: Any
    round: Any
    propose: Any
    propose_in: Any


class _AOTFunction:
    """``jax.jit(fn)`` compiled ahead of time per input signature with XLA options, timing
    each compile (``compile_s``). ``fast_compile`` uses XLA backend optimisation level 0:
    GA-NAS networks are tiny, so on CPU this cuts compile time ~3x for a negligible step-time
    cost (measured in RESULTS.md)."""

    def __init__(self, fn: Any, fast_compile: bool) -> None:
        self._jit = jax.jit(fn)
        self._options = {"xla_backend_optimization_level": 0} if fast_compile else None
        self._cache: dict[Any, Any] = {}
        self.compile_s = 0.0

    def __call__(self, *args: Any) -> Any:
        leaves, treedef = jax.tree.flatten(args)
        sig = (treedef, tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves))
        exe = self._cache.get(sig)
        if exe is None:
            t0 = time.perf_counter()
            exe = self._jit.lower(*args).compile(compiler_options=self._options)
            self.compile_s += time.perf_counter() - t0
            self._cache[sig] = exe
        return exe(*args)


_STEPS_CACHE: dict[tuple, GANASSteps] = {}


def get_steps(codec: CellCodec, config: GANASConfig) -> GANASSteps:
    """:func:`make_steps`, cached per (space, num_classes, config) so that searchers with the
    same config (e.g. the seeds of one experiment) share compiled executables."""
    host_only = dict(n_init=1, m=1, select="reward", max_resample=0, max_params=None,
                     constraint="mask", num_classes=10,  # do not change the compiled steps
                     propose_unseen=False, g_reset=False)
    k = (codec.name, dataclasses.replace(config, **host_only))
    if k not in _STEPS_CACHE:
        _STEPS_CACHE[k] = make_steps(codec, config)
    return _STEPS_CACHE[k]


def make_steps(codec: CellCodec, config: GANASConfig) -> GANASSteps:
    """Builds the jit-compiled GA-NAS steps (generator, discriminator, PG, proposal)."""
    config.validate()
    cfg = config
    gen = Generator(codec.T, codec.K, cfg.hidden, cfg.gnn_layers, cfg.gru)
    disc = Discriminator(cfg.hidden, cfg.gnn_layers)
    g_opt = optax.adam(cfg.g_lr)
    d_opt = optax.adam(cfg.d_lr)

    def init(key):
        kg, kd = jax.random.split(key)
        toks = jnp.zeros((1, codec.T), jnp.int32)
        adj, feats = batch_graph(codec, toks)
        gp = gen.init(kg, adj, feats, method=Generator.init_all)["params"]
        dp = disc.init(kd, adj, feats, adj, feats)["params"]
        return (gp, g_opt.init(gp)), (dp, d_opt.init(dp))

    def contexts(winners, n, key):
        if cfg.context == "winner":
            return winners[jax.random.randint(key, (n,), 0, winners.shape[0])]
        if cfg.context == "best":
            return jnp.broadcast_to(winners[0], (n, codec.T))
        return jnp.zeros((n, codec.T), jnp.int32)

    def sample(gp, ctx, key, budget, temperature=1.0, allowed=None):
        return decode(gen, gp, codec, ctx, key, budget, temperature=temperature,
                      allowed=allowed)

    def log_prob(gp, ctx, toks, budget):
        _, lp, ent = decode(gen, gp, codec, ctx, None, budget, forced=toks)
        return lp, ent

    def pair_logits(dp, a, b):
        ga, fa = batch_graph(codec, a)
        gb, fb = batch_graph(codec, b)
        return disc.apply({"params": dp}, ga, fa, gb, fb)

    def embed(dp, toks):
        adj, feats = batch_graph(codec, toks)
        return disc.apply({"params": dp}, adj, feats, method=Discriminator.embed)

    def reward(dp, toks, winners):
        """Mean over the winning set of P(sample beats winner) under D, in (0, 1)."""
        ea, ew = embed(dp, toks), embed(dp, winners)  # [B, H], [k, H]
        B, k = ea.shape[0], ew.shape[0]
        ea2 = jnp.broadcast_to(ea[:, None], (B, k, ea.shape[-1]))
        ew2 = jnp.broadcast_to(ew[None], (B, k, ew.shape[-1]))
        logits = disc.apply({"params": dp}, ea2, ew2, method=Discriminator.pair)
        return jax.nn.sigmoid(logits).mean(-1)

    def pg_update(g_state, ctx, toks, logp_old, rewards, winners, key, budget):
        gp, opt = g_state
        adv = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
        wctx = contexts(winners, winners.shape[0], key)

        def loss_fn(p):
            lp, ent = log_prob(p, ctx, toks, budget)
            if cfg.pg == "ppo":
                ratio = jnp.exp(lp - logp_old)
                surr = jnp.minimum(ratio * adv,
                                   jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
                pg = -surr.mean()
            else:
                pg = -(adv * lp).mean()
            loss = pg - cfg.ent_coef * ent.mean()
            if cfg.mle_coef > 0:
                wlp, _ = log_prob(p, wctx, winners, budget)
                loss = loss - cfg.mle_coef * wlp.mean() / codec.T
            return loss, (pg, ent.mean())

        def epoch(carry, _):
            p, o = carry
            (loss, (pg, ent)), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
            upd, o = g_opt.update(grads, o, p)
            return (optax.apply_updates(p, upd), o), (loss, ent)

        n_epochs = cfg.ppo_epochs if cfg.pg == "ppo" else 1
        (gp, opt), (losses, ents) = jax.lax.scan(epoch, (gp, opt), None, length=n_epochs)
        return (gp, opt), {"loss_first": losses[0], "loss_last": losses[-1],
                           "entropy": ents[0]}

    def d_update(d_state, gp, winners, losers, loser_w, key, budget):
        dp, opt = d_state
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        n = cfg.d_batch
        fake, _, _ = sample(gp, contexts(winners, n, k1), k2, budget)
        wi = jax.random.randint(k3, (n,), 0, winners.shape[0])
        li = jax.random.randint(k4, (n,), 0, losers.shape[0])
        use_loser = jax.random.uniform(k5, (n,)) < cfg.d_loser_frac * loser_w
        neg = jnp.where(use_loser[:, None], losers[li], fake)

        def loss_fn(p):
            return jax.nn.softplus(-pair_logits(p, winners[wi], neg)).mean()

        loss, grads = jax.value_and_grad(loss_fn)(dp)
        upd, opt = d_opt.update(grads, opt, dp)
        return (optax.apply_updates(dp, upd), opt), loss

    def round_fn(g_state, d_state, winners, losers, loser_w, key, budget):
        kd, kg = jax.random.split(key)

        def d_body(ds, k):
            return d_update(ds, g_state[0], winners, losers, loser_w, k, budget)

        if cfg.d_steps > 0:
            d_state, d_losses = jax.lax.scan(d_body, d_state, jax.random.split(kd, cfg.d_steps))
            d_loss = d_losses[-1]
        else:
            d_loss = jnp.float32(jnp.nan)

        def g_body(gs, k):
            k1, k2, k3 = jax.random.split(k, 3)
            ctx = contexts(winners, cfg.g_batch, k1)
            toks, lp, _ = sample(gs[0], ctx, k2, budget)
            r = reward(d_state[0], toks, winners)
            gs, met = pg_update(gs, ctx, toks, lp, r, winners, k3, budget)
            return gs, (r.mean(), met["entropy"], met["loss_first"], met["loss_last"])

        g_state, (r, ent, l0, l1) = jax.lax.scan(g_body, g_state,
                                                 jax.random.split(kg, cfg.g_iters))
        return g_state, d_state, {"d_loss": d_loss, "reward": r[-1], "g_entropy": ent[-1],
                                  "g_loss_first": l0[0], "g_loss_last": l1[-1]}

    def propose(gp, dp, winners, key, budget):
        k1, k2 = jax.random.split(key)
        ctx = contexts(winners, cfg.cand_batch, k1)
        toks, lp, ent = sample(gp, ctx, k2, budget, cfg.temperature)
        return toks, reward(dp, toks, winners), lp, ent

    def propose_in(gp, dp, winners, key, budget, seqs, avail):
        k1, k2 = jax.random.split(key)
        ctx = contexts(winners, cfg.cand_batch, k1)
        toks, lp, ent = sample(gp, ctx, k2, budget, cfg.temperature, (seqs, avail))
        return toks, reward(dp, toks, winners), lp, ent

    fns = [init, sample, log_prob, pg_update, reward, round_fn, propose, propose_in]
    return GANASSteps(codec, cfg, gen, disc, *[_AOTFunction(f, cfg.fast_compile) for f in fns])
