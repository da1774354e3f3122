"""Shared machinery of the one-shot (supernet) searches: supernet adapter, search state, data,
discretisation, the epoch loop with checkpoint/resume, the result record and the α plot.

Used by DARTS (Liu et al., ICLR 2019, arXiv 1806.09055), SNAS (Xie et al., ICLR 2019,
arXiv 1812.09926), GDAS-style hard Gumbel search (Dong & Yang, CVPR 2019) and the population
search of :mod:`jnas.less_local` (after Bodin et al., 2021, arXiv 2104.10450).

Everything a search step touches is one pytree, :class:`SearchState`; steps are pure
``(state, batch) -> (state, metrics)`` functions, jit-compiled with the state donated. The host
loop only gathers uint8 image batches, dispatches steps and, once per epoch, fetches metrics,
records α, checks for NaN and writes a checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.search import _jsonable as _json_default
from jnas.rng import as_key, np_rng

__all__ = ["OneShotConfig", "SearchState", "Supernet", "make_supernet", "load_search_data",
           "init_alpha", "weight_optimizer", "alpha_optimizer", "preprocess", "cross_entropy",
           "discretise", "make_eval_fn", "init_state", "build_state", "run_epochs", "score_arch",
           "plot_alpha", "alpha_probs"]

@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    """Hyper-parameters shared by every one-shot search (DARTS reference values).

    Supernet: NB201 ``C``/``N`` (cells per stage), DARTS space ``C``/``layers``. Data: CIFAR-10
    training set split in halves (``train_size``/``val_size`` images of each half are used,
    25k/25k = the reference). Weights: SGD ``w_lr`` cosine → ``w_lr_min``, momentum, weight
    decay, gradient clip. α: Adam ``a_lr``, betas (``a_beta1``, 0.999), L2 ``a_wd``, init
    ``alpha_init_std``·N(0,1). ``compute_dtype``: None/'float32' or 'bfloat16' (convolutions
    in bf16; params, BN statistics, α and logits stay fp32; :mod:`jnas.cells`). ``xla``: the
    XLA-CPU compile options of the search step (:func:`jnas.layers.compiler_options`):
    ``'fast'`` (default: about half XLA's compile time, same step time), ``'fastest'`` (about
    3x faster to compile again, about 10x slower steps: tests and runs of a few steps) or
    ``None`` (XLA's defaults); ignored on GPU/TPU.
    """
    C: int = 16
    N: int = 5
    layers: int = 8
    batch_size: int = 64
    epochs: int = 50
    train_size: int = 25000
    val_size: int = 25000
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_wd: float = 3e-4
    w_clip: float = 5.0
    a_lr: float = 3e-4
    a_beta1: float = 0.5
    a_beta2: float = 0.999
    a_wd: float = 1e-3
    alpha_init_std: float = 1e-3
    compute_dtype: str | None = None
    xla: str | None = "fast"
    augment: bool = True
    data_source: str = "auto"
    eval_batches: int = 8
    max_steps_per_epoch: int = 0
    checkpoint: bool = True
    plot: bool = True


@flax.struct.dataclass
class SearchState:
    """The whole search state as one pytree (weights, BN stats, α, optimiser states, step, key).

    ``key`` holds raw ``uint32[2]`` key data (so the state vmaps, shards and checkpoints like
    any array); steps fold the step number into it.
    """
    step: jax.Array
    params: Any
    batch_stats: Any
    alpha: Any
    opt_state: Any
    alpha_opt_state: Any
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class Supernet:
    """A flax supernet with per-edge op weights from outside, behind one calling convention.

    ``alpha_shapes`` names the weight tensors in the order the module takes them
    (NB201: ``{"cell": (6, 5)}``; DARTS space: ``{"normal": (14, 8), "reduce": (14, 8)}``).
    """
    space: str
    module: nn.Module
    alpha_shapes: dict[str, tuple[int, int]]
    ops: tuple[str, ...]

    def _args(self, weights: dict[str, jax.Array]) -> list[jax.Array]:
        return [weights[k] for k in self.alpha_shapes]

    def init_variables(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        """Initial ``(params, batch_stats)`` for an input batch like ``x`` (pure, traceable)."""
        w = {k: jnp.full(s, 1.0 / s[-1]) for k, s in self.alpha_shapes.items()}
        variables = self.module.init(key, x, *self._args(w), train=True)
        return variables["params"], variables.get("batch_stats", {})

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        """:meth:`init_variables`, compiled once (:func:`jnas.train.run_once`)."""
        return train_module().run_once(self.init_variables, key, x)

    def apply(self, params: Any, batch_stats: Any, x: jax.Array, weights: dict[str, jax.Array],
              train: bool) -> tuple[jax.Array, Any]:
        """Logits and the updated BN statistics (unchanged when ``train`` is False)."""
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        if train:
            logits, upd = self.module.apply(variables, x, *self._args(weights), train=True,
                                            mutable=["batch_stats"])
            return logits, upd.get("batch_stats", batch_stats)
        return self.module.apply(variables, x, *self._args(weights), train=False), batch_stats


def make_supernet(space: str, config: OneShotConfig, num_classes: int = 10) -> Supernet:
    """The search supernet of ``space`` ('nb201' or 'darts') from :mod:`jnas.cells`."""
    from jnas import cells, spaces
    cells.compute_dtype(config.compute_dtype)  # ValueError naming the bad dtype
    if space == "nb201":
        mod = cells.NB201Supernet(C=config.C, N=config.N, num_classes=num_classes,
                                  dtype=config.compute_dtype)
        return Supernet("nb201", mod, {"cell": (6, 5)}, tuple(spaces.NB201_OPS))
    if space == "darts":
        mod = cells.DARTSSupernet(C=config.C, layers=config.layers, num_classes=num_classes,
                                  dtype=config.compute_dtype)
        return Supernet("darts", mod, {"normal": (14, 8), "reduce": (14, 8)},
                        tuple(spaces.DARTS_OPS))
    raise ValueError(f"one-shot search supports spaces 'nb201' and 'darts', not {space!r}")


# ----------------------------------------------------------------------------- data
def load_search_data(dataset: str, config: OneShotConfig, key: jax.Array
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 train/val halves ``(xt, yt, xv, yv)`` of the training set (the search split).

    ``dataset='mock'`` gives random images (tests); ``'cifar10'`` reads CIFAR-10 through
    :func:`jnas.data.load_cifar10` (tfds or the shared JPEG zip).
    """
    from jnas import data
    k_data, k_split = jax.random.split(as_key(key))
    if dataset == "mock":
        x, y = data.mock_cifar(config.train_size + config.val_size, k_data)
    elif dataset == "cifar10":
        x, y = data.load_cifar10(source=config.data_source, split="train")
    else:
        raise ValueError(f"one-shot search supports datasets 'cifar10' (and 'mock' for tests), "
                         f"not {dataset!r}")
    (xt, yt), (xv, yv) = data.search_split(np.asarray(x), np.asarray(y), k_split)
    if config.train_size > len(xt) or config.val_size > len(xv):
        raise ValueError(f"train_size={config.train_size}/val_size={config.val_size} exceed the "
                         f"{len(xt)}/{len(xv)} images of the search split; lower them")
    # A random subset, kept in random order: the validation prefixes used for evaluation
    # (less-local member choice, exploit/explore) must cover all classes.
    rng = np_rng(jax.random.fold_in(k_split, 1))
    it = rng.permutation(len(xt))[:config.train_size]
    iv = rng.permutation(len(xv))[:config.val_size]
    return xt[it], yt[it].astype(np.int32), xv[iv], yv[iv].astype(np.int32)


def preprocess(key: jax.Array, x: jax.Array, augment: bool) -> jax.Array:
    """uint8 NHWC → normalised float32 (:func:`jnas.data.normalize`), after the pad-4 random
    crop + flip of :func:`jnas.data.augment` when ``augment``."""
    from jnas import data
    if augment:
        x = data.augment(key, x)
    return data.normalize(x)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# ----------------------------------------------------------------------------- state
def init_alpha(net: Supernet, key: jax.Array, std: float) -> dict[str, jax.Array]:
    """DARTS α initialisation: ``std · N(0, 1)`` per edge and op."""
    keys = jax.random.split(key, len(net.alpha_shapes))
    return {k: std * jax.random.normal(kk, s) for (k, s), kk in zip(net.alpha_shapes.items(),
                                                                     keys)}


def weight_optimizer(config: OneShotConfig, total_steps: int) -> optax.GradientTransformation:
    """The DARTS weight optimiser: SGD + momentum, cosine lr, weight decay, grad-norm clip."""
    sched = optax.cosine_decay_schedule(config.w_lr, max(total_steps, 1),
                                        alpha=config.w_lr_min / config.w_lr)
    return optax.chain(optax.clip_by_global_norm(config.w_clip),
                       optax.add_decayed_weights(config.w_wd),
                       optax.sgd(sched, momentum=config.w_momentum))


def weight_lr(config: OneShotConfig, total_steps: int) -> Callable[[jax.Array], jax.Array]:
    """The cosine weight learning rate as a function of the step (ξ of second-order DARTS)."""
    return optax.cosine_decay_schedule(config.w_lr, max(total_steps, 1),
                                       alpha=config.w_lr_min / config.w_lr)


def alpha_optimizer(config: OneShotConfig) -> optax.GradientTransformation:
    """The DARTS α optimiser: Adam(lr, betas) with L2 weight decay added to the gradient."""
    return optax.chain(optax.add_decayed_weights(config.a_wd),
                       optax.adam(config.a_lr, b1=config.a_beta1, b2=config.a_beta2))


def build_state(net: Supernet, key: jax.Array, alpha: dict[str, jax.Array],
                w_opt: optax.GradientTransformation, a_opt: optax.GradientTransformation,
                sample_x: jax.Array) -> SearchState:
    """A fresh :class:`SearchState` (weights from ``key``, α given); pure and traceable (vmap it
    for a population)."""
    k_init, k_run = jax.random.split(key)
    params, batch_stats = net.init_variables(k_init, sample_x)
    return SearchState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                       alpha=alpha, opt_state=w_opt.init(params),
                       alpha_opt_state=a_opt.init(alpha), key=jax.random.key_data(k_run))


def init_state(net: Supernet, key: jax.Array, alpha: dict[str, jax.Array],
               w_opt: optax.GradientTransformation, a_opt: optax.GradientTransformation,
               sample_x: jax.Array) -> SearchState:
    """:func:`build_state`, compiled once (:func:`jnas.train.run_once`)."""
    return train_module().run_once(
        lambda k, a, x: build_state(net, k, a, w_opt, a_opt, x), key, alpha, sample_x)


# ----------------------------------------------------------------------------- discretise
def alpha_probs(alpha: dict[str, Any]) -> dict[str, np.ndarray]:
    """softmax(α) per edge, as host arrays."""
    return {k: np.asarray(jax.nn.softmax(jnp.asarray(v), axis=-1)) for k, v in alpha.items()}


def _darts_cell(probs: np.ndarray, ops: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    none = ops.index("none")
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(4):
        n_in = node + 2
        rows = probs[start:start + n_in]
        masked = rows.copy()
        masked[:, none] = -np.inf
        best_op = masked.argmax(axis=1)
        strength = masked.max(axis=1)
        top = sorted(np.argsort(-strength, kind="stable")[:2])
        pairs.extend((ops[int(best_op[j])], int(j)) for j in top)
        start += n_in
    return tuple(pairs)


def discretise(space: str, alpha: dict[str, Any]) -> Any:
    """The discrete architecture of α.

    NB201: argmax op on every edge (``none`` allowed, as in the NB201 DARTS baselines).
    DARTS space: per intermediate node the 2 incoming edges with the strongest non-``none``
    op, each with that op (Liu et al., 2019, Sec. 2.4).
    """
    from jnas import spaces
    if space == "nb201":
        ids = np.asarray(alpha["cell"]).argmax(axis=-1)
        return spaces.NB201Arch.from_op_ids(tuple(int(i) for i in ids))
    if space == "darts":
        ops = tuple(spaces.DARTS_OPS)
        p = alpha_probs(alpha)
        return spaces.DARTSGenotype(normal=_darts_cell(p["normal"], ops),
                                    reduce=_darts_cell(p["reduce"], ops))
    raise ValueError(f"unknown space {space!r}; valid: nb201, darts")


def arch_weights(space: str, arch: Any) -> dict[str, jax.Array]:
    """One-hot edge weights of a discrete architecture (to evaluate it inside the supernet)."""
    from jnas import spaces
    if space == "nb201":
        return {"cell": jax.nn.one_hot(jnp.asarray(arch.op_ids), len(spaces.NB201_OPS))}
    ops = tuple(spaces.DARTS_OPS)
    out = {}
    for name in ("normal", "reduce"):
        w = np.zeros((14, len(ops)), np.float32)
        pairs = getattr(arch, name)
        start = 0
        for node in range(4):
            for op, j in pairs[2 * node:2 * node + 2]:
                w[start + j, ops.index(op)] = 1.0
            start += node + 2
        out[name] = jnp.asarray(w)
    return out


def make_eval_fn(net: Supernet, augment: bool = False) -> Callable[..., tuple[jax.Array, ...]]:
    """``eval(params, batch_stats, weights, x_uint8, y) -> (loss, accuracy)`` in train-mode BN
    (the search supernets keep no running statistics)."""
    def ev(params, batch_stats, weights, x, y):
        xf = preprocess(jax.random.key(0), x, False)
        logits, _ = net.apply(params, batch_stats, xf, weights, True)
        return cross_entropy(logits, y), jnp.mean(jnp.argmax(logits, -1) == y)
    return jax.jit(ev)


def score_arch(space: str, arch: Any) -> dict[str, float] | None:
    """NB201 200-epoch test accuracies of ``arch`` on the 3 datasets (None off NB201 or when the
    table is not available)."""
    if space != "nb201":
        return None
    if "nb201" not in _bench_cache:
        try:
            from jnas import benchmarks
            _bench_cache["nb201"] = benchmarks.load_nb201()
        except Exception as e:  # noqa: BLE001  (offline, no table: search still runs)
            import warnings
            warnings.warn(f"NB201 table unavailable, found cells are not scored: {e}")
            _bench_cache["nb201"] = None
    bench = _bench_cache["nb201"]
    if bench is None:
        return None
    i = bench.index_of(arch)
    out: dict[str, float] = {"nb201_index": int(i)}
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        out[f"test_accuracy_{ds}"] = float(bench.test_acc[ds][i])
    out["test_accuracy"] = out["test_accuracy_cifar10"]
    return out


_bench_cache: dict[str, Any] = {}


# ----------------------------------------------------------------------------- train glue
def train_module() -> Any:
    """:mod:`jnas.train` (mesh, sharding, checkpoints)."""
    from jnas import train
    return train


# ----------------------------------------------------------------------------- loop
def _save_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, default=_json_default))
    os.replace(tmp, path)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=_json_default))


def config_mismatch(saved: dict[str, Any], current: dict[str, Any],
                    defaults: dict[str, Any]) -> str:
    """Why a saved run config cannot be resumed under ``current`` ('' when it can).

    Every saved field must equal the current one. A current field the saved config lacks (a
    field added to the config class after that run started, e.g. ``xla``) is accepted when it
    is at its default, since the old run ran with that behaviour; all inputs JSON-normalised.
    """
    for k, v in saved.items():
        if k not in current:
            return f"{k!r} is no longer a config field"
        if current[k] != v:
            return f"{k}: saved {v!r}, now {current[k]!r}"
    for k, v in current.items():
        if k not in saved and (k not in defaults or defaults[k] != v):
            return f"{k}: not in the saved config and {v!r} is not its default"
    return ""


def run_epochs(*, state: Any, step_fn: Callable, data: tuple[np.ndarray, ...], epochs: int,
               steps_per_epoch: int, batch_size: int, key: jax.Array, out_dir: Path | None,
               config_dict: dict[str, Any], on_epoch: Callable[[Any, int], dict[str, Any]],
               checkpoint: bool = True, stop_after: int | None = None,
               epoch_hook: Callable[[Any, int], Any] | None = None,
               config_defaults: dict[str, Any] | None = None
               ) -> tuple[Any, list[dict[str, Any]], float]:
    """The shared epoch loop: dispatch ``steps_per_epoch`` jit steps per epoch, then fetch the
    metrics, check for NaN, call ``on_epoch(state, epoch)`` (records α / genotype) and write a
    checkpoint. Resumes from the latest checkpoint in ``out_dir/ckpt`` when the saved config
    equals ``config_dict`` (a different config raises instead of overwriting); fields the saved
    config lacks (added to the config class after the run started) must be at their value in
    ``config_defaults`` (:func:`config_mismatch`).

    Batch order of epoch ``e`` is a function of ``(key, e)`` only, so a resumed run reproduces
    the uninterrupted one exactly. ``stop_after`` (tests) stops after that many epochs as if
    killed. ``epoch_hook(state, epoch) -> state`` runs before the checkpoint (less-local
    exploit/explore).

    Returns ``(state, history, compile_s)``.
    """
    train = train_module()
    xt, yt, xv, yv = data
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt_dir = None
    if out_dir is not None and checkpoint:
        ckpt_dir = Path(out_dir) / "ckpt"
        meta_path = Path(out_dir) / "search_progress.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            diff = config_mismatch(meta.get("config") or {}, _jsonable(config_dict),
                                   _jsonable(config_defaults or {}))
            if diff:
                raise ValueError(f"{out_dir} holds a search with a different config ({diff}); "
                                 "use another --out folder (refusing to overwrite it)")
            restored = train.restore_checkpoint(ckpt_dir, state)
            if restored is not None:
                tree, start_epoch = restored
                state = jax.tree_util.tree_map(
                    lambda t, x: jax.device_put(x, t.sharding) if hasattr(t, "sharding") else x,
                    state, tree)
                history = [h for h in meta["history"] if h["epoch"] <= start_epoch]
    compile_s = 0.0
    n_t, n_v = len(xt), len(xv)
    for epoch in range(start_epoch, epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        ek = jax.random.fold_in(as_key(key), epoch)
        rng = np_rng(ek)
        pt, pv = rng.permutation(n_t), rng.permutation(n_v)
        metrics = []
        for s in range(steps_per_epoch):
            it = pt[(s * batch_size) % n_t:][:batch_size]
            iv = pv[(s * batch_size) % n_v:][:batch_size]
            batch = {"xt": xt[it], "yt": yt[it], "xv": xv[iv], "yv": yv[iv]}
            t0 = time.time()
            state, m = step_fn(state, batch)
            if epoch == start_epoch and s == 0:
                jax.block_until_ready(m)
                compile_s = time.time() - t0
            metrics.append(m)
        ms = jax.device_get(metrics)
        mean = {k: float(np.mean([np.mean(m[k]) for m in ms])) for k in ms[0]}
        if not all(np.isfinite(v) for v in mean.values()):
            raise FloatingPointError(
                f"non-finite search metrics at epoch {epoch + 1}: {mean}; lower the learning "
                "rates (w_lr / a_lr via --set) or check the input data")
        if epoch_hook is not None:
            state = epoch_hook(state, epoch)
        rec = {"epoch": epoch + 1, **mean, **on_epoch(state, epoch + 1)}
        history.append(rec)
        if ckpt_dir is not None:
            train.save_checkpoint(ckpt_dir, state, epoch + 1)
            _save_json(Path(out_dir) / "search_progress.json",
                       {"config": config_dict, "history": history})
    return state, history, compile_s


def plot_alpha(history: list[dict[str, Any]], ops: tuple[str, ...], path: Path) -> Path | None:
    """Plots softmax(α) per edge (one panel per edge and weight tensor), one line per op, over
    epochs; writes a PNG. Returns the path (None when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    names = list(history[0]["alpha"].keys())
    panels = [(n, e) for n in names for e in range(len(history[0]["alpha"][n]))]
    cols = 6 if len(panels) <= 6 else 7
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax, (n, e) in zip(axes.ravel(), panels):
        arr = np.array([h["alpha"][n][e] for h in history])
        for k, op in enumerate(ops):
            ax.plot(epochs, arr[:, k], label=op)
        ax.set_title(f"{n} edge {e}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=5)
    fig.supxlabel("epoch")
    fig.supylabel("softmax(α)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
