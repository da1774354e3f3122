"""DARTS (first order and exact second order) and GDAS-style hard-Gumbel search, the shared
one-shot search driver, and the CLI registration of every one-shot method.

* DARTS: Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019
  (arXiv 1806.09055). Bilevel: α minimises the validation loss of w*(α). First order
  alternates one Adam step on α (validation batch) and one SGD step on w (training batch).
  Second order differentiates the validation loss through one virtual SGD step
  ``w' = w - ξ ∇_w L_train(w, α)`` — here *exactly*, with ``jax.grad`` through the inner
  update (the original code used a finite-difference Hessian-vector product).
* GDAS-style: Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours",
  CVPR 2019: the same bilevel loop with one op per edge sampled by straight-through hard
  Gumbel (temperature 10 → 0.1), a cheap extra.

SNAS lives in :mod:`jnas.snas`, the population search in :mod:`jnas.less_local`; the epoch
loop, data, discretisation and the α plot in :mod:`jnas.oneshot`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.config import config_to_dict
from jnas.oneshot import (OneShotConfig, SearchState, Supernet, alpha_optimizer, alpha_probs,
                          cross_entropy, discretise, init_alpha, init_state, load_search_data,
                          make_supernet, plot_alpha, preprocess, run_epochs, score_arch,
                          weight_lr, weight_optimizer)
from jnas.registry import register
from jnas.relax import linear_temperature, relax
from jnas.rng import as_key

__all__ = ["DARTSConfig", "DARTS2Config", "GDASConfig", "make_bilevel_step",
           "second_order_value_and_grad", "make_loss_fn", "run_darts",
           "run_gdas", "run_oneshot", "data_mesh", "SearchState", "discretise"]


@dataclasses.dataclass(frozen=True)
class DARTSConfig(OneShotConfig):
    """DARTS search (reference: 50 epochs, batch 64, 25k/25k split, see OneShotConfig).

    ``order``: 1 (first order, DARTS-V1) or 2 (exact second order, DARTS-V2). ``xi``: the
    virtual step size of second order; ``None`` = the current weight learning rate (as in the
    DARTS code).
    """
    order: int = 1
    xi: float | None = None


@dataclasses.dataclass(frozen=True)
class DARTS2Config(DARTSConfig):
    """Second-order DARTS (DARTS-V2): exact hypergradient through one virtual SGD step."""
    order: int = 2


@dataclasses.dataclass(frozen=True)
class GDASConfig(OneShotConfig):
    """GDAS-style search: bilevel DARTS with straight-through hard Gumbel samples.

    Temperature linearly 10 → 0.1 over the search (GDAS paper); 240 epochs in the GDAS NB201
    run, α Adam lr 3e-4 with betas (0.5, 0.999), wd 1e-3 (NB201 reference code).
    """
    epochs: int = 240
    tau_start: float = 10.0
    tau_end: float = 0.1


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
                                tau: jax.Array | float = 1.0) -> tuple[Any, Any]:
    """Exact DARTS second-order hypergradient (Liu et al. 2019, eq. 6-7 without the
    finite-difference approximation).

    Differentiates ``L_val(w - ξ ∇_w L_train(w, α), α)`` with respect to α by ``jax.grad``
    through the inner gradient step. ``train``/``val`` are ``(x, y, key)``; ``loss_fn`` has the
    signature of :func:`make_loss_fn`. Returns ``((val_loss, aux), grad_alpha)``.
    """
    xt, yt, kt = train
    xv, yv, kv = val

    def unrolled(a):
        gw, (bs1, _) = jax.grad(loss_fn, has_aux=True)(params, batch_stats, a, xt, yt, kt, tau)
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
            (lv, (_, accv)), ga = second_order_value_and_grad(
                loss_fn, params, bs, state.alpha, (xt, yt, k_rt), (xv, yv, k_rv), xi, tau)
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


# ----------------------------------------------------------------------------- driver
def data_mesh(batch_size: int) -> Any:
    """A data-parallel mesh over the largest number of local devices dividing the batch."""
    from jnas.oneshot import train_module
    train = train_module()
    devs = jax.devices()
    n = max(d for d in range(1, len(devs) + 1) if batch_size % d == 0)
    return train.make_mesh(devs[:n])


def _jit_step(step: Callable, batch_size: int, xla: str | None = "fast") -> Callable:
    """``step`` jitted (state donated, XLA-CPU options ``xla``) on a data-parallel mesh."""
    from jnas.oneshot import train_module
    train = train_module()
    mesh = data_mesh(batch_size)
    from jnas.cells import compiler_options
    jstep = jax.jit(step, donate_argnums=0, compiler_options=compiler_options(xla))

    def run(state, batch):
        return jstep(state, train.shard_batch(batch, mesh))
    run.mesh = mesh  # type: ignore[attr-defined]
    return run


def run_oneshot(method: str, config: OneShotConfig, make_step: Callable[..., Callable], *,
                space: str, dataset: str, key: int | jax.Array, out_dir: str | Path | None,
                net: Supernet | None = None, data: tuple[np.ndarray, ...] | None = None,
                stop_after: int | None = None) -> dict[str, Any]:
    """Runs one single-(w, α) one-shot search and returns the result record.

    ``make_step(net, config, w_opt, a_opt, total_steps) -> step`` builds the method's step.
    The record has the CLI contract fields (``best_arch``, ``trajectory`` = [[epoch, NB201
    test accuracy of the current discretised cell]], ``bench``, ``wall_s``, ``compile_s``,
    ``config``) plus ``genotype``, ``alpha_history`` (softmax(α) per epoch), ``history``.
    """
    from jnas.oneshot import train_module
    train = train_module()
    t_start = time.time()
    key = as_key(key)
    k_data, k_init, k_alpha, k_loop = jax.random.split(key, 4)
    data = data if data is not None else load_search_data(dataset, config, k_data)
    net = net if net is not None else make_supernet(space, config)
    steps_per_epoch = min(len(data[0]), len(data[2])) // config.batch_size
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={config.batch_size} exceeds the search split "
                         f"({len(data[0])}/{len(data[2])} images); lower it")
    total = steps_per_epoch * config.epochs
    w_opt, a_opt = weight_optimizer(config, total), alpha_optimizer(config)
    alpha = init_alpha(net, k_alpha, config.alpha_init_std)
    x0 = preprocess(k_init, jnp.asarray(data[0][:config.batch_size]), False)
    state = init_state(net, k_init, alpha, w_opt, a_opt, x0)
    step = _jit_step(make_step(net, config, w_opt, a_opt, total), config.batch_size,
                     config.xla)
    state = train.replicate(state, step.mesh)
    bench_dataset = dataset if dataset in ("cifar10", "cifar100", "ImageNet16-120") else "cifar10"

    def on_epoch(st: SearchState, epoch: int) -> dict[str, Any]:
        arch = discretise(space, jax.device_get(st.alpha))
        probs = alpha_probs(jax.device_get(st.alpha))
        rec = {"arch": arch.to_string(), "alpha": {k: v.tolist() for k, v in probs.items()}}
        sc = score_arch(space, arch)
        if sc is not None:
            rec["test_accuracy"] = sc[f"test_accuracy_{bench_dataset}"]
        return rec

    out = Path(out_dir) if out_dir is not None else None
    cfg_dict = {"method": method, "space": space, "dataset": dataset,
                "key": np.asarray(jax.random.key_data(key)).tolist(), **config_to_dict(config)}
    state, history, compile_s = run_epochs(
        state=state, step_fn=step, data=data, epochs=config.epochs,
        steps_per_epoch=steps_per_epoch, batch_size=config.batch_size, key=k_loop, out_dir=out,
        config_dict=cfg_dict, on_epoch=on_epoch, checkpoint=config.checkpoint,
        stop_after=stop_after,
        config_defaults=config_to_dict(type(config)()))
    return finish_result(method, space, dataset, config, jax.device_get(state.alpha), history,
                         t_start, compile_s, out, net.ops, state=state)


def finish_result(method: str, space: str, dataset: str, config: OneShotConfig,
                  alpha: dict[str, Any], history: list[dict[str, Any]], t_start: float,
                  compile_s: float, out: Path | None, ops: tuple[str, ...],
                  extra: dict[str, Any] | None = None, state: Any = None) -> dict[str, Any]:
    """The result record of a finished search (and the α plot next to ``result.json``)."""
    arch = discretise(space, alpha)
    result: dict[str, Any] = {
        "method": method, "space": space, "dataset": dataset,
        "best_arch": arch.to_string(), "genotype": arch.to_string(),
        "trajectory": [[h["epoch"], h.get("test_accuracy")] for h in history],
        "bench": score_arch(space, arch),
        "alpha_history": [h["alpha"] for h in history],
        "alpha_final": {k: np.asarray(v).tolist() for k, v in alpha.items()},
        "history": [{k: v for k, v in h.items() if k != "alpha"} for h in history],
        "wall_s": time.time() - t_start, "compile_s": compile_s,
        "config": config_to_dict(config)}
    if extra:
        result.update(extra)
    if out is not None and config.plot and history:
        p = plot_alpha(history, ops, out / "alpha.png")
        result["alpha_plot"] = str(p) if p else None
    if state is not None:
        result["_state"] = state  # popped by the registered factories; kept for tests
    return result


def _bilevel_maker(order: int, relaxation: str = "softmax") -> Callable[..., Callable]:
    def make(net, config, w_opt, a_opt, total):
        tau_fn = None
        if relaxation != "softmax":
            tau_fn = lambda s: linear_temperature(s, total, config.tau_start,  # noqa: E731
                                                  config.tau_end)
        return make_bilevel_step(net, config, w_opt, a_opt, total, order=order,
                                 relaxation=relaxation, tau_fn=tau_fn)
    return make


def run_darts(config: DARTSConfig, *, space: str = "nb201", dataset: str = "cifar10",
              key: int | jax.Array = 0, out_dir: str | Path | None = None,
              **kw: Any) -> dict[str, Any]:
    """DARTS search (order from ``config.order``); returns the result record."""
    method = "darts2" if config.order == 2 else "darts"
    return run_oneshot(method, config, _bilevel_maker(config.order), space=space,
                       dataset=dataset, key=key, out_dir=out_dir, **kw)


def run_gdas(config: GDASConfig, *, space: str = "nb201", dataset: str = "cifar10",
             key: int | jax.Array = 0, out_dir: str | Path | None = None,
             **kw: Any) -> dict[str, Any]:
    """GDAS-style search (bilevel, straight-through hard Gumbel); returns the result record."""
    return run_oneshot("gdas", config, _bilevel_maker(1, "hard_gumbel"), space=space,
                       dataset=dataset, key=key, out_dir=out_dir, **kw)


def _public(result: dict[str, Any]) -> dict[str, Any]:
    result.pop("_state", None)
    return result


@register("darts", kind="oneshot", config_cls=DARTSConfig, spaces=("nb201", "darts"),
          doc="DARTS first order (Liu et al. 2019)")
def _darts_factory(config, *, space, dataset, key, out_dir):
    return _public(run_darts(config, space=space, dataset=dataset, key=key, out_dir=out_dir))


@register("darts2", kind="oneshot", config_cls=DARTS2Config, spaces=("nb201", "darts"),
          doc="DARTS exact second order (Liu et al. 2019)")
def _darts2_factory(config, *, space, dataset, key, out_dir):
    return _public(run_darts(config, space=space, dataset=dataset, key=key, out_dir=out_dir))


@register("gdas", kind="oneshot", config_cls=GDASConfig, spaces=("nb201", "darts"),
          doc="GDAS-style hard Gumbel bilevel search (Dong & Yang 2019)")
def _gdas_factory(config, *, space, dataset, key, out_dir):
    return _public(run_gdas(config, space=space, dataset=dataset, key=key, out_dir=out_dir))


from jnas import less_local as _less_local  # noqa: E402,F401  (registers 'less-local')
from jnas import snas as _snas  # noqa: E402,F401  (registers 'snas')
