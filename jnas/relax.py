"""Continuous relaxations of a categorical op choice per edge (pure functions).

Every one-shot method drives the same supernet with per-edge op weights ``f32[E, K]``; the
relaxation turns the architecture logits ``alpha`` (same shape) into those weights:

* :func:`softmax_weights` — DARTS (Liu et al., ICLR 2019, arXiv 1806.09055): ``softmax(alpha)``.
* :func:`gumbel_softmax` — SNAS (Xie et al., ICLR 2019, arXiv 1812.09926):
  ``softmax((alpha + G) / tau)`` with Gumbel noise ``G = -log(-log U)``.
* :func:`hard_gumbel` — GDAS-style (Dong & Yang, CVPR 2019, arXiv 1910.04465): a one-hot sample
  ``argmax(alpha + G)`` in the forward pass with the Gumbel-softmax gradient
  (straight-through estimator).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["softmax_weights", "gumbel_softmax", "hard_gumbel", "relax", "RELAXATIONS",
           "linear_temperature"]

RELAXATIONS = ("softmax", "gumbel", "hard_gumbel")


def softmax_weights(alpha: jax.Array) -> jax.Array:
    """DARTS mixed-op weights: softmax of ``alpha`` over the last (op) axis."""
    return jax.nn.softmax(alpha, axis=-1)


def _gumbel(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    # Clipped away from 0 and 1 so that -log(-log U) is finite.
    u = jax.random.uniform(key, shape, dtype, minval=1e-10, maxval=1.0 - 1e-7)
    return -jnp.log(-jnp.log(u))


def gumbel_softmax(key: jax.Array, alpha: jax.Array, tau: float | jax.Array) -> jax.Array:
    """A Gumbel-softmax (concrete) sample ``softmax((alpha + G) / tau)`` per edge (SNAS eq. 2).

    Args:
      key: PRNG key (one independent Gumbel draw per entry of ``alpha``).
      alpha: logits ``f32[..., K]``.
      tau: temperature (> 0); small values give nearly one-hot samples.

    Returns:
      Weights of ``alpha``'s shape, non-negative and summing to 1 over the last axis.
    """
    g = _gumbel(key, alpha.shape, alpha.dtype)
    return jax.nn.softmax((alpha + g) / tau, axis=-1)


def hard_gumbel(key: jax.Array, alpha: jax.Array, tau: float | jax.Array = 1.0) -> jax.Array:
    """Straight-through hard Gumbel sample (GDAS-style): one-hot forward, soft gradient.

    The forward value is ``one_hot(argmax(alpha + G))`` — exactly a sample from
    ``Categorical(softmax(alpha))`` — and the gradient is that of ``gumbel_softmax`` with the
    same noise, so only one op per edge contributes to the forward pass.
    """
    g = _gumbel(key, alpha.shape, alpha.dtype)
    soft = jax.nn.softmax((alpha + g) / tau, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(alpha + g, axis=-1), alpha.shape[-1], dtype=alpha.dtype)
    return soft + jax.lax.stop_gradient(hard - soft)


def relax(kind: str, alpha: jax.Array, key: jax.Array | None = None,
          tau: float | jax.Array = 1.0) -> jax.Array:
    """Dispatches to the relaxation named ``kind`` (one of :data:`RELAXATIONS`)."""
    if kind == "softmax":
        return softmax_weights(alpha)
    if key is None:
        raise ValueError(f"relaxation {kind!r} samples Gumbel noise: pass a PRNG key")
    if kind == "gumbel":
        return gumbel_softmax(key, alpha, tau)
    if kind == "hard_gumbel":
        return hard_gumbel(key, alpha, tau)
    raise ValueError(f"unknown relaxation {kind!r}; valid: {', '.join(RELAXATIONS)}")


def linear_temperature(step: jax.Array | int, total_steps: int, tau_start: float = 1.0,
                       tau_end: float = 0.03) -> jax.Array:
    """Linear annealing of the temperature from ``tau_start`` to ``tau_end`` (SNAS code)."""
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(int(total_steps) - 1, 1), 0.0, 1.0)
    return tau_start + (tau_end - tau_start) * frac
