"""DARTS (first order and exact second order) and GDAS-style hard-Gumbel search on the
one-shot engine of :mod:`jnas.oneshot`.

* DARTS: Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019
  (arXiv 1806.09055). Bilevel: α minimises the validation loss of w*(α). First order
  alternates one Adam step on α (validation batch) and one SGD step on w (training batch).
  Second order differentiates the validation loss through one virtual SGD step
  ``w' = w - ξ ∇_w L_train(w, α)`` — here *exactly*, with ``jax.grad`` through the inner
  update (the original code used a finite-difference Hessian-vector product).
* GDAS: Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours",
  CVPR 2019: the same bilevel loop with one op per edge sampled by straight-through hard
  Gumbel (temperature 10 → 0.1); on NB201 only the sampled op of each edge is computed
  (:mod:`jnas.cells_gdas`, xautodl ``forward_gdas``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jnas import report
from jnas.config import check_choice, check_positive
from jnas.oneshot import (OneShotConfig, SearchState, Supernet, check_finite_fields,
                          cross_entropy, preprocess, run_oneshot, weight_lr)
from jnas.relax import linear_temperature, relax

__all__ = ["DARTSConfig", "DARTS2Config", "GDASConfig", "make_bilevel_step",
           "second_order_value_and_grad", "make_loss_fn", "momentum_buffer", "bilevel_maker",
           "run_darts", "run_darts2", "run_gdas"]


@dataclasses.dataclass(frozen=True)
class DARTSConfig(OneShotConfig):
    """DARTS search: 50 epochs, batch 64, 25k/25k split (see OneShotConfig); weight SGD as
    xautodl ``configs/nas-benchmark/algos/DARTS.config`` (the NB201 search: weight decay 5e-4,
    Nesterov; the DARTS code on its own space uses 3e-4 without Nesterov:
    ``--set w_wd=3e-4 w_nesterov=false``).

    ``virtual_momentum``: the second-order virtual step of the DARTS and xautodl codes,
    ``w' = w - ξ (μ·m + ∇_w L_train + wd·w)`` (m the SGD momentum buffer). Off by default: the
    paper's eq. 6 (and the exact hypergradient here) is the plain step ``w - ξ ∇_w L_train``.
    """
    w_wd: float = 5e-4  # weight decay of the weights (xautodl DARTS.config)
    w_nesterov: bool = True  # Nesterov momentum of the weight SGD (xautodl DARTS.config)
    order: int = 1  # 1: first order (DARTS-V1), 2: exact second order (DARTS-V2)
    xi: float | None = None  # virtual step size of second order (None: the current w lr)
    virtual_momentum: bool = False  # second order: virtual step with momentum + wd (DARTS code)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "order", (1, 2))
        check_positive(self, "xi")
        check_finite_fields(self, "xi")


@dataclasses.dataclass(frozen=True)
class DARTS2Config(DARTSConfig):
    """Second-order DARTS (DARTS-V2): exact hypergradient through one virtual SGD step."""
    order: int = 2  # exact second order


@dataclasses.dataclass(frozen=True)
class GDASConfig(OneShotConfig):
    """GDAS search: bilevel DARTS with straight-through hard Gumbel samples.

    Defaults follow xautodl ``configs/nas-benchmark/algos/GDAS.config`` (250 epochs, weight
    SGD with weight decay 5e-4 and Nesterov) and
    ``exps/NATS-algos/search-cell.py`` (temperature 10 → 0.1, α Adam lr 3e-4 with betas
    (0.5, 0.999), wd 1e-3). ``sampled_forward``: only the sampled op of each edge runs
    (xautodl ``forward_gdas``; NB201 space); False computes every op with one-hot weights,
    which gives the same forward value but the DARTS gradient for unselected ops (kept only to
    compare the estimators; the DARTS space always uses it).
    """
    epochs: int = 250  # search epochs (xautodl GDAS.config)
    w_wd: float = 5e-4  # weight decay of the weights (xautodl GDAS.config)
    w_nesterov: bool = True  # Nesterov momentum of the weight SGD (xautodl GDAS.config)
    sampled_forward: bool = True  # compute only the sampled op per edge (xautodl forward_gdas)
    tau_start: float = 10.0  # Gumbel temperature at the first step
    tau_end: float = 0.1  # Gumbel temperature at the last step

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "tau_start", "tau_end")
        check_finite_fields(self, "tau_start", "tau_end")


# ----------------------------------------------------------------------------- steps
def _weights(relaxation: str, alpha: dict[str, jax.Array], key: jax.Array,
             tau: jax.Array) -> dict[str, jax.Array]:
    keys = jax.random.split(key, len(alpha))
    return {k: relax(relaxation, a, kk, tau) for (k, a), kk in zip(alpha.items(), keys)}


def make_loss_fn(net: Supernet, relaxation: str) -> Callable[..., Any]:
    """``loss(params, batch_stats, alpha, x, y, key, tau) -> (loss, (batch_stats, acc))``."""
    def loss_fn(params, batch_stats, alpha, x, y, key, tau):
        w = _weights(relaxation, alpha, key, tau)
        logits, new_bs = net.apply(params, batch_stats, x, w, True)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return cross_entropy(logits, y), (new_bs, acc)
    return loss_fn


def second_order_value_and_grad(loss_fn: Callable[..., Any], params: Any, batch_stats: Any,
                                alpha: Any, train: tuple, val: tuple, xi: float | jax.Array,
                                tau: jax.Array | float = 1.0, momentum: Any = None,
                                wd: float = 0.0) -> tuple[Any, Any]:
    """Exact DARTS second-order hypergradient (Liu et al. 2019, eq. 6-7 without the
    finite-difference approximation).

    Differentiates ``L_val(w - ξ ∇_w L_train(w, α), α)`` with respect to α by ``jax.grad``
    through the inner gradient step. ``train``/``val`` are ``(x, y, key)``; ``loss_fn`` has the
    signature of :func:`make_loss_fn`. ``momentum`` (a pytree like ``params``, already times
    μ) and ``wd`` give the DARTS code's virtual step ``w - ξ (momentum + ∇_w L + wd·w)``
    (quark0/darts ``cnn/architect.py`` ``_compute_unrolled_model``).
    Returns ``((val_loss, aux), grad_alpha)``.
    """
    xt, yt, kt = train
    xv, yv, kv = val

    def unrolled(a):
        gw, (bs1, _) = jax.grad(loss_fn, has_aux=True)(params, batch_stats, a, xt, yt, kt, tau)
        if wd:
            gw = jax.tree_util.tree_map(lambda g, p: g + wd * p, gw, params)
        if momentum is not None:
            gw = jax.tree_util.tree_map(jnp.add, gw, momentum)
        w1 = jax.tree_util.tree_map(lambda p, g: p - xi * g, params, gw)
        return loss_fn(w1, bs1, a, xv, yv, kv, tau)
    return jax.value_and_grad(unrolled, has_aux=True)(alpha)


def make_bilevel_step(net: Supernet, config: OneShotConfig, w_opt: optax.GradientTransformation,
                      a_opt: optax.GradientTransformation, total_steps: int, *, order: int = 1,
                      relaxation: str = "softmax",
                      tau_fn: Callable[[jax.Array], jax.Array] | None = None
                      ) -> Callable[[SearchState, dict], tuple[SearchState, dict]]:
    """The (un-jitted) bilevel search step ``(state, batch) -> (state, metrics)``.

    ``batch`` holds uint8 images and labels ``xt, yt`` (training half) and ``xv, yv``
    (validation half). The α step comes first (validation loss; first order at the current
    w, or second order through ``w - ξ ∇_w L_train``), then the w step with the new α.
    """
    if order not in (1, 2):
        raise ValueError(f"DARTS order must be 1 or 2, got {order}")
    loss_fn = make_loss_fn(net, relaxation)
    lr_fn = weight_lr(config, total_steps)
    xi_const = getattr(config, "xi", None)
    tau_fn = tau_fn or (lambda s: jnp.float32(1.0))

    def step(state: SearchState, batch: dict) -> tuple[SearchState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        k_at, k_av, k_rt, k_rv = jax.random.split(key, 4)
        aug = config.augment
        xt, yt = preprocess(k_at, batch["xt"], aug), batch["yt"]
        xv, yv = preprocess(k_av, batch["xv"], aug), batch["yv"]
        tau = tau_fn(state.step)
        params, bs = state.params, state.batch_stats
        if order == 1:
            (lv, (_, accv)), ga = jax.value_and_grad(loss_fn, argnums=2, has_aux=True)(
                params, bs, state.alpha, xv, yv, k_rv, tau)
        else:
            xi = lr_fn(state.step) if xi_const is None else xi_const
            mom, wd = None, 0.0
            if getattr(config, "virtual_momentum", False):
                mom = momentum_buffer(state.opt_state, params, config.w_momentum)
                wd = config.w_wd
            (lv, (_, accv)), ga = second_order_value_and_grad(
                loss_fn, params, bs, state.alpha, (xt, yt, k_rt), (xv, yv, k_rv), xi, tau,
                mom, wd)
        upd, a_os = a_opt.update(ga, state.alpha_opt_state, state.alpha)
        alpha = optax.apply_updates(state.alpha, upd)
        (lt, (new_bs, acct)), gw = jax.value_and_grad(loss_fn, has_aux=True)(
            params, bs, alpha, xt, yt, k_rt, tau)
        upd, w_os = w_opt.update(gw, state.opt_state, params)
        params = optax.apply_updates(params, upd)
        new = state.replace(step=state.step + 1, params=params, batch_stats=new_bs, alpha=alpha,
                            opt_state=w_os, alpha_opt_state=a_os)
        return new, {"train_loss": lt, "train_acc": acct, "val_loss": lv, "val_acc": accv}

    return step


def momentum_buffer(opt_state: Any, params: Any, mu: float) -> Any:
    """``μ ×`` the SGD momentum buffer (optax ``TraceState``) in a weight optimiser state
    (zeros when there is none, as the DARTS code before the first step)."""
    found = [s for s in jax.tree_util.tree_leaves(
        opt_state, is_leaf=lambda x: isinstance(x, optax.TraceState))
        if isinstance(s, optax.TraceState)]
    if not found:
        return jax.tree_util.tree_map(jnp.zeros_like, params)
    return jax.tree_util.tree_map(lambda t: mu * t, found[0].trace)


# ----------------------------------------------------------------------------- entry points
def bilevel_maker(order: int, relaxation: str = "softmax") -> Callable[..., Callable]:
    """``make_step(net, config, w_opt, a_opt, total)`` of :func:`jnas.oneshot.run_oneshot` for
    the bilevel step of ``order`` with ``relaxation`` (non-softmax: temperature
    ``config.tau_start`` → ``config.tau_end`` linearly); its ``step_key`` lets runs of the
    same config share the compiled step (:func:`jnas.step_cache.program_key`)."""
    def make(net, config, w_opt, a_opt, total):
        tau_fn = None
        if relaxation != "softmax":
            tau_fn = lambda s: linear_temperature(s, total, config.tau_start,  # noqa: E731
                                                  config.tau_end)
        return make_bilevel_step(net, config, w_opt, a_opt, total, order=order,
                                 relaxation=relaxation, tau_fn=tau_fn)
    make.step_key = ("bilevel", order, relaxation)
    return make


def run_darts(config: DARTSConfig, *, space: str = "nb201", dataset: str = "cifar10",
              key: int | jax.Array = 0, out_dir: str | Path | None = None, quiet: bool = False,
              **kw: Any) -> tuple[report.Result, SearchState]:
    """DARTS search (order from ``config.order``; method ``'darts2'`` for order 2): the
    result and the final state. ``kw``: ``net``, ``data``, ``stop_after`` of
    :func:`jnas.oneshot.run_oneshot`."""
    method = "darts2" if config.order == 2 else "darts"
    return run_oneshot(method, config, bilevel_maker(config.order), space=space,
                       dataset=dataset, key=key, out_dir=out_dir, quiet=quiet, **kw)


def run_darts2(config: DARTS2Config, *, space: str = "nb201", dataset: str = "cifar10",
               key: int | jax.Array = 0, out_dir: str | Path | None = None,
               quiet: bool = False, **kw: Any) -> tuple[report.Result, SearchState]:
    """Second-order DARTS: :func:`run_darts` with a config of ``order=2``."""
    if config.order != 2:
        raise ValueError(f"run_darts2 needs a config with order=2 (DARTS2Config), got "
                         f"order={config.order}")
    return run_darts(config, space=space, dataset=dataset, key=key, out_dir=out_dir,
                     quiet=quiet, **kw)


def run_gdas(config: GDASConfig, *, space: str = "nb201", dataset: str = "cifar10",
             key: int | jax.Array = 0, out_dir: str | Path | None = None, quiet: bool = False,
             **kw: Any) -> tuple[report.Result, SearchState]:
    """GDAS-style search (bilevel, straight-through hard Gumbel): the result and the final
    state."""
    return run_oneshot("gdas", config, bilevel_maker(1, "hard_gumbel"), space=space,
                       dataset=dataset, key=key, out_dir=out_dir, quiet=quiet, **kw)
