"""BONAS weight-sharing evaluator: the k candidates of a round trained together in one supernet.

BONAS (Shi et al., NeurIPS 2020, arXiv 1911.09336, §3.3): instead of training the k candidates
chosen by the acquisition one by one, they are merged into one supernet (the union of their op
masks); each minibatch trains one uniformly sampled candidate (its one-hot op mask as the
supernet's edge weights); afterwards each candidate is read out with its own recomputed BN
statistics. Here the whole training run is one ``lax.scan`` and the read-out of all k
candidates (BN recalibration + validation accuracy) is **one compiled program** that
``jax.vmap``-s over the k masks — no Python loop over networks.

Simulated cost (:func:`simulated_batch_s`, accumulated in
``simulated_cost_s`` so :func:`jnas.search.run_search` reports it beside the queries): the NB201
time model of :func:`jnas.benchmarks.simulated_time_s` applied to the NB201 reference network
(C=16, N=5, the network a table query stands for) whose cell holds the union of the k
candidates' ops, trained on ``steps * batch_size`` images, plus each candidate's read-out
(recalibration + validation images) at a third of its training cost per image. A model, not a
measurement; the union is what the masked supernet computes on every step.

``mode="independent"`` trains k separate networks (each with its own weights, ``steps / k``
steps, one after another under ``lax.map`` in the same single program) for the "same total
steps" comparison. Initial weights come from a separate small program, compiled with the
cheapest XLA options (:func:`jnas.xla.compiler_options`), so the training program does not
carry the threefry init graph.

CLI: ``jnas search bonas --space nb201 --evaluator weight-sharing --dataset cifar10`` builds the
evaluator with :func:`make_evaluator` (``kind="weight-sharing"``); ``kind="tabular"`` is the
benchmark lookup of :mod:`jnas.benchmarks`.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas import benchmarks
from jnas.cells import NB201Supernet
from jnas.config import apply_overrides, check_choice, check_positive
from jnas.data import augment, load_cifar10, normalize, search_split
from jnas.rng import as_key
from jnas.xla import Compiled

__all__ = ["WSConfig", "WeightSharingEvaluator", "arch_masks", "ws_programs", "make_evaluator",
           "simulated_batch_s"]


@dataclasses.dataclass(frozen=True)
class WSConfig:
    """Weight-sharing training / read-out settings (reduced defaults for CPU runs)."""
    C: int = 8                    # supernet channels of the first stage
    N: int = 1                    # cells per stage
    batch_size: int = 64          # training images per SGD step
    steps: int = 400              # supernet SGD steps per round (all k candidates together)
    lr: float = 0.05              # SGD learning rate (cosine decay to 0 over the round)
    momentum: float = 0.9         # SGD Nesterov momentum
    weight_decay: float = 3e-4    # coupled weight decay
    grad_clip: float = 5.0        # global gradient-norm clip
    augment: bool = True          # random crop + flip of training images
    recal_batches: int = 4        # BN recalibration batches per candidate
    eval_batches: int = 4         # validation batches per candidate
    eval_batch_size: int = 250    # images per validation / recalibration batch
    static_union: bool = False    # prune ops absent from every candidate (recompiles per round)
    mode: str = "shared"          # 'shared' (BONAS) or 'independent' (k nets, steps/k each)
    readout: str = "vmap"         # 'vmap' (batched over the k masks) or 'map' (lax.map loop)

    def __post_init__(self) -> None:
        check_choice(self, "mode", ("shared", "independent"))
        check_choice(self, "readout", ("vmap", "map"))
        check_positive(self, "C", "N", "batch_size", "steps", "eval_batches", "eval_batch_size")
        check_positive(self, "lr", "momentum", "weight_decay", "grad_clip", "recal_batches",
                       allow_zero=True)


def arch_masks(archs: Sequence[Any]) -> np.ndarray:
    """One-hot op masks ``f32[k, 6, 5]`` (edges x NB201 ops) of NB201 cells."""
    out = np.zeros((len(archs), 6, 5), np.float32)
    for i, a in enumerate(archs):
        ids = getattr(a, "op_ids", None)
        if ids is None or len(ids) != 6:
            raise ValueError("the weight-sharing evaluator supports NB201 cells (NB201Arch); "
                             f"got {type(a).__name__}")
        out[i, np.arange(6), list(ids)] = 1.0
    return out


def _recal_stats(model, params, stats, x_batches, w):
    """Precise BN: per-batch statistics averaged over ``x_batches`` for edge weights ``w``.

    Train-mode forward passes normalise with batch statistics, so each pass from zero running
    stats returns ``momentum * batch_stat``; dividing by the momentum recovers it exactly.
    """
    zero = jax.tree.map(jnp.zeros_like, stats)

    def one(acc, x):
        _, upd = model.apply({"params": params, "batch_stats": zero}, x, w, True,
                             mutable=["batch_stats"])
        return jax.tree.map(lambda a, b: a + b, acc, upd["batch_stats"]), None

    total, _ = jax.lax.scan(one, zero, x_batches)
    return jax.tree.map(lambda t: t / (0.1 * x_batches.shape[0]), total)


def _accuracy(model, params, stats, xs, ys, w):
    def one(c, xy):
        logits = model.apply({"params": params, "batch_stats": stats}, xy[0], w, False)
        return c + jnp.sum(jnp.argmax(logits, -1) == xy[1]), None

    correct, _ = jax.lax.scan(one, jnp.int32(0), (xs, ys))
    return 100.0 * correct / (ys.shape[0] * ys.shape[1])


@functools.cache
def ws_programs(c: WSConfig, num_classes: int, k: int, union: tuple | None
                ) -> tuple[Compiled, Compiled]:
    """``(init_all, run)`` of ``k`` candidates: the initial weights (cheapest XLA options) and
    the whole training run + read-out as one program; cached, so every evaluator of the same
    settings shares the executables (compiled per data shape)."""
    model = NB201Supernet(C=c.C, N=c.N, num_classes=num_classes, op_mask=union)
    steps = c.steps if c.mode == "shared" else max(1, c.steps // k)
    sched = optax.cosine_decay_schedule(c.lr, steps, alpha=0.0)
    tx = optax.chain(optax.clip_by_global_norm(c.grad_clip),
                     optax.add_decayed_weights(c.weight_decay),
                     optax.sgd(sched, momentum=c.momentum, nesterov=True))

    def init(key):
        x0 = jnp.zeros((2, 32, 32, 3), jnp.float32)
        v = model.init(key, x0, jnp.ones((6, 5), jnp.float32), True)
        return v["params"], v.get("batch_stats", {})

    def batch(key, xtr, ytr):
        n_tr = xtr.shape[0]
        kb, ka = jax.random.split(key)
        idx = jax.random.randint(kb, (c.batch_size,), 0, n_tr)
        x = xtr[idx]
        if c.augment:
            x = augment(ka, x)
        return normalize(x), ytr[idx]

    def loss_fn(params, stats, x, y, w):
        logits, upd = model.apply({"params": params, "batch_stats": stats}, x, w, True,
                                  mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, upd["batch_stats"]

    def train_one(key, params, stats, masks, xtr, ytr, pick_candidate):
        opt = tx.init(params)

        def step(carry, t):
            params, stats, opt = carry
            ks = jax.random.fold_in(key, t + 1)
            kc, kd = jax.random.split(ks)
            w = masks[jax.random.randint(kc, (), 0, masks.shape[0])] if pick_candidate \
                else masks
            x, y = batch(kd, xtr, ytr)
            (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(
                params, stats, x, y, w)
            upd, opt = tx.update(g, opt, params)
            return (optax.apply_updates(params, upd), stats, opt), loss

        (params, stats, _), losses = jax.lax.scan(step, (params, stats, opt),
                                                  jnp.arange(steps))
        return params, stats, losses

    def readout(params, stats, w, xr, xe, ye):
        st = _recal_stats(model, params, stats, xr, w) if xr.shape[0] else stats
        return _accuracy(model, params, st, xe, ye, w)

    def read_all(params, stats, masks, xr, xe, ye, per_member):
        if per_member:  # candidate i read out with its own weights
            return jax.lax.map(lambda a: readout(*a, xr, xe, ye), (params, stats, masks))
        if c.readout == "map":
            return jax.lax.map(lambda m: readout(params, stats, m, xr, xe, ye), masks)
        return jax.vmap(readout, in_axes=(None, None, 0, None, None, None))(
            params, stats, masks, xr, xe, ye)

    if c.mode == "shared":
        def run(key, p0, s0, masks, xtr, ytr, xr, xe, ye):
            params, stats, losses = train_one(key, p0, s0, masks, xtr, ytr, True)
            return read_all(params, stats, masks, xr, xe, ye, False), losses

        def init_all(key, k_):
            return init(jax.random.fold_in(key, 0))
    else:
        # k networks one after another (lax.map): one compiled training body, like the
        # shared program; a vmap over k networks compiled for > 15 min on a 2-core CPU.
        def run(key, p0, s0, masks, xtr, ytr, xr, xe, ye):
            keys = jax.random.split(key, masks.shape[0])
            params, stats, losses = jax.lax.map(
                lambda a: train_one(*a, xtr, ytr, False), (keys, p0, s0, masks))
            return read_all(params, stats, masks, xr, xe, ye, True), losses.mean(0)

        def init_all(key, k_):
            keys = jax.random.split(key, k_)
            return jax.vmap(lambda kk: init(jax.random.fold_in(kk, 0)))(keys)
    return (Compiled(init_all, options="fastest", static_argnums=1),
            Compiled(run, options="fast"))


def simulated_batch_s(archs: Sequence[Any], config: WSConfig = WSConfig(),
                      dataset: str = "cifar10") -> float:
    """Modelled seconds of one weight-sharing batch of NB201 cells (module docstring): the
    merged supernet ('shared') or k nets of ``steps / k`` steps each ('independent'), plus
    the k read-outs; needs no images."""
    c = config
    ds = dataset if dataset in benchmarks.DATASETS else "cifar10"
    masks = arch_masks(list(archs))
    per_img = 1.0 / benchmarks.TRAIN_IMAGES[("cifar10", "12epoch")]

    def seconds(counts: np.ndarray, images: float) -> float:
        flops = benchmarks.nb201_cost([int(v) for v in counts], ds)["flops_M"]
        return float(benchmarks.simulated_time_s(flops, 1, scale=images * per_img))

    imgs = c.steps * c.batch_size
    if c.mode == "shared":
        train = seconds((masks.max(0) > 0).sum(0), imgs)
    else:
        train = sum(seconds(m.sum(0), imgs / len(masks)) for m in masks)
    n_read = (c.recal_batches + c.eval_batches) * c.eval_batch_size
    return train + sum(seconds(m.sum(0), n_read) for m in masks) / 3.0


class WeightSharingEvaluator:
    """Evaluates NB201 candidates by weight-shared training on real images (BONAS).

    Args:
      train: ``(uint8[N,32,32,3], int32[N])`` images used for supernet training.
      val: ``(images, labels)`` for the read-out (the signal); also the BN recalibration data.
      key: PRNG key / seed (weights init, batches, augmentation; round ``r`` folds in ``r``).
      config: :class:`WSConfig`.
      bench: optional NB201 benchmark, so results report the table's numbers.
      dataset: name recorded in results; ``num_classes`` from the labels.

    ``evaluate(archs)`` returns the read-out validation accuracy (%) of every arch; the
    timings of the last call are in ``last_timing`` (``train_s``, ``readout_s``,
    ``compile_s``).
    """

    space = "nb201"

    def __init__(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                 key: Any = 0, config: WSConfig = WSConfig(), bench: Any = None,
                 dataset: str = "cifar10") -> None:
        xtr, ytr = np.asarray(train[0]), np.asarray(train[1])
        xva, yva = np.asarray(val[0]), np.asarray(val[1])
        for nm, (x, y) in {"train": (xtr, ytr), "val": (xva, yva)}.items():
            if x.ndim != 4 or x.shape[-1] != 3 or len(x) != len(y):
                raise ValueError(f"{nm} must be (uint8[N,H,W,3], int[N]); got {x.shape}, "
                                 f"{y.shape}")
        if len(xva) < config.eval_batches * config.eval_batch_size:
            raise ValueError(f"val has {len(xva)} images; eval_batches * eval_batch_size = "
                             f"{config.eval_batches * config.eval_batch_size} needed (lower them)")
        if len(xtr) < config.batch_size:
            raise ValueError(f"train has {len(xtr)} images < batch_size {config.batch_size}")
        self.config = config
        self.bench = bench
        self.dataset = dataset
        self.num_classes = int(max(ytr.max(), yva.max()) + 1)
        self._xtr, self._ytr = jnp.asarray(xtr), jnp.asarray(ytr, jnp.int32)
        self._xva, self._yva = xva, yva.astype(np.int32)
        self._key = as_key(key)
        self._round = 0
        self.num_queries = 0
        self.last_timing: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self.compile_s = 0.0  # seconds this evaluator spent compiling programs
        self.simulated_cost_s = 0.0  # modelled GPU-seconds of all batches so far

    def simulated_batch_s(self, archs: Sequence[Any]) -> float:
        """Modelled seconds of evaluating ``archs`` as one batch (:func:`simulated_batch_s`)."""
        return simulated_batch_s(archs, self.config, self.dataset)

    # ----------------------------------------------------------------------- evaluator API
    def evaluate(self, archs: Sequence[Any]) -> list[float]:
        """Trains the ``k = len(archs)`` candidates together and returns each one's read-out
        validation accuracy (%), all k read out by one compiled (vmapped) program."""
        archs = list(archs)
        if not archs:
            return []
        c = self.config
        masks = arch_masks(archs)
        union = None
        if c.static_union:
            union = tuple(tuple(int(v) for v in row) for row in (masks.max(0) > 0))
        self._round += 1
        key = jax.random.fold_in(self._key, self._round)
        nb_r, nb_e, eb = c.recal_batches, c.eval_batches, c.eval_batch_size
        ev = np.arange(nb_e * eb)
        rc = (np.arange(nb_r * eb) + nb_e * eb) % len(self._xva)
        xe = normalize(self._xva[ev]).reshape(nb_e, eb, 32, 32, 3)
        ye = jnp.asarray(self._yva[ev].reshape(nb_e, eb))
        xr = normalize(self._xva[rc]).reshape(nb_r, eb, 32, 32, 3)
        init_all, run = ws_programs(c, self.num_classes, len(archs), union)
        c0 = init_all.compile_s + run.compile_s
        p0, s0 = init_all(key, len(archs))  # initial weights outside the training program
        args = (key, p0, s0, jnp.asarray(masks), self._xtr, self._ytr, xr, xe, ye)
        exe = run.lower_compile(*args)
        compile_s = init_all.compile_s + run.compile_s - c0
        self.compile_s += compile_s
        t1 = time.perf_counter()
        accs, losses = jax.block_until_ready(exe(*args))
        accs = np.asarray(accs, np.float64)
        losses = np.asarray(losses)
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError("weight-sharing training produced a NaN/inf loss; lower "
                                     "WSConfig.lr")
        self.last_timing = {"compile_s": compile_s, "run_s": time.perf_counter() - t1,
                            "final_loss": float(losses[-10:].mean())}
        self.num_queries += len(archs)
        self.last_timing["sim_s"] = self.simulated_batch_s(archs)
        self.simulated_cost_s += self.last_timing["sim_s"]
        for a, s in zip(archs, accs):
            self._reported[a.to_string()] = float(s)
        return [float(s) for s in accs]

    def reported_score(self, arch: Any) -> float:
        """The benchmark's 200-epoch test accuracy when a bench is given, else the read-out."""
        if self.bench is not None:
            return float(self.bench.test_acc[self.dataset][self.bench.index_of(arch)])
        return self._reported.get(arch.to_string(), float("nan"))

    def report(self, arch: Any) -> dict[str, Any]:
        """The read-out accuracy of ``arch`` and, with a bench, its NB201 numbers."""
        out: dict[str, Any] = {"readout_accuracy": self._reported.get(arch.to_string())}
        if self.bench is not None:
            i = self.bench.index_of(arch)
            out.update(nb201_index=int(i),
                       test_accuracy=float(self.bench.test_acc[self.dataset][i]))
        return out

    def describe(self) -> dict[str, Any]:
        """What the evaluator measures (goes into result files)."""
        return {"evaluator": "weight-sharing", "dataset": self.dataset,
                "signal": "supernet read-out validation accuracy after BN recalibration",
                "reported": ("NB201 200-epoch test accuracy" if self.bench is not None
                             else "read-out accuracy"),
                "config": dataclasses.asdict(self.config)}


def make_evaluator(kind: str, *, dataset: str = "cifar10", benchmark: str = "nb201",
                   protocol: str = "12epoch", seed: int = 0, config: WSConfig | None = None,
                   overrides: Sequence[str] | None = None, max_per_class: int | None = None
                   ) -> Any:
    """Evaluator for ``jnas search --evaluator KIND``.

    Args:
      kind: ``"tabular"`` (``benchmarks.make_evaluator(benchmark, dataset, protocol)``) or
        ``"weight-sharing"`` (:class:`WeightSharingEvaluator` on real images: CIFAR-10 train
        split in half by ``data.search_split``, train half for the supernet, val half for the
        read-out; NB201 numbers reported when the benchmark loads).
      overrides: ``key=value`` strings applied to :class:`WSConfig`.
      max_per_class: use only the first k training images per class (quick CPU runs).
    """
    if kind == "tabular":
        return benchmarks.make_evaluator(benchmark, dataset=dataset, protocol=protocol)
    if kind != "weight-sharing":
        raise ValueError(f"unknown evaluator {kind!r}; valid: 'tabular', 'weight-sharing'")
    if dataset != "cifar10":
        raise ValueError("the weight-sharing evaluator loads CIFAR-10 images only; use "
                         "--dataset cifar10")
    cfg = apply_overrides(config or WSConfig(), overrides)
    x, y = load_cifar10("auto", "train", max_per_class=max_per_class)
    tr, va = search_split(x, y, seed)
    try:
        bench = benchmarks.load_nb201()
    except (FileNotFoundError, OSError, ValueError):
        bench = None
    return WeightSharingEvaluator(tr, va, seed, cfg, bench=bench, dataset=dataset)
