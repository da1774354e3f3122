"""The one-shot (supernet) search engine: config, search state, data, discretisation, the
jitted step, the epoch loop (checkpoint/resume, progress) and the result record.

Methods on top: DARTS / GDAS (:mod:`jnas.darts`; Liu et al., ICLR 2019, arXiv 1806.09055;
Dong & Yang, CVPR 2019), SNAS (:mod:`jnas.snas`; Xie et al., ICLR 2019, arXiv 1812.09926) and
the population search of :mod:`jnas.less_local` (after Bodin et al., 2021, arXiv 2104.10450).
A method supplies a pure step ``(state, batch) -> (state, metrics)`` on one pytree,
:class:`SearchState`; :func:`run_oneshot` compiles it (state donated), runs the epochs and
builds the :class:`jnas.report.Result`. α: a bare ``f32[6, 5]`` array or ``{"cell": α}`` for
NB201 (one cell type), ``{"normal": ..., "reduce": ...}`` for the DARTS space; the state and
the result keep the named form.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jnas import cells, distributed, report, spaces, train, xla
from jnas.cells import Supernet, as_alpha_dict, make_supernet
from jnas.config import check_choice, check_positive, check_range, config_to_dict
from jnas.data import augment as augment_batch, load_cifar10, mock_cifar, normalize, search_split
from jnas.derive import alpha_probs, discretise, score_arch
from jnas.rng import as_key, np_rng
from jnas.step_cache import JitStep, cached_programs, clear_program_cache, jit_step, program_key
from jnas.train import cross_entropy, data_mesh

__all__ = ["OneShotConfig", "SearchState", "Supernet", "Setup", "make_supernet",
           "load_search_data", "preprocess", "cross_entropy", "init_alpha", "weight_optimizer",
           "weight_lr", "alpha_optimizer", "build_state", "init_state", "alpha_probs",
           "as_alpha_dict", "discretise", "score_arch", "data_mesh", "JitStep", "jit_step",
           "prepare", "search_config_dict", "run_epochs", "build_result", "run_oneshot",
           "check_finite_fields", "epoch_perms", "step_batch", "program_key",
           "clear_program_cache"]


def check_finite_fields(cfg: Any, *names: str) -> None:
    """``ValueError`` unless each ``cfg.<name>`` is a finite number (``None`` passes)."""
    for name in names:
        v = getattr(cfg, name)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"{type(cfg).__name__}.{name} = {v!r} must be a finite number "
                             f"(--set {name}=...)")


@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    """Hyper-parameters shared by every one-shot search (DARTS reference values; the search
    split: the CIFAR-10 training set in halves, 25k/25k). ``xla``: the options of
    :func:`jnas.xla.compiler_options` (ignored on GPU/TPU)."""
    C: int = 16  # channels of the first stage of the supernet
    N: int = 5  # NB201 supernet: cells per stage
    layers: int = 8  # DARTS-space supernet: number of cells
    batch_size: int = 64  # images per step (of each half)
    epochs: int = 50  # search epochs
    train_size: int = 25000  # images of the training half used (weights)
    val_size: int = 25000  # images of the validation half used (α)
    w_lr: float = 0.025  # SGD learning rate of the weights (cosine schedule start)
    w_lr_min: float = 0.001  # cosine schedule end of the weight learning rate
    w_momentum: float = 0.9  # SGD momentum of the weights
    w_wd: float = 3e-4  # weight decay of the weights (coupled, as torch SGD)
    w_nesterov: bool = False  # Nesterov momentum of the weight SGD
    w_clip: float = 5.0  # gradient global-norm clip of the weights
    a_lr: float = 3e-4  # Adam learning rate of α
    a_beta1: float = 0.5  # Adam beta1 of α
    a_beta2: float = 0.999  # Adam beta2 of α
    a_wd: float = 1e-3  # L2 weight decay of α (added to the gradient)
    alpha_init_std: float = 1e-3  # α initialisation: std * N(0, 1)
    compute_dtype: str | None = None  # None/'float32', 'bfloat16' (convolutions) or 'float16'
    xla: str | None = "fast"  # XLA-CPU compile options of the step: 'fast', 'fastest' or None
    augment: bool = True  # pad-4 random crop + flip of the search batches
    data_source: str = "auto"  # CIFAR-10 source: 'auto', 'tfds' or an image folder/zip path
    eval_batches: int = 8  # validation batches per evaluation (less-local member choice)
    max_steps_per_epoch: int = 0  # cap on the steps of one epoch (0: one pass over the split)
    checkpoint: bool = True  # write a checkpoint per epoch (and resume from it)
    plot: bool = True  # write alpha.png next to result.json

    def __post_init__(self) -> None:
        # integers > 0 are >= 1: epochs, batch_size, C, N, layers, ...
        check_positive(self, "C", "N", "layers", "batch_size", "epochs", "train_size",
                       "val_size", "eval_batches", "w_lr", "a_lr", "w_clip")
        check_positive(self, "w_lr_min", "w_wd", "a_wd", "alpha_init_std",
                       "max_steps_per_epoch", allow_zero=True)
        check_finite_fields(self, "w_lr", "w_lr_min", "w_momentum", "w_wd", "w_clip", "a_lr",
                            "a_beta1", "a_beta2", "a_wd", "alpha_init_std")
        for name in ("w_momentum", "a_beta1", "a_beta2"):
            check_range(self, name, 0.0, 1.0)
        check_choice(self, "xla", (None, "none", "fast", "fastest"))
        cells.compute_dtype(self.compute_dtype)  # ValueError naming the bad dtype


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


# ----------------------------------------------------------------------------- data
def load_search_data(dataset: str, config: OneShotConfig, key: jax.Array
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 train/val halves ``(xt, yt, xv, yv)`` of the training set (the search split).

    ``dataset='mock'`` gives random images (tests); ``'cifar10'`` reads CIFAR-10 through
    :func:`jnas.data.load_cifar10` (tfds or the shared JPEG zip). A config with
    ``split='all'`` (single-level SNAS, Xie et al., ICLR 2019: the whole 50k training set)
    gets ``train_size`` images of the whole set as both ``(xt, yt)`` and ``(xv, yv)``: there is
    no held-out half (``val_size`` is not used).
    """
    split = getattr(config, "split", "halves")
    if split not in ("halves", "all"):
        raise ValueError(f"unknown search split {split!r}; valid: halves, all (--set split=...)")
    k_data, k_split = jax.random.split(as_key(key))
    if dataset == "mock":
        x, y = mock_cifar(config.train_size + (config.val_size if split == "halves" else 0),
                          k_data)
    elif dataset == "cifar10":
        x, y = load_cifar10(source=config.data_source, split="train")
    else:
        raise ValueError(f"one-shot search supports datasets 'cifar10' (and 'mock' for tests), "
                         f"not {dataset!r}")
    if split == "all":
        if config.train_size > len(x):
            raise ValueError(f"train_size={config.train_size} exceeds the {len(x)} training "
                             f"images; lower it")
        ia = np_rng(jax.random.fold_in(k_split, 1)).permutation(len(x))[:config.train_size]
        xa, ya = np.asarray(x)[ia], np.asarray(y)[ia].astype(np.int32)
        return xa, ya, xa, ya
    (xt, yt), (xv, yv) = search_split(np.asarray(x), np.asarray(y), k_split)
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
    if augment:
        x = augment_batch(key, x)
    return normalize(x)


# ----------------------------------------------------------------------------- state
def init_alpha(net: Supernet, key: jax.Array, std: float) -> dict[str, jax.Array]:
    """DARTS α initialisation: ``std · N(0, 1)`` per edge and op."""
    keys = jax.random.split(key, len(net.alpha_shapes))
    return {k: std * jax.random.normal(kk, s) for (k, s), kk in zip(net.alpha_shapes.items(),
                                                                     keys)}


def weight_optimizer(config: OneShotConfig, total_steps: int) -> optax.GradientTransformation:
    """The DARTS weight optimiser (:func:`jnas.train.sgd_cosine` with the config's values)."""
    return train.sgd_cosine(config.w_lr, config.w_lr_min, config.w_momentum, config.w_wd,
                            config.w_clip, max(total_steps, 1), nesterov=config.w_nesterov)


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
    """:func:`build_state`, compiled once (:func:`jnas.xla.run_once`)."""
    return xla.run_once(lambda k, a, x: build_state(net, k, a, w_opt, a_opt, x),
                        key, alpha, sample_x)


# ----------------------------------------------------------------------------- step + setup
class Setup(NamedTuple):
    """What every one-shot run builds first (:func:`prepare`)."""
    net: Supernet
    data: tuple[np.ndarray, ...]
    steps_per_epoch: int
    total_steps: int
    w_opt: optax.GradientTransformation
    a_opt: optax.GradientTransformation
    sample_x: jax.Array  # one preprocessed batch (shapes for init)
    keys: tuple[jax.Array, ...]  # (k_data, k_init, k_a, k_b): the run key split in 4
    t_start: float


def prepare(config: OneShotConfig, *, space: str, dataset: str, key: int | jax.Array,
            net: Supernet | None = None, data: tuple[np.ndarray, ...] | None = None) -> Setup:
    """Data, supernet, steps per epoch, optimisers and keys of a run (``key`` split in 4: data,
    init, and two for the method)."""
    t_start = time.time()
    keys = tuple(jax.random.split(as_key(key), 4))
    data = data if data is not None else load_search_data(dataset, config, keys[0])
    net = net if net is not None else make_supernet(space, config)
    spe = min(len(data[0]), len(data[2])) // config.batch_size
    if config.max_steps_per_epoch:
        spe = min(spe, config.max_steps_per_epoch)
    if spe < 1:
        raise ValueError(f"batch_size={config.batch_size} exceeds the search split "
                         f"({len(data[0])}/{len(data[2])} images); lower it")
    total = spe * config.epochs
    x0 = preprocess(keys[1], jnp.asarray(data[0][:config.batch_size]), False)
    return Setup(net, data, spe, total, weight_optimizer(config, total),
                 alpha_optimizer(config), x0, keys, t_start)


def search_config_dict(method: str, space: str, dataset: str, key: int | jax.Array,
                       config: OneShotConfig) -> dict[str, Any]:
    """What a run's checkpoint folder is tied to (``search_progress.json``'s ``config``)."""
    return {"method": method, "space": space, "dataset": dataset,
            "key": np.asarray(jax.random.key_data(as_key(key))).tolist(),
            **config_to_dict(config)}


# ----------------------------------------------------------------------------- loop
def _epoch_line(method: str, rec: dict[str, Any], epochs: int) -> str:
    nums = " ".join(f"{k} {v:.4g}" for k, v in rec.items()
                    if isinstance(v, float) and k != "epoch")
    cell = f" cell {rec['arch']}" if "arch" in rec else ""
    return f"[{method}] epoch {rec['epoch']}/{epochs} {nums}{cell}"


def _first_non_finite(ms: list[dict[str, Any]]) -> tuple[int, str, float] | None:
    for s, m in enumerate(ms):
        for k, v in m.items():
            bad = np.asarray(v)[~np.isfinite(np.asarray(v))]
            if bad.size:
                return s, k, float(bad.ravel()[0])
    return None


def epoch_perms(key: jax.Array | int, epoch: int, n_train: int, n_val: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The train and val index permutations of ``epoch``: a function of ``(key, epoch)``
    only, so a resumed search (and each seed of a vmapped one) sees the same batches."""
    rng = np_rng(jax.random.fold_in(as_key(key), epoch))
    return rng.permutation(n_train), rng.permutation(n_val)


def step_batch(data: tuple[np.ndarray, ...], perms: tuple[np.ndarray, np.ndarray], s: int,
               batch_size: int, rows: Any = slice(None)) -> dict[str, np.ndarray]:
    """Step ``s``'s batch ``{xt, yt, xv, yv}`` of the split ``data = (xt, yt, xv, yv)`` at the
    epoch permutations ``perms`` (wrapping around each set); ``rows``: this process's rows
    of the global batch (:func:`jnas.distributed.local_rows`)."""
    xt, yt, xv, yv = data
    it = perms[0][(s * batch_size) % len(xt):][:batch_size][rows]
    iv = perms[1][(s * batch_size) % len(xv):][:batch_size][rows]
    return {"xt": xt[it], "yt": yt[it], "xv": xv[iv], "yv": yv[iv]}


def run_epochs(*, state: Any, step_fn: Callable, data: tuple[np.ndarray, ...], epochs: int,
               steps_per_epoch: int, batch_size: int, key: jax.Array, out_dir: Path | None,
               config_dict: dict[str, Any], on_epoch: Callable[[Any, int], dict[str, Any]],
               checkpoint: bool = True, stop_after: int | None = None,
               epoch_hook: Callable[[Any, int], Any] | None = None,
               config_defaults: dict[str, Any] | None = None, quiet: bool = False,
               method: str = "search") -> tuple[Any, list[dict[str, Any]], float]:
    """The shared epoch loop: per epoch, ``steps_per_epoch`` jit steps under a tqdm bar, then
    the metrics fetched and checked, ``on_epoch(state, epoch)`` (records α / cell), one
    printed line (metrics and cell) and a checkpoint; ``quiet`` prints nothing.

    Resumes ``out_dir`` (:func:`jnas.train.resume_search`: another config raises instead of
    overwriting; fields the saved config lacks must be at ``config_defaults``). Epoch ``e``'s
    batch order is a function of ``(key, e)`` only, so a resumed run equals the uninterrupted
    one, on any process count (:mod:`jnas.distributed`: each process feeds its rows of each
    global batch, only process 0 prints and writes checkpoints, resume reads on process 0).
    ``stop_after`` (tests) stops after that many epochs as if killed; ``epoch_hook(state,
    epoch) -> state`` runs before the checkpoint (less-local exploit/explore). A non-finite
    metric raises :class:`jnas.train.NonFiniteLossError` naming the step (earlier checkpoints
    stay). Returns ``(state, history, compile_s)``.
    """
    ckpt_dir = Path(out_dir) / "ckpt" if out_dir is not None and checkpoint else None
    history: list[dict[str, Any]] = []
    start_epoch = 0
    primary, quiet = distributed.is_primary(), quiet or not distributed.is_primary()
    rows = distributed.local_rows(getattr(step_fn, "mesh", None), batch_size)
    if ckpt_dir is not None:
        state, history, start_epoch = distributed.resume_search(out_dir, state, config_dict,
                                                                config_defaults or {})
    compile_s = 0.0
    c0 = getattr(step_fn, "compile_s", None)  # a reused compiled step has compiled before
    n_t, n_v = len(data[0]), len(data[2])
    for epoch in range(start_epoch, epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        perms = epoch_perms(key, epoch, n_t, n_v)
        metrics = []
        bar = tqdm(total=steps_per_epoch, desc=f"[{method}] epoch {epoch + 1}/{epochs}",
                   disable=quiet, leave=False, file=sys.stderr, dynamic_ncols=True)
        for s in range(steps_per_epoch):
            batch = step_batch(data, perms, s, batch_size, rows)
            t0 = time.time()
            state, m = step_fn(state, batch)
            if epoch == start_epoch and s == 0:
                jax.block_until_ready(m)
                compile_s = time.time() - t0
            if not quiet and metrics:  # the bar follows finished steps, one step in flight
                bar.set_postfix(train_loss=f"{float(np.mean(metrics[-1]['train_loss'])):.3f}",
                                refresh=False)
            metrics.append(m)
            bar.update(1)
        bar.close()
        ms = jax.device_get(metrics)
        bad = _first_non_finite(ms)
        if bad is not None:
            s, name, v = bad
            kept = (f"; the checkpoints up to epoch {epoch} are kept in {ckpt_dir}"
                    if ckpt_dir is not None and epoch > 0 else "")
            raise train.NonFiniteLossError(
                f"{name} is {v} at step {epoch * steps_per_epoch + s + 1} (epoch {epoch + 1}): "
                f"the search diverged; lower the learning rates (--set w_lr=... / a_lr=...) "
                f"or w_clip, or check the input data{kept}")
        mean = {k: float(np.mean([np.mean(m[k]) for m in ms])) for k in ms[0]}
        if epoch_hook is not None:
            state = epoch_hook(state, epoch)
        rec = {"epoch": epoch + 1, **mean, **on_epoch(state, epoch + 1)}
        history.append(rec)
        if not quiet:
            tqdm.write(_epoch_line(method, rec, epochs), file=sys.stdout)
        if ckpt_dir is not None and primary:
            train.save_checkpoint(ckpt_dir, state, epoch + 1)
            report.write_json(Path(out_dir) / "search_progress.json",
                              {"config": config_dict, "history": history}, indent=None)
    return state, history, compile_s if c0 is None else step_fn.compile_s - c0


# ----------------------------------------------------------------------------- result
def build_result(method: str, space: str, dataset: str, seed: int | None,
                 config: OneShotConfig, alpha: dict[str, Any], history: list[dict[str, Any]],
                 t_start: float, compile_s: float, out: Path | None,
                 extra: dict[str, Any] | None = None) -> report.Result:
    """The :class:`jnas.report.Result` of a finished search (and ``alpha.png`` in ``out``).

    ``best_arch`` = ``genotype`` = the discretised α; ``trajectory`` = [[epoch, NB201 test
    accuracy of that epoch's cell]]; ``extra`` also holds ``alpha_history`` (softmax(α) per
    epoch) and ``alpha_final``.
    """
    arch = discretise(space, alpha, getattr(config, "derive", "top2"))
    ext: dict[str, Any] = {
        "genotype": arch.to_string(),
        "alpha_history": [h["alpha"] for h in history],
        "alpha_final": {k: np.asarray(v).tolist() for k, v in alpha.items()}, **(extra or {})}
    if out is not None and config.plot and history and distributed.is_primary():
        ops = spaces.NB201_OPS if space == "nb201" else spaces.DARTS_OPS
        p = report.plot_alpha(history, tuple(ops), out / "alpha.png")
        ext["alpha_plot"] = str(p) if p else None
    return report.Result(
        method=method, space=space, dataset=dataset, seed=seed, best_arch=arch.to_string(),
        bench=score_arch(space, arch),
        trajectory=[[h["epoch"], h.get("test_accuracy")] for h in history],
        history=[{k: v for k, v in h.items() if k != "alpha"} for h in history],
        wall_s=time.time() - t_start, compile_s=compile_s, config=config_to_dict(config),
        extra=ext)


def run_oneshot(method: str, config: OneShotConfig, make_step: Callable[..., Callable], *,
                space: str | Any, dataset: str, key: int | jax.Array, out_dir: str | Path | None,
                quiet: bool = False, net: Supernet | None = None,
                data: tuple[np.ndarray, ...] | None = None, stop_after: int | None = None
                ) -> tuple[report.Result, SearchState]:
    """Runs one single-(w, α) one-shot search: returns its result and final state.

    ``make_step(net, config, w_opt, a_opt, total_steps) -> step`` builds the method's un-jitted
    step. ``space``: a name or space object; ``key``: an int seed (recorded as the result's
    ``seed``) or a JAX key. ``net`` / ``data`` replace the supernet / the search split
    (tests); ``quiet`` prints nothing. A ``make_step`` with a ``step_key`` attribute (a
    hashable name of what it builds, e.g. ``("bilevel", 1, "softmax")``) lets a later run in
    this process with the same :func:`program_key` reuse this run's compiled init and step
    programs (its ``compile_s`` is then 0); without one every run compiles afresh.
    """
    space = spaces.get_space(space).name
    setup = prepare(config, space=space, dataset=dataset, key=key, net=net, data=data)
    net, k_init, k_alpha, k_loop = setup.net, setup.keys[1], setup.keys[2], setup.keys[3]
    alpha = init_alpha(net, k_alpha, config.alpha_init_std)
    w_opt, a_opt = setup.w_opt, setup.a_opt
    init, step = cached_programs(
        program_key(getattr(make_step, "step_key", None), space, net, config,
                    setup.total_steps),
        lambda k, a, x: build_state(net, k, a, w_opt, a_opt, x),
        lambda: make_step(net, config, w_opt, a_opt, setup.total_steps),
        config.batch_size, config.xla)
    state = train.replicate(init(k_init, alpha, setup.sample_x), step.mesh)
    bench_dataset = dataset if dataset in ("cifar10", "cifar100", "ImageNet16-120") else "cifar10"

    def on_epoch(st: SearchState, epoch: int) -> dict[str, Any]:
        alpha = jax.device_get(st.alpha)
        arch = discretise(space, alpha, getattr(config, "derive", "top2"))
        rec = {"arch": arch.to_string(),
               "alpha": {k: v.tolist() for k, v in alpha_probs(alpha).items()}}
        sc = score_arch(space, arch)
        if sc is not None:
            rec["test_accuracy"] = sc[f"test_accuracy_{bench_dataset}"]
        return rec

    out = Path(out_dir) if out_dir is not None else None
    state, history, compile_s = run_epochs(
        state=state, step_fn=step, data=setup.data, epochs=config.epochs,
        steps_per_epoch=setup.steps_per_epoch, batch_size=config.batch_size, key=k_loop,
        out_dir=out, config_dict=search_config_dict(method, space, dataset, key, config),
        on_epoch=on_epoch, checkpoint=config.checkpoint, stop_after=stop_after,
        config_defaults=config_to_dict(type(config)()), quiet=quiet, method=method)
    seed = int(key) if isinstance(key, (int, np.integer)) else None
    res = build_result(method, space, dataset, seed, config, jax.device_get(state.alpha),
                       history, setup.t_start, compile_s, out)
    return res, state
