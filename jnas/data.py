"""Datasets, search split, CIFAR augmentation and host-side batching.

The image sources (:func:`load_image_folder`, :func:`load_cifar10`, :func:`load_cifar100`,
:func:`load_tfds`, :func:`load_arrays`, :func:`validate_batch`) live in
:mod:`jnas.data_images` and are re-exported here. Then :func:`search_split` (the train/val
halves of the training set that DARTS, Liu et al. ICLR 2019, and NAS-Bench-201, Dong & Yang
ICLR 2020, search on), :func:`normalize`,
:func:`augment` (the standard CIFAR pad-4 random crop + horizontal flip, He et al. CVPR 2016,
as a pure jit-able JAX function), :func:`batch_iterator` (deterministic order per key, static
batch shapes) and :func:`prefetch_to_device`.
"""
from __future__ import annotations

import collections
import functools
import itertools
from typing import Any, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jnas.data_images import (IMAGE_EXTENSIONS, cache_dir, list_classes, load_arrays,
                              load_cifar10, load_cifar100, load_image_folder, load_tfds,
                              validate_batch)
from jnas.rng import as_key, np_rng

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "CIFAR10_CLASSES",
           "IMAGE_EXTENSIONS", "Batch", "cache_dir", "list_classes", "load_image_folder",
           "load_tfds", "load_cifar10", "load_cifar100", "load_arrays", "validate_batch",
           "search_split", "normalize", "augment", "batch_iterator", "prefetch_to_device",
           "mock_cifar"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

Batch = tuple[np.ndarray, np.ndarray]


# ----------------------------------------------------------------------------- split / transforms

def search_split(images: np.ndarray, labels: np.ndarray, key: Any, frac: float = 0.5
                 ) -> tuple[Batch, Batch]:
    """Splits a training set into the search train / val halves (DARTS, NB201).

    DARTS (Liu et al., ICLR 2019) and NAS-Bench-201 (Dong & Yang, ICLR 2020) search on half
    of CIFAR-10 train (25k) and use the other half (25k) for the architecture / validation
    signal. The split is stratified per class (each class split in the same proportion) and
    a pure function of ``key``; each half comes in a random order, so any prefix of it is a
    random sample of all classes even when the input is sorted by class.

    Returns:
      ``((train_images, train_labels), (val_images, val_labels))``, disjoint, covering all.
    """
    validate_batch(images, labels, what="search_split")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1) (share of examples in the train half), "
                         f"got {frac}")
    rng = np_rng(key)
    labels = np.asarray(labels)
    tr, va = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(frac * len(idx)))
        tr.append(idx[:k])
        va.append(idx[k:])
    # Each half in a random order: loaders return images grouped by class (image folders,
    # ``max_per_class``), and callers take prefixes (validation batches, read-out subsets).
    tr_i = rng.permutation(np.concatenate(tr))
    va_i = rng.permutation(np.concatenate(va))
    return (images[tr_i], labels[tr_i]), (images[va_i], labels[va_i])


def normalize(x: Any, mean: Sequence[float] = CIFAR10_MEAN,
              std: Sequence[float] = CIFAR10_STD) -> jax.Array:
    """uint8 ``[..., 3]`` pixels (or floats in [0, 1]) -> float32 ``(x/255 - mean) / std``."""
    x = jnp.asarray(x)
    if x.shape[-1] != len(mean):
        raise ValueError(f"normalize: last axis must be the {len(mean)} channels, got shape "
                         f"{x.shape}")
    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 255.0
    else:
        x = x.astype(jnp.float32)
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


@functools.partial(jax.jit, static_argnames=("pad", "flip"))
def augment(key: jax.Array, x: jax.Array, pad: int = 4, flip: bool = True) -> jax.Array:
    """Standard CIFAR augmentation: zero-pad by ``pad``, random crop back, random h-flip.

    The pad-4 random crop + horizontal flip of He et al. (CVPR 2016), used by DARTS and
    NAS-Bench-201. Pure and jitted (callable inside other jitted code); each example gets
    its own key (``split(key, N)``), so the result is a function of ``key``. Apply to uint8
    pixels before :func:`normalize` to pad with black like torchvision. Keeps dtype and
    shape.

    Args:
      key: a JAX PRNG key.
      x: ``[N, H, W, C]`` batch.
    """
    if x.ndim != 4:
        raise ValueError(f"augment: expected a [N, H, W, C] batch, got shape {x.shape}")
    n, h, w, c = x.shape
    keys = jax.random.split(key, n)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(k, img):
        k1, k2, k3 = jax.random.split(k, 3)
        dy = jax.random.randint(k1, (), 0, 2 * pad + 1)
        dx = jax.random.randint(k2, (), 0, 2 * pad + 1)
        out = jax.lax.dynamic_slice(img, (dy, dx, 0), (h, w, c))
        if flip:
            out = jnp.where(jax.random.bernoulli(k3), out[:, ::-1, :], out)
        return out

    return jax.vmap(one)(keys, padded)


# ----------------------------------------------------------------------------- batching

def batch_iterator(images: np.ndarray, labels: np.ndarray, batch_size: int, key: Any,
                   epochs: int | None = None, drop_remainder: bool = True) -> Iterator[Batch]:
    """Yields shuffled ``(images[B, ...], labels[B])`` numpy batches.

    Each epoch is a fresh permutation drawn from ``fold_in(key, epoch)``, so the order is a
    pure function of ``key`` (and resuming at epoch e reproduces the same batches). With
    ``drop_remainder`` every batch has the static shape ``[batch_size, ...]`` (no re-jit);
    otherwise the last batch of an epoch may be smaller.

    Args:
      images, labels: the data set (host arrays).
      batch_size: examples per batch.
      key: JAX key or int seed.
      epochs: number of passes; ``None`` iterates forever.
      drop_remainder: drop the incomplete last batch of each epoch.
    """
    validate_batch(images, labels, what="batch_iterator")
    n = len(labels)
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if drop_remainder and batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} examples, so with "
                         f"drop_remainder=True no batch would be produced; lower batch_size.")
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs must be >= 0 or None, got {epochs}")
    key = as_key(key)
    stop = n - n % batch_size if drop_remainder else n
    for epoch in itertools.count() if epochs is None else range(epochs):
        perm = np_rng(jax.random.fold_in(key, epoch)).permutation(n)
        for lo in range(0, stop, batch_size):
            idx = perm[lo:lo + batch_size]
            yield images[idx], labels[idx]


def prefetch_to_device(iterator: Iterable, size: int = 2, sharding: Any = None) -> Iterator:
    """Moves the next ``size`` batches (pytrees) to device ahead of use.

    Args:
      iterator: yields pytrees of host arrays.
      size: batches kept in flight.
      sharding: a ``jax.sharding.Sharding`` (e.g. ``NamedSharding(mesh, P('data'))`` to shard
        the batch axis over devices) or ``None`` for the default device.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    queue: collections.deque = collections.deque()
    it = iter(iterator)

    def put(tree):
        return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)

    for tree in itertools.islice(it, size):
        queue.append(put(tree))
    while queue:
        yield queue.popleft()
        for tree in itertools.islice(it, 1):
            queue.append(put(tree))


def mock_cifar(n: int, key: Any, num_classes: int = 10, image_size: int = 32
               ) -> tuple[np.ndarray, np.ndarray]:
    """A small learnable fake CIFAR set for tests: ``(uint8[n, S, S, 3], int32[n])``.

    Each class has its own mean colour plus noise, so a tiny network can fit it; the result
    is a pure function of ``key``.
    """
    if n <= 0 or num_classes <= 0:
        raise ValueError(f"mock_cifar needs n > 0 and num_classes > 0, got n={n}, "
                         f"num_classes={num_classes}")
    rng = np_rng(key)
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    colours = np_rng(jax.random.fold_in(as_key(key), 1)).uniform(40, 215, size=(num_classes, 3))
    noise = rng.normal(0.0, 30.0, size=(n, image_size, image_size, 3))
    images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels
