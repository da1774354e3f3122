"""Explicit-key randomness for host-side code (search loops, samplers, data order).

Every random choice in jnas is a function of a ``jax.random`` key. Host-side code that needs
many cheap draws (mutations, candidate pools, shuffles) turns a key into a NumPy generator with
:func:`np_rng`, so the result is a pure function of the key and fast on the host.
"""
from __future__ import annotations

import jax
import numpy as np

__all__ = ["as_key", "np_rng", "split"]


def as_key(seed_or_key: int | jax.Array) -> jax.Array:
    """A typed JAX PRNG key from an int seed, a raw ``uint32[2]`` key or a typed key."""
    if isinstance(seed_or_key, (int, np.integer)):
        return jax.random.key(int(seed_or_key))
    key = seed_or_key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def np_rng(key: int | jax.Array) -> np.random.Generator:
    """A NumPy generator seeded deterministically from a JAX key (or an int seed)."""
    data = np.asarray(jax.random.key_data(as_key(key))).astype(np.uint64).ravel()
    return np.random.default_rng([int(x) for x in data])


def split(key: jax.Array, n: int = 2) -> jax.Array:
    """``jax.random.split`` on a typed key (re-exported for host loops)."""
    return jax.random.split(as_key(key), n)
