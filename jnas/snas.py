"""SNAS: stochastic neural architecture search (Xie, Zheng, Liu, Lin; ICLR 2019,
arXiv 1812.09926).

Each edge's op is a categorical variable with logits α_e, relaxed by Gumbel-softmax
``Z_e = softmax((α_e + G) / λ)``; the temperature λ falls linearly 1.0 → 0.03 over the search
[code]. **Single level**: w and α get their gradients from the same loss on the same training
batch in one backward pass. Resource constraint: ``loss = CE + η · R(E_Z[cost(Z)])`` where the
cost decomposes over edges, ``cost(Z) = Σ_e Σ_k Z_ek c_ek`` with ``c_ek`` the summed cost of op
k on edge e over all cells (params, FLOPs or memory access), estimated by reparameterisation
(the released search: a log penalty, η = 1.5e-3). The child keeps the argmax op on **every**
edge (``none`` removes the edge).

[U] The paper does not publish the η of its mild / moderate / aggressive runs; the presets here
are 1.5e-3 (the released value) / 1e-2 / 5e-2 with the log penalty, chosen as increasing η and
reported as such.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.darts import _public, run_oneshot
from jnas.oneshot import OneShotConfig, SearchState, Supernet, cross_entropy, preprocess
from jnas.registry import register
from jnas.relax import gumbel_softmax, linear_temperature

__all__ = ["SNASConfig", "RESOURCE_PRESETS", "op_cost_table", "expected_cost",
           "make_snas_step", "run_snas"]

RESOURCE_PRESETS = {"none": 0.0, "mild": 1.5e-3, "moderate": 1e-2, "aggressive": 5e-2}
COST_KINDS = ("params", "flops", "mac")


@dataclasses.dataclass(frozen=True)
class SNASConfig(OneShotConfig):
    """SNAS search: 150 epochs, 8 cells, C=16, batch 64, w as DARTS, α Adam lr 3e-4 [paper].

    ``resource``: a preset name in :data:`RESOURCE_PRESETS` (``eta`` overrides its value);
    ``cost``: 'params', 'flops' or 'mac' (memory access); ``penalty``: 'log' (released code)
    or 'linear'.
    """
    epochs: int = 150
    tau_start: float = 1.0
    tau_end: float = 0.03
    resource: str = "mild"
    eta: float | None = None
    cost: str = "flops"
    penalty: str = "log"


# ----------------------------------------------------------------------------- costs
def _nb201_op_cost(op: str, c: int, hw: int, kind: str) -> float:
    """Cost of one NB201 op at ``c`` channels and ``hw``×``hw`` resolution (BN params ignored;
    conv = ReLU-Conv-BN)."""
    k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}.get(op)
    fmap = c * hw * hw
    if k is not None:
        params = k * k * c * c
        return {"params": params, "flops": params * hw * hw, "mac": 2 * fmap + params}[kind]
    if op == "avg_pool_3x3":
        return {"params": 0.0, "flops": 9.0 * fmap, "mac": 2.0 * fmap}[kind]
    if op == "skip_connect":
        return {"params": 0.0, "flops": 0.0, "mac": 2.0 * fmap}[kind]
    return 0.0  # none


def _darts_op_cost(op: str, c: int, hw: int, kind: str, stride: int) -> float:
    """Cost of one DARTS-space op (input c channels, output hw×hw)."""
    fmap = c * hw * hw
    if op.startswith("sep_conv"):
        k = int(op[-1])
        params = 2 * (k * k * c + c * c)
    elif op.startswith("dil_conv"):
        k = int(op[-1])
        params = k * k * c + c * c
    elif op == "skip_connect" and stride == 2:
        params = c * c  # factorized reduce: two 1x1 convs to c/2
    else:
        params = 0
    if kind == "params":
        return float(params)
    if kind == "flops":
        pool = 9.0 * fmap if "pool" in op else 0.0
        return float(params * hw * hw + pool)
    if op == "none":
        return 0.0
    return float(2 * fmap + params)


def op_cost_table(space: str, C: int, *, N: int = 5, layers: int = 8, kind: str = "flops",
                  image_hw: int = 32) -> dict[str, np.ndarray]:
    """Per-edge, per-op resource cost summed over all cells of the search network, in millions.

    NB201: ``{"cell": f32[6, 5]}`` over 3 stages of N cells (C, 2C, 4C channels at 32, 16, 8
    pixels). DARTS space: ``{"normal": f32[14, 8], "reduce": f32[14, 8]}`` over ``layers``
    cells (reductions at 1/3 and 2/3; stride-2 edges from the cell inputs of reduction cells).
    Params/FLOPs come from :func:`jnas.cells.op_costs`; memory access ('mac': feature maps read
    and written + weights) is an analytic count made here.
    """
    from jnas import spaces
    if kind not in COST_KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; valid: {', '.join(COST_KINDS)}")
    if kind in ("params", "flops") and space in ("nb201", "darts"):
        from jnas.cells import op_costs  # exact counts of the search network
        t = op_costs(space, C, N=N, layers=layers, input_shape=(image_hw, image_hw, 3))
        if space == "nb201":
            return {"cell": t[kind]}
        return {"normal": t[f"{kind}_normal"], "reduce": t[f"{kind}_reduce"]}
    if space == "nb201":
        row = np.zeros(len(spaces.NB201_OPS))
        for s in range(3):
            c, hw = C * 2 ** s, image_hw // 2 ** s
            row += N * np.array([_nb201_op_cost(op, c, hw, kind) for op in spaces.NB201_OPS])
        return {"cell": np.tile(row, (6, 1)).astype(np.float32) / 1e6}
    if space == "darts":
        ops = spaces.DARTS_OPS
        out = {"normal": np.zeros((14, len(ops))), "reduce": np.zeros((14, len(ops)))}
        c, hw = C, image_hw
        for i in range(layers):
            red = i in (layers // 3, 2 * layers // 3)
            if red:
                c, hw = 2 * c, hw // 2
            name = "reduce" if red else "normal"
            e = 0
            for node in range(4):
                for j in range(node + 2):
                    stride = 2 if red and j < 2 else 1
                    out[name][e] += [_darts_op_cost(op, c, hw, kind, stride) for op in ops]
                    e += 1
        return {k: v.astype(np.float32) / 1e6 for k, v in out.items()}
    raise ValueError(f"unknown space {space!r}; valid: nb201, darts")


def expected_cost(weights: dict[str, jax.Array], costs: dict[str, jax.Array]) -> jax.Array:
    """``Σ_e Σ_k Z_ek c_ek``: the network cost under (relaxed) one-hot weights ``Z``, decomposed
    over edges (its expectation over Z equals the expectation under softmax(α) for one-hot Z)."""
    return sum(jnp.sum(weights[k] * costs[k]) for k in weights)


def _eta(config: SNASConfig) -> float:
    if config.eta is not None:
        return float(config.eta)
    if config.resource not in RESOURCE_PRESETS:
        raise ValueError(f"unknown SNAS resource preset {config.resource!r}; valid: "
                         f"{', '.join(RESOURCE_PRESETS)} (or set eta=...)")
    return RESOURCE_PRESETS[config.resource]


# ----------------------------------------------------------------------------- step
def make_snas_step(net: Supernet, config: SNASConfig, w_opt: optax.GradientTransformation,
                   a_opt: optax.GradientTransformation, total_steps: int,
                   costs: dict[str, np.ndarray] | None = None
                   ) -> Callable[[SearchState, dict], tuple[SearchState, dict]]:
    """The SNAS step: one Gumbel-softmax sample per edge, one backward pass of
    ``CE + η·penalty`` on the training batch giving both ∇w and ∇α."""
    eta = _eta(config)
    if config.penalty not in ("log", "linear"):
        raise ValueError(f"SNAS penalty must be 'log' or 'linear', got {config.penalty!r}")
    if costs is None:
        costs = op_cost_table(net.space, config.C, N=config.N, layers=config.layers,
                              kind=config.cost)
    costs = {k: jnp.asarray(v) for k, v in costs.items()}

    def loss_fn(params, alpha, bs, x, y, key, tau):
        keys = jax.random.split(key, len(alpha))
        z = {k: gumbel_softmax(kk, a, tau) for (k, a), kk in zip(alpha.items(), keys)}
        logits, new_bs = net.apply(params, bs, x, z, True)
        ce = cross_entropy(logits, y)
        cost = expected_cost(z, costs)
        pen = jnp.log(cost + 1e-6) if config.penalty == "log" else cost
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return ce + eta * pen, (new_bs, ce, acc, cost)

    def step(state: SearchState, batch: dict) -> tuple[SearchState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        k_aug, k_z = jax.random.split(key)
        x, y = preprocess(k_aug, batch["xt"], config.augment), batch["yt"]
        tau = linear_temperature(state.step, total_steps, config.tau_start, config.tau_end)
        (loss, (new_bs, ce, acc, cost)), (gw, ga) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(state.params, state.alpha,
                                                   state.batch_stats, x, y, k_z, tau)
        upd, w_os = w_opt.update(gw, state.opt_state, state.params)
        params = optax.apply_updates(state.params, upd)
        upd, a_os = a_opt.update(ga, state.alpha_opt_state, state.alpha)
        alpha = optax.apply_updates(state.alpha, upd)
        new = state.replace(step=state.step + 1, params=params, batch_stats=new_bs, alpha=alpha,
                            opt_state=w_os, alpha_opt_state=a_os)
        return new, {"train_loss": ce, "train_acc": acc, "total_loss": loss,
                     "expected_cost_M": cost, "tau": tau}

    return step


def run_snas(config: SNASConfig, *, space: str = "nb201", dataset: str = "cifar10",
             key: int | jax.Array = 0, out_dir: str | Path | None = None,
             costs: dict[str, np.ndarray] | None = None, **kw: Any) -> dict[str, Any]:
    """SNAS search; returns the result record (child = argmax on every edge)."""
    def make(net, cfg, w_opt, a_opt, total):
        return make_snas_step(net, cfg, w_opt, a_opt, total, costs=costs)
    res = run_oneshot("snas", config, make, space=space, dataset=dataset, key=key,
                      out_dir=out_dir, **kw)
    res["eta"] = _eta(config)
    return res


@register("snas", kind="oneshot", config_cls=SNASConfig, spaces=("nb201", "darts"),
          doc="SNAS single-level Gumbel-softmax search + resource penalty (Xie et al. 2019)")
def _snas_factory(config, *, space, dataset, key, out_dir):
    return _public(run_snas(config, space=space, dataset=dataset, key=key, out_dir=out_dir))
