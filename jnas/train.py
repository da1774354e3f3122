"""Training utilities: one state pytree, jit train/eval steps, data parallelism over a device
mesh, BN recalibration, checkpoint/resume, JSON-lines metrics, progress bars.

Data parallelism follows the current JAX recommendation (``jax.jit`` with shardings, not
``pmap``): :func:`make_mesh` builds a 1-D ``Mesh`` with axis ``"data"``, :func:`shard_batch`
splits the batch over it, :func:`replicate` copies weights to every device, and the same
jitted step runs data parallel (XLA inserts the gradient / BN-statistics all-reduces, so the
result equals the single-device one up to float summation order).
The DARTS weight optimiser (Liu et al., ICLR 2019): SGD, lr 0.025 cosine -> 0.001, momentum
0.9, weight decay 3e-4, gradient clipping 5 (:func:`sgd_cosine`).
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from jnas.report import jsonable
from jnas.rng import as_key
from jnas.xla import compiler_options, enable_compilation_cache, run_once

__all__ = ["TrainState", "sgd_cosine", "make_mesh", "data_mesh", "shard_batch", "replicate",
           "make_classifier_steps", "create_train_state", "recalibrate_bn", "save_checkpoint",
           "restore_checkpoint", "latest_checkpoint", "MetricsLogger", "progress",
           "check_finite", "NonFiniteLossError", "resolve_run_dir", "cross_entropy",
           "run_once", "enable_compilation_cache", "config_mismatch", "resume_search"]


@flax.struct.dataclass
class TrainState:
    """The whole training state as one pytree (weights, BN statistics, optimiser, step, key).

    ``key`` holds raw ``uint32`` key data (``jax.random.key_data``) so the state serialises
    with flax msgpack; use ``jax.random.wrap_key_data(state.key)`` to draw.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array


def create_train_state(model: Any, optimizer: optax.GradientTransformation, key: Any,
                       sample_x: jax.Array, *model_args: Any) -> TrainState:
    """Initialise ``model`` on ``sample_x`` (jit-compiled init) and wrap it in a TrainState."""
    k_init, k_run = jax.random.split(as_key(key))

    def _init(k, x, *a):
        return model.init({"params": k, "dropout": k}, x, *a, train=True)

    variables = run_once(_init, k_init, sample_x, *model_args)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=optimizer.init(params), key=jax.random.key_data(k_run))


def sgd_cosine(lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9,
               wd: float = 3e-4, clip: float | None = 5.0,
               steps: int = 1, nesterov: bool = False) -> optax.GradientTransformation:
    """DARTS weight optimiser: clip global norm -> weight decay -> SGD+momentum, cosine lr.

    The learning rate follows ``lr_min + (lr - lr_min) * (1 + cos(pi * t / steps)) / 2``
    (PyTorch ``CosineAnnealingLR`` with ``eta_min``), weight decay is coupled (added to the
    gradient before momentum) as in ``torch.optim.SGD``; ``nesterov``: Nesterov momentum
    (``torch.optim.SGD(nesterov=True)``).
    """
    if steps < 1:
        raise ValueError(f"sgd_cosine needs steps >= 1 (total optimiser steps), got {steps}")
    sched = optax.cosine_decay_schedule(lr, steps, alpha=lr_min / lr if lr > 0 else 0.0)
    parts = []
    if clip is not None and clip > 0:
        parts.append(optax.clip_by_global_norm(clip))
    if wd:
        parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.sgd(sched, momentum=momentum or None,
                           nesterov=bool(nesterov and momentum)))
    return optax.chain(*parts)


# ----------------------------------------------------------------------------- devices
def make_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D device mesh with axis ``"data"`` over ``devices`` (default: all local devices)."""
    devs = np.asarray(list(devices) if devices is not None else jax.local_devices())
    return Mesh(devs, ("data",))


def data_mesh(batch_size: int) -> Mesh:
    """A data-parallel mesh over the largest number of devices dividing the batch.

    On several processes (:mod:`jnas.distributed`) the mesh takes the same number ``k`` of
    devices from every process, ordered by process (``k``: the most local devices dividing
    ``batch_size / processes``), so each process feeds one contiguous block of the batch."""
    devs = jax.devices()
    procs = jax.process_count()
    if procs == 1:
        n = max(d for d in range(1, len(devs) + 1) if batch_size % d == 0)
        return make_mesh(devs[:n])
    if batch_size % procs:
        raise ValueError(f"batch_size={batch_size} is not a multiple of the {procs} processes; "
                         f"use a multiple of {procs}")
    per = {p: sorted((d for d in devs if d.process_index == p), key=lambda d: d.id)
           for p in range(procs)}
    local = min(len(v) for v in per.values())
    k = max(d for d in range(1, local + 1) if (batch_size // procs) % d == 0)
    return make_mesh([d for p in range(procs) for d in per[p][:k]])


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place every array of ``batch`` split along axis 0 over the mesh's ``"data"`` axis.

    On a mesh spanning several processes each process passes only its own rows
    (:func:`jnas.distributed.local_rows`) and gets the global batch
    (:func:`jax.make_array_from_process_local_data`).
    Raises ``ValueError`` when the batch size is not divisible by the number of devices.
    """
    n = mesh.devices.size
    sh = NamedSharding(mesh, P("data"))
    n_local = len(sh.addressable_devices)

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim == 0 or x.shape[0] % n_local:
            raise ValueError(f"batch axis of shape {x.shape} is not divisible by the {n_local} "
                             f"devices of the mesh; use a batch size that is a multiple of {n}")
        if n_local < n:  # several processes: this process's rows of the global batch
            return jax.make_array_from_process_local_data(
                sh, np.asarray(x), (x.shape[0] * n // n_local, *x.shape[1:]))
        return jax.device_put(x, sh)

    return jax.tree_util.tree_map(put, batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a copy of every array of ``tree`` on every device of the mesh (on a mesh over
    several processes, each process fills its own devices from its copy of ``tree``)."""
    sh = NamedSharding(mesh, P())
    if len(sh.addressable_devices) < mesh.devices.size:
        def put(x):
            v = np.asarray(jax.device_get(x))
            return jax.make_array_from_callback(v.shape, sh, lambda i: v[i])
        return jax.tree_util.tree_map(put, tree)
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, sh), tree)


# ----------------------------------------------------------------------------- steps
class NonFiniteLossError(FloatingPointError):
    """Raised by :func:`check_finite` when a loss is NaN or infinite."""


def check_finite(loss: Any, step: int | None = None, what: str = "loss") -> float:
    """Return ``float(loss)``; raise :class:`NonFiniteLossError` with advice when not finite."""
    v = float(np.asarray(jax.device_get(loss)))
    if not np.isfinite(v):
        at = f" at step {step}" if step is not None else ""
        raise NonFiniteLossError(
            f"{what} is {v}{at}: training diverged. Lower the learning rate, enable gradient "
            f"clipping, check the inputs for NaN/inf, or resume from the last checkpoint.")
    return v


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_classifier_steps(model: Any, optimizer: optax.GradientTransformation,
                          aux_weight: float = 0.4, *,
                          xla: str | None = None) -> tuple[Callable, Callable]:
    """Jit-compiled ``train_step(state, x, y) -> (state, metrics)`` and
    ``eval_step(state, x, y) -> metrics`` for a discrete network ``model(x, train)``.

    BN statistics are updated in ``train_step`` and used (running averages) in
    ``eval_step``. A model returning ``(logits, aux_logits)`` in training (DARTS auxiliary
    head) adds ``aux_weight * CE(aux)``. Dropout / drop-path rngs come from ``state.key``
    folded with the step. Metrics: ``loss``, ``accuracy`` (device scalars). ``xla``: XLA-CPU
    compile options of both (:func:`jnas.xla.compiler_options`; None: XLA's defaults).
    """

    def _variables(params, batch_stats):
        v = {"params": params}
        if batch_stats:
            v["batch_stats"] = batch_stats
        return v

    def train_step(state: TrainState, x: jax.Array, y: jax.Array):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)

        def loss_fn(params):
            out, upd = model.apply(_variables(params, state.batch_stats), x, train=True,
                                   rngs={"dropout": rng}, mutable=["batch_stats"])
            logits = out[0] if isinstance(out, tuple) else out
            loss = cross_entropy(logits, y)
            if isinstance(out, tuple) and out[1] is not None:
                loss = loss + aux_weight * cross_entropy(out[1], y)
            return loss, (logits, upd.get("batch_stats", state.batch_stats))

        (loss, (logits, bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        acc = (logits.argmax(-1) == y).mean()
        new = state.replace(step=state.step + 1, params=params, batch_stats=bs,
                            opt_state=opt_state)
        return new, {"loss": loss, "accuracy": acc}

    def eval_step(state: TrainState, x: jax.Array, y: jax.Array):
        logits = model.apply(_variables(state.params, state.batch_stats), x, train=False)
        return {"loss": cross_entropy(logits, y), "accuracy": (logits.argmax(-1) == y).mean()}

    # jax.jit, not xla.Compiled: the same steps serve one device and a sharded mesh
    # (Compiled keys its executables by shapes only, not by input shardings).
    opts = compiler_options(xla)
    return (jax.jit(train_step, compiler_options=opts),
            jax.jit(eval_step, compiler_options=opts))


def recalibrate_bn(model: Any, variables: dict[str, Any], batches: Iterable[Any],
                   *model_args: Any) -> dict[str, Any]:
    """Recompute the BN running statistics of ``model`` (e.g. a sub-network with inherited
    weights) as the exact average of per-batch statistics over ``batches``.

    ``batches`` yields images ``x`` (or ``(x, y)`` tuples). Returns ``variables`` with new
    ``batch_stats`` (``mean`` = mean of batch means, ``var`` = mean of unbiased batch
    variances); params unchanged. Raises ``ValueError`` if ``batches`` is empty or the model
    has no BN statistics.
    """
    if "batch_stats" not in variables or not jax.tree_util.tree_leaves(variables["batch_stats"]):
        raise ValueError("recalibrate_bn: the model has no 'batch_stats' (BN running stats)")
    zero = jax.tree_util.tree_map(jnp.zeros_like, variables["batch_stats"])

    @jax.jit
    def one(params, x, *a):
        # momentum 1.0 is not expressible; instead start from zeros and read the update:
        # new = (1 - m) * 0 + m * batch_stat  ->  batch_stat = new / m.
        _, upd = model.apply({"params": params, "batch_stats": zero}, x, *a, train=True,
                             mutable=["batch_stats"])
        return upd["batch_stats"]

    acc, n = None, 0
    for b in batches:
        x = b[0] if isinstance(b, (tuple, list)) else b
        st = one(variables["params"], x, *model_args)
        acc = st if acc is None else jax.tree_util.tree_map(jnp.add, acc, st)
        n += 1
    if n == 0:
        raise ValueError("recalibrate_bn: no batches given")
    mom = _bn_momentum(model)
    stats = jax.tree_util.tree_map(lambda a: a / (n * mom), acc)
    return {**variables, "batch_stats": stats}


def _bn_momentum(model: Any) -> float:
    # NB101 networks use momentum 0.003 (TF 0.997); all other jnas BN layers 0.1.
    return 0.003 if type(model).__name__ == "NB101Network" else 0.1


# ----------------------------------------------------------------------------- checkpoints
_CKPT = re.compile(r"^ckpt_(\d+)\.msgpack$")


def _list_ckpts(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CKPT.match(p.name))]
    return sorted(out)


def save_checkpoint(directory: str | Path, tree: Any, step: int, keep: int = 3) -> Path:
    """Write ``tree`` (any pytree of arrays) to ``directory/ckpt_<step>.msgpack`` atomically
    (temp file + ``os.replace``) and keep only the last ``keep`` checkpoints."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data = flax.serialization.to_bytes(jax.device_get(tree))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp_ckpt_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        path = d / f"ckpt_{int(step)}.msgpack"
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for _, old in _list_ckpts(d)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest checkpoint in ``directory``, or None."""
    c = _list_ckpts(Path(directory))
    return c[-1] if c else None


def restore_checkpoint(directory: str | Path, target: Any) -> tuple[Any, int] | None:
    """Restore the newest checkpoint into the structure of ``target``: ``(tree, step)``, or
    ``None`` when the directory holds none. Raises ``ValueError`` naming the file when it is
    corrupt or does not match ``target``."""
    last = latest_checkpoint(directory)
    if last is None:
        return None
    step, path = last
    try:
        tree = flax.serialization.from_bytes(jax.device_get(target), path.read_bytes())
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"checkpoint {path} is corrupt or does not match the state structure "
                         f"({type(e).__name__}: {e}); delete it to restart from the previous "
                         f"one") from e
    return tree, step


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


def _json_normal(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=jsonable))


def resume_search(out_dir: str | Path, state: Any, config: dict[str, Any],
                  defaults: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], int]:
    """``(state, history, epoch)`` to continue the search in ``out_dir``.

    ``out_dir/search_progress.json`` holds the run's config and per-epoch history,
    ``out_dir/ckpt`` its checkpoints. Nothing there: ``(state, [], 0)``. A saved config that
    differs from ``config`` (:func:`config_mismatch`) raises ``ValueError`` instead of
    overwriting the run; otherwise the newest checkpoint is restored onto ``state``'s
    shardings and the history is cut to its epoch.
    """
    meta_path = Path(out_dir) / "search_progress.json"
    if not meta_path.exists():
        return state, [], 0
    meta = json.loads(meta_path.read_text())
    diff = config_mismatch(meta.get("config") or {}, _json_normal(config),
                           _json_normal(defaults))
    if diff:
        raise ValueError(f"{out_dir} holds a search with a different config ({diff}); "
                         "use another --out folder (refusing to overwrite it)")
    restored = restore_checkpoint(Path(out_dir) / "ckpt", state)
    if restored is None:
        return state, [], 0
    tree, epoch = restored
    state = jax.tree_util.tree_map(
        lambda t, x: jax.device_put(x, t.sharding) if hasattr(t, "sharding") else x, state, tree)
    return state, [h for h in meta["history"] if h["epoch"] <= epoch], epoch


def resolve_run_dir(out_dir: str | Path, resume: bool = False) -> Path:
    """The run folder ``out_dir``, created if needed. Refuses (``FileExistsError``) to reuse a
    non-empty folder unless ``resume`` is true, so a finished run is never overwritten."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise FileExistsError(f"{d} exists and is not a folder; choose another --out")
    if d.is_dir() and any(d.iterdir()) and not resume:
        raise FileExistsError(f"run folder {d} already holds a run; pass --resume to continue "
                              f"it or choose another --out")
    d.mkdir(parents=True, exist_ok=True)
    return d


# ----------------------------------------------------------------------------- logging
class MetricsLogger:
    """Append-only JSON-lines metric log (one ``{"step": ..., **metrics, "time": ...}`` per
    call); reopening the same path (a resumed run) appends."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, **metrics: Any) -> dict[str, Any]:
        rec = {"step": int(step)}
        for k, v in metrics.items():
            v = jax.device_get(v)
            rec[k] = v.item() if hasattr(v, "item") and np.ndim(v) == 0 else (
                np.asarray(v).tolist() if isinstance(v, (np.ndarray, jax.Array)) else v)
        rec["time"] = time.time()
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    def read(self) -> list[dict[str, Any]]:
        """All records so far."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def progress(iterable: Iterable[Any], total: int | None = None,
             desc: str | None = None) -> Iterator[Any]:
    """A tqdm progress bar over ``iterable``; quiet when stderr is not a terminal."""
    return iter(tqdm(iterable, total=total, desc=desc, disable=not sys.stderr.isatty(),
                     dynamic_ncols=True))
