"""ReNAS predictor: feature tensors, the ranking CNN and its training.

Xu et al., "ReNAS: Relativistic Evaluation of Neural Architecture Search", CVPR 2021
(arXiv 1910.01523). An architecture becomes a small image-like *feature tensor*
(channels × nodes × nodes); a LeNet-like CNN maps it to a score, trained with a pairwise
logistic ranking loss so it learns *which of two architectures is better* rather than their
accuracies. The searchers that use it are in :mod:`jnas.renas`.

Feature tensor layouts (every matrix entry ``[i, j] = adj[i, j] * v[j]``: the node vector is
broadcast along rows, so an edge carries the value of the node it enters, as in the authors'
``torch.mul(matrix, vector)``):

* **NB101**, ``19 × 7 × 7``: channel 0 = type matrix with op ids ``input=1, conv1x1-bn-relu=2,
  conv3x3-bn-relu=3, maxpool3x3=4, output=5``; then for each of the 9 cells of the network
  (3 stacks × 3 cells, channels 128/256/512 at 32/16/8 px) the per-node FLOPs (/1e7) and
  params (/1e5) matrices, interleaved ``F1, P1, F2, P2, ...`` (channels 1..18). Graphs with
  fewer than 7 nodes are zero-padded *before* the output node, so the output stays last.
* **NB201**, ``7 × 8 × 8``: the node-op graph (each of the 6 edges becomes a node):
  node 0 = cell input, nodes 1..6 = the edges in ``NB201_EDGES`` order, node 7 = cell output;
  an edge ``a -> b`` between edge-nodes when ``b`` starts where ``a`` ends, ``input -> a``
  when ``a`` leaves node 0, ``a -> output`` when ``a`` enters node 3. Channel 0 = type matrix
  with ids ``input=1, none=2, skip_connect=3, nor_conv_1x1=4, nor_conv_3x3=5,
  avg_pool_3x3=6, output=7``; channels 1..6 = FLOPs/params matrices per stage (C = 16/32/64
  at 32/16/8 px; the 5 cells of a stage are identical), interleaved ``F1, P1, F2, P2, F3, P3``.

FLOPs/params per node come from the conv-only counters of :mod:`jnas.cost` (multiply-adds
of convolutions, conv + BN weights; pooling, skip and ``none`` cost 0), the NB101 vertex
channel rule of the official ``nasbench`` code included. Features are standardised per
element with statistics fitted on the training set only (:class:`Standardizer`); labels are
min-max normalised on the training set.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.cost import conv_edge_cost_nb201, conv_node_costs_nb101
from jnas.metrics import kendall_tau_jax
from jnas.rng import as_key
from jnas.spaces import NB201_EDGES, NB201_OPS, get_space
from jnas.xla import Compiled

__all__ = [
    "NB101_TYPE_IDS", "NB201_TYPE_IDS", "nb101_features", "nb201_features", "features",
    "space_name", "Standardizer", "minmax", "ReNASPredictor", "pairwise_rank_loss",
    "mse_loss", "LOSSES", "kendall_tau_jax", "TrainedPredictor", "train_predictor",
    "RankingPredictor", "compile_seconds",
]

NB101_TYPE_IDS = {"input": 1, "conv1x1-bn-relu": 2, "conv3x3-bn-relu": 3, "maxpool3x3": 4,
                  "output": 5}
NB201_TYPE_IDS = {"input": 1, **{op: i + 2 for i, op in enumerate(NB201_OPS)}, "output": 7}

# NB101 network: stem 128 channels, 3 stacks x 3 cells, channels doubled (and resolution
# halved by a max-pool) at each new stack. (in_channels, out_channels, spatial size) per cell.
_NB101_CELLS = ((128, 128, 32), (128, 128, 32), (128, 128, 32),
                (128, 256, 16), (256, 256, 16), (256, 256, 16),
                (256, 512, 8), (512, 512, 8), (512, 512, 8))
_NB201_STAGES = ((16, 32), (32, 16), (64, 8))  # (channels, spatial size) of the 3 stages


# ----------------------------------------------------------------------------- features
def _nb101_node_costs(matrix: np.ndarray, ops: Sequence[str], in_ch: int, out_ch: int,
                      hw: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (FLOPs, params) of one NB101 cell (:func:`jnas.cost.conv_node_costs_nb101`)."""
    n = matrix.shape[0]
    if n > 2 and matrix[1:].sum(axis=0)[n - 1] == 0:
        raise ValueError("NB101 cell: the output has no incoming edge from an op vertex; "
                         "prune the cell first (NB101Arch.pruned())")
    return conv_node_costs_nb101(matrix, ops, in_ch, out_ch, hw)


def _pad_before_last(x: np.ndarray, size: int, axes: Sequence[int]) -> np.ndarray:
    """Zero-pads ``axes`` to ``size`` by inserting entries before the last one."""
    n = x.shape[axes[0]]
    idx = list(range(n - 1)) + [-1] * (size - n) + [n - 1]
    out = x
    for ax in axes:
        out = np.take(out, idx, axis=ax)
        sl = [slice(None)] * out.ndim
        sl[ax] = slice(n - 1, size - 1)
        out[tuple(sl)] = 0
    return out


def nb101_features(matrix: Any, ops: Sequence[str], size: int = 7) -> np.ndarray:
    """The ReNAS ``19 × size × size`` feature tensor of an NB101 cell (Xu et al., 2021, §3.1).

    Args:
      matrix: the (pruned) upper-triangular adjacency, ``n × n`` with ``n <= size``.
      ops: ``n`` op names, ``'input'`` first and ``'output'`` last.
      size: padded node count (7 for NB101).

    Returns:
      ``float32[19, size, size]``: type matrix, then (FLOPs, params) matrices of the 9 cells.
    """
    m = np.asarray(matrix, dtype=np.int64)
    n = m.shape[0]
    if m.ndim != 2 or m.shape != (n, n) or len(ops) != n:
        raise ValueError(f"NB101 cell: matrix {m.shape} and {len(ops)} ops do not match")
    if n > size:
        raise ValueError(f"NB101 cell has {n} nodes, more than the padded size {size}")
    if ops[0] != "input" or ops[-1] != "output":
        raise ValueError("NB101 cell: ops must start with 'input' and end with 'output'")
    unknown = [o for o in ops if o not in NB101_TYPE_IDS]
    if unknown:
        raise ValueError(f"NB101 cell: unknown ops {unknown}; valid: {list(NB101_TYPE_IDS)}")
    if np.any(np.tril(m) != 0):
        raise ValueError("NB101 cell: adjacency must be strictly upper-triangular")
    adj = _pad_before_last(m.astype(np.float64), size, (0, 1))
    types = _pad_before_last(np.array([NB101_TYPE_IDS[o] for o in ops], float), size, (0,))
    chans = [adj * types[None, :]]
    for in_ch, out_ch, hw in _NB101_CELLS:
        f, p = _nb101_node_costs(m, ops, in_ch, out_ch, hw)
        chans.append(adj * _pad_before_last(f / 1e7, size, (0,))[None, :])
        chans.append(adj * _pad_before_last(p / 1e5, size, (0,))[None, :])
    return np.stack(chans).astype(np.float32)


def _nb201_node_op_adjacency() -> np.ndarray:
    """8 × 8 adjacency of the NB201 node-op graph (input, 6 edge-nodes, output)."""
    adj = np.zeros((8, 8))
    for a, (to_a, frm_a) in enumerate(NB201_EDGES, start=1):
        if frm_a == 0:
            adj[0, a] = 1
        if to_a == 3:
            adj[a, 7] = 1
        for b, (_, frm_b) in enumerate(NB201_EDGES, start=1):
            if frm_b == to_a:
                adj[a, b] = 1
    return adj


_NB201_ADJ = _nb201_node_op_adjacency()


def nb201_features(ops: Sequence[str]) -> np.ndarray:
    """The ``7 × 8 × 8`` NB201 analogue of the ReNAS tensor (layout in the module docstring).

    Args:
      ops: the 6 edge ops in ``NB201_EDGES`` order ((1,0),(2,0),(2,1),(3,0),(3,1),(3,2)).
    """
    ops = tuple(ops)
    if len(ops) != 6:
        raise ValueError(f"an NB201 cell has 6 edge ops, got {len(ops)}")
    unknown = [o for o in ops if o not in NB201_OPS]
    if unknown:
        raise ValueError(f"NB201 cell: unknown ops {unknown}; valid: {list(NB201_OPS)}")
    types = np.array([1] + [NB201_TYPE_IDS[o] for o in ops] + [7], float)
    chans = [_NB201_ADJ * types[None, :]]
    for c, hw in _NB201_STAGES:
        cost = np.array([(0.0, 0.0)] + [conv_edge_cost_nb201(o, c, hw) for o in ops] + [(0.0, 0.0)])
        chans.append(_NB201_ADJ * (cost[:, 0] / 1e7)[None, :])
        chans.append(_NB201_ADJ * (cost[:, 1] / 1e5)[None, :])
    return np.stack(chans).astype(np.float32)


def space_name(space: Any) -> str:
    """``'nb201'`` or ``'nb101'`` for a space name or object; ``ValueError`` otherwise."""
    name = space if isinstance(space, str) else getattr(space, "name", None)
    if name not in ("nb201", "nb101"):
        raise ValueError(f"ReNAS feature tensors exist for spaces 'nb201' and 'nb101', "
                         f"got {name!r}")
    return name


def features(space: Any, archs: Sequence[Any]) -> np.ndarray:
    """Stacked feature tensors ``float32[len(archs), C, n, n]`` of NB201 or NB101 archs."""
    name = space_name(space)
    if name == "nb201":
        return np.stack([nb201_features(a.ops) for a in archs])
    out = []
    for a in archs:
        a = a.pruned() if hasattr(a, "pruned") else a
        out.append(nb101_features(a.matrix, a.ops))
    return np.stack(out)


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-element standardisation ``(x - mean) / std`` fitted on a training set.

    A pure transform: :meth:`fit` returns a new object, :meth:`__call__` never changes it.
    Elements that are constant on the training set get ``std = 1`` (they map to 0).
    """
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        """Statistics over the leading (sample) axis of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2 or x.shape[0] < 1:
            raise ValueError(f"Standardizer.fit needs a batch of feature tensors, got {x.shape}")
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0).astype(np.float32),
                   std=np.where(std > 1e-12, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"feature shape {x.shape[1:]} differs from the fitted "
                             f"{self.mean.shape}")
        return (x - self.mean) / self.std


def minmax(y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min-max normalised labels and the (min, max) used; constant labels map to 0."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = float(y.min()), float(y.max())
    span = hi - lo if hi > lo else 1.0
    return ((y - lo) / span).astype(np.float32), lo, hi


# ----------------------------------------------------------------------------- model + loss
class ReNASPredictor(nn.Module):
    """The ReNAS CNN: Conv(d→2d,3×3)+BN+ReLU, Conv(2d→128,3×3)+BN+ReLU, FC →120→84→1.

    For NB101 (d = 19, 7 × 7) the flattened size is 128·7·7 = 6272 as in the paper.
    Input ``[B, d, n, n]`` (channels first, as the feature tensors); output ``[B]``.
    """
    depth: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 4 or x.shape[1] != self.depth:
            raise ValueError(f"expected features [B, {self.depth}, n, n], got {x.shape}")
        x = jnp.transpose(x, (0, 2, 3, 1))
        for width in (2 * self.depth, 128):
            x = nn.Conv(width, (3, 3), padding="SAME")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.relu(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(120)(x))
        x = nn.relu(nn.Dense(84)(x))
        return nn.Dense(1)(x)[:, 0]


def pairwise_rank_loss(pred: jax.Array, y: jax.Array) -> jax.Array:
    """Pairwise logistic ranking loss over all ordered pairs ``i != j`` (ReNAS eq. 5).

    ``mean_{i != j} log(1 + exp(-(pred_i - pred_j) * sign(y_i - y_j)))``, vectorised as an
    ``n × n`` matrix; tied pairs contribute the constant ``log 2`` (no gradient).
    """
    n = pred.shape[0]
    z = (pred[:, None] - pred[None, :]) * jnp.sign(y[:, None] - y[None, :])
    off = 1.0 - jnp.eye(n, dtype=pred.dtype)
    return jnp.sum(jax.nn.softplus(-z) * off) / (n * (n - 1))


def mse_loss(pred: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error on the min-max normalised labels (the ablation of ReNAS Table 3)."""
    return jnp.mean((pred - y) ** 2)


LOSSES = {"rank": pairwise_rank_loss, "mse": mse_loss}


# ----------------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class TrainedPredictor:
    """A trained ReNAS predictor: model, variables, feature standardiser, training curve."""
    model: ReNASPredictor
    variables: Any
    standardizer: Standardizer
    best_epoch: int
    best_train_tau: float
    train_tau: np.ndarray  # eval-mode training Kendall tau after every epoch
    train_loss: np.ndarray

    def predict(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Scores of raw (unstandardised) feature tensors ``x``; higher = better."""
        return _predict(self.model, self.variables, self.standardizer(x), chunk)


def _predict(model: ReNASPredictor, variables: Any, x: np.ndarray, chunk: int) -> np.ndarray:
    fn = _eval_fn(model)
    n = x.shape[0]
    chunk = min(chunk, max(n, 1))
    out = []
    for s in range(0, n, chunk):
        part = x[s:s + chunk]
        pad = chunk - part.shape[0]
        if pad:
            part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
        out.append(np.asarray(fn(variables, jnp.asarray(part)))[:chunk - pad])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


_PROGRAMS: list[Compiled] = []  # every compiled program of this module (for compile_seconds)


def compile_seconds() -> float:
    """Total seconds this process spent compiling ReNAS predictor programs so far (callers
    take differences around a fit or a prediction)."""
    return float(sum(p.compile_s for p in _PROGRAMS))


@functools.cache
def _eval_fn(model: ReNASPredictor) -> Compiled:
    _PROGRAMS.append(Compiled(lambda v, x: model.apply(v, x, train=False), options=None))
    return _PROGRAMS[-1]


@functools.cache
def _epoch_fn(model: ReNASPredictor, lr: float, loss: str) -> tuple[Any, Compiled]:
    """A jitted epoch ``(carry, x, y, i) -> (carry, tau, loss)`` on the whole training set.

    ``carry = (params, batch_stats, opt_state, best)`` with ``best = (params, batch_stats,
    tau, epoch)`` updated in place when the eval-mode training Kendall tau improves. (A
    ``lax.scan`` over epochs was measured ~30x slower than this loop on XLA:CPU, whose
    convolutions inside while-loops do not use the fast path, so the host loops.)
    """
    tx = optax.adam(lr)
    loss_fn = LOSSES[loss]

    def epoch(carry, x, y, i):
        params, stats, opt, best = carry

        def objective(p):
            out, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                   mutable=["batch_stats"])
            return loss_fn(out, y), upd["batch_stats"]

        (loss_val, stats), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
        pred = model.apply({"params": params, "batch_stats": stats}, x, train=False)
        tau = kendall_tau_jax(y, pred)
        better = tau > best[2]
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old),
                            (params, stats, tau, i), best)
        return (params, stats, opt, best), tau, loss_val

    _PROGRAMS.append(Compiled(epoch, options=None, donate_argnums=0))
    return tx, _PROGRAMS[-1]


def train_predictor(key: int | jax.Array, x: np.ndarray, y: Sequence[float] | np.ndarray,
                    *, epochs: int = 200, lr: float = 1e-3, loss: str = "rank"
                    ) -> TrainedPredictor:
    """Trains the ReNAS predictor on raw feature tensors ``x`` and accuracies ``y``.

    The whole training set is one batch (as the paper); Adam ``lr``; one jitted step per
    epoch; the variables with the best eval-mode training Kendall tau are kept.
    Features are standardised and labels min-max normalised on this training set only.

    Args:
      key: PRNG key (or int seed) for the weight initialisation.
      x: ``float32[N, C, n, n]`` feature tensors (:func:`features`), N >= 2.
      y: N accuracies (higher is better).
      epochs, lr: optimisation (paper: 200, 1e-3).
      loss: ``'rank'`` (pairwise logistic, the paper) or ``'mse'`` (ablation).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    x = np.asarray(x, dtype=np.float32)
    y_raw = np.asarray(y, dtype=np.float64)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"features must be [N, C, n, n], got {x.shape}")
    if y_raw.shape != (x.shape[0],):
        raise ValueError(f"{x.shape[0]} feature tensors but labels of shape {y_raw.shape}")
    if x.shape[0] < 2:
        raise ValueError("training the ranking predictor needs at least 2 architectures")
    if not np.all(np.isfinite(y_raw)):
        raise ValueError("labels contain NaN/inf; drop those architectures first")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    std = Standardizer.fit(x)
    y_n, _, _ = minmax(y_raw)
    model = ReNASPredictor(depth=x.shape[1])
    xs = jnp.asarray(std(x))
    variables = model.init(as_key(key), xs[:1], train=False)
    tx, step = _epoch_fn(model, float(lr), loss)
    params, stats = variables["params"], variables["batch_stats"]
    best = (params, stats, jnp.asarray(-2.0, jnp.float32), jnp.asarray(-1, jnp.int32))
    carry = (params, stats, tx.init(params), jax.tree.map(jnp.copy, best))
    ys = jnp.asarray(y_n)
    taus, losses = [], []
    for i in range(int(epochs)):
        carry, tau, loss_val = step(carry, xs, ys, jnp.asarray(i, jnp.int32))
        taus.append(tau)
        losses.append(loss_val)
    best = carry[3]
    best_vars, best_epoch = {"params": best[0], "batch_stats": best[1]}, best[3]
    taus, losses = jnp.stack(taus), jnp.stack(losses)
    taus = np.asarray(taus)
    return TrainedPredictor(model=model, variables=best_vars, standardizer=std,
                            best_epoch=int(best_epoch), best_train_tau=float(taus.max()),
                            train_tau=taus, train_loss=np.asarray(losses))


class RankingPredictor:
    """The ReNAS ranking predictor on architecture values: ``fit(archs, y)``,
    ``predict(archs)`` (Xu et al., CVPR 2021, arXiv 1910.01523).

    Args:
      space: ``'nb201'``/``'nb101'`` (name or object): which feature tensors.
      key: PRNG key or int seed of the weight initialisation.
      epochs, lr, loss: training (see :func:`train_predictor`).

    ``predict`` returns scores whose order ranks the architectures (higher = better); they
    are not accuracies.
    """

    def __init__(self, space: Any = "nb201", key: Any = 0, *, epochs: int = 200,
                 lr: float = 1e-3, loss: str = "rank") -> None:
        self.space = get_space(space)
        space_name(self.space)
        self.key, self.epochs, self.lr, self.loss = key, epochs, lr, loss
        self.trained: TrainedPredictor | None = None

    def fit(self, archs: Sequence[Any], y: Sequence[float] | np.ndarray) -> "RankingPredictor":
        """Trains on ``(archs, y)`` from scratch; returns ``self``."""
        self.trained = train_predictor(self.key, features(self.space, archs), y,
                                       epochs=self.epochs, lr=self.lr, loss=self.loss)
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        """Ranking scores ``f32[len(archs)]`` (higher = better)."""
        if self.trained is None:
            raise ValueError("RankingPredictor.predict before fit; call fit(archs, y) first")
        return self.trained.predict(features(self.space, archs))
