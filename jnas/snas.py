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

from jnas import cost, report
from jnas.config import check_choice, check_positive
from jnas.oneshot import (OneShotConfig, SearchState, Supernet, check_finite_fields,
                          cross_entropy, preprocess, run_oneshot)
from jnas.relax import gumbel_softmax, linear_temperature
from jnas.spaces import DARTS_OPS, NB201_OPS

__all__ = ["SNASConfig", "RESOURCE_PRESETS", "COST_KINDS", "op_cost_table", "expected_cost",
           "resource_eta", "make_snas_step", "run_snas"]

RESOURCE_PRESETS = {"none": 0.0, "mild": 1.5e-3, "moderate": 1e-2, "aggressive": 5e-2}
COST_KINDS = ("params", "flops", "mac")


@dataclasses.dataclass(frozen=True)
class SNASConfig(OneShotConfig):
    """SNAS search: 150 epochs, 8 cells, C=16, batch 64, w as DARTS, α Adam lr 3e-4 [paper]."""
    epochs: int = 150  # search epochs
    tau_start: float = 1.0  # Gumbel-softmax temperature at the first step
    tau_end: float = 0.03  # Gumbel-softmax temperature at the last step
    resource: str = "mild"  # resource preset: none, mild, moderate, aggressive (η values)
    eta: float | None = None  # resource penalty weight η (None: the preset's value)
    cost: str = "flops"  # resource of the penalty: 'params', 'flops' or 'mac' (memory access)
    penalty: str = "log"  # 'log' (released code) or 'linear' penalty of the expected cost

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "tau_start", "tau_end")
        check_positive(self, "eta", allow_zero=True)
        check_finite_fields(self, "tau_start", "tau_end", "eta")
        check_choice(self, "resource", tuple(RESOURCE_PRESETS))
        check_choice(self, "cost", COST_KINDS)
        check_choice(self, "penalty", ("log", "linear"))


# ----------------------------------------------------------------------------- costs
def _nb201_op_mac(op: str, c: int, hw: int) -> float:
    """Memory access of one NB201 op at ``c`` channels and ``hw``×``hw``: feature maps read and
    written plus the weights of a ReLU-Conv-BN conv."""
    k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}.get(op)
    fmap = c * hw * hw
    if k is not None:
        return 2 * fmap + k * k * c * c
    if op in ("avg_pool_3x3", "skip_connect"):
        return 2.0 * fmap
    return 0.0  # none


def _darts_op_mac(op: str, c: int, hw: int, stride: int) -> float:
    """Memory access of one DARTS-space op (input c channels, output hw×hw)."""
    if op == "none":
        return 0.0
    if op.startswith("sep_conv"):
        k = int(op[-1])
        weights = 2 * (k * k * c + c * c)
    elif op.startswith("dil_conv"):
        k = int(op[-1])
        weights = k * k * c + c * c
    elif op == "skip_connect" and stride == 2:
        weights = c * c  # factorized reduce: two 1x1 convs to c/2
    else:
        weights = 0
    return float(2 * c * hw * hw + weights)


def op_cost_table(space: str, C: int, *, N: int = 5, layers: int = 8, kind: str = "flops",
                  image_hw: int = 32) -> dict[str, np.ndarray]:
    """Per-edge, per-op resource cost summed over all cells of the search network, in millions.

    NB201: ``{"cell": f32[6, 5]}`` over 3 stages of N cells (C, 2C, 4C channels at 32, 16, 8
    pixels). DARTS space: ``{"normal": f32[14, 8], "reduce": f32[14, 8]}`` over ``layers``
    cells (reductions at 1/3 and 2/3; stride-2 edges from the cell inputs of reduction cells).
    Params/FLOPs are :func:`jnas.cost.op_costs`; memory access ('mac': feature maps read and
    written + weights) is an analytic count made here.
    """
    if kind not in COST_KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; valid: {', '.join(COST_KINDS)}")
    if space not in ("nb201", "darts"):
        raise ValueError(f"unknown space {space!r}; valid: nb201, darts")
    if kind in ("params", "flops"):  # exact counts of the search network
        t = cost.op_costs(space, C, N=N, layers=layers, input_shape=(image_hw, image_hw, 3))
        if space == "nb201":
            return {"cell": t[kind]}
        return {"normal": t[f"{kind}_normal"], "reduce": t[f"{kind}_reduce"]}
    if space == "nb201":
        row = np.zeros(len(NB201_OPS))
        for s in range(3):
            c, hw = C * 2 ** s, image_hw // 2 ** s
            row += N * np.array([_nb201_op_mac(op, c, hw) for op in NB201_OPS])
        return {"cell": np.tile(row, (6, 1)).astype(np.float32) / 1e6}
    out = {"normal": np.zeros((14, len(DARTS_OPS))), "reduce": np.zeros((14, len(DARTS_OPS)))}
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
                out[name][e] += [_darts_op_mac(op, c, hw, stride) for op in DARTS_OPS]
                e += 1
    return {k: v.astype(np.float32) / 1e6 for k, v in out.items()}


def expected_cost(weights: dict[str, jax.Array], costs: dict[str, jax.Array]) -> jax.Array:
    """``Σ_e Σ_k Z_ek c_ek``: the network cost under (relaxed) one-hot weights ``Z``, decomposed
    over edges (its expectation over Z equals the expectation under softmax(α) for one-hot Z)."""
    return sum(jnp.sum(weights[k] * costs[k]) for k in weights)


def resource_eta(config: SNASConfig) -> float:
    """The resource penalty weight η of ``config``: ``eta`` when set, else the value of the
    ``resource`` preset (:data:`RESOURCE_PRESETS`)."""
    if config.eta is not None:
        return float(config.eta)
    return RESOURCE_PRESETS[config.resource]


# ----------------------------------------------------------------------------- step
def make_snas_step(net: Supernet, config: SNASConfig, w_opt: optax.GradientTransformation,
                   a_opt: optax.GradientTransformation, total_steps: int,
                   costs: dict[str, np.ndarray] | None = None
                   ) -> Callable[[SearchState, dict], tuple[SearchState, dict]]:
    """The SNAS step: one Gumbel-softmax sample per edge, one backward pass of
    ``CE + η·penalty`` on the training batch giving both ∇w and ∇α."""
    eta = resource_eta(config)
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
             key: int | jax.Array = 0, out_dir: str | Path | None = None, quiet: bool = False,
             costs: dict[str, np.ndarray] | None = None,
             **kw: Any) -> tuple[report.Result, SearchState]:
    """SNAS search (child = argmax on every edge): the result (with ``eta``) and the final
    state. ``costs`` replaces the op cost table (tests); ``kw``: ``net``, ``data``,
    ``stop_after`` of :func:`jnas.oneshot.run_oneshot`."""
    def make(net, cfg, w_opt, a_opt, total):
        return make_snas_step(net, cfg, w_opt, a_opt, total, costs=costs)
    res, state = run_oneshot("snas", config, make, space=space, dataset=dataset, key=key,
                             out_dir=out_dir, quiet=quiet, **kw)
    return res.replace(eta=resource_eta(config)), state
