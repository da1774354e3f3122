"""Seeds in one program: several seeds of a one-shot search run as **one** ``jax.vmap``-ed
search, so one accelerator runs a whole table row (e.g. 10 seeds) at once.

Methods: DARTS first and second order (Liu et al., ICLR 2019, arXiv 1806.09055), GDAS (Dong &
Yang, CVPR 2019) and SNAS (Xie et al., ICLR 2019, arXiv 1812.09926), i.e. every method whose
run is :func:`jnas.oneshot.run_oneshot` with one (w, α) per seed. Seed ``s`` of a vmapped run
is the sequential run of seed ``s`` (``run_darts(..., key=s)``) up to float summation order:

* everything that depends on the seed comes from that seed's own key, split exactly as in
  :func:`jnas.oneshot.prepare`: its search split (``load_search_data``), weight and α init,
  per-epoch batch order (``fold_in(k_loop, epoch)``), augmentation and Gumbel draws (the
  state's key, folded with the step inside the method's step);
* the seeds' states are stacked on a leading axis and the method's un-jitted step is
  ``jax.vmap``-ed over ``(state, batch)``; each step gathers every seed's own batch
  (``f32[S, B, ...]`` after preprocessing), sharded over :func:`jnas.train.data_mesh` on the
  batch axis (seeds vmapped, batch data parallel) with the states replicated;
* each seed keeps its own folder ``out_dir/seed_<s>``: the same ``search_progress.json`` and
  per-epoch ``ckpt/`` as the sequential run (either flow resumes the other's folder) and the
  same :class:`jnas.report.Result` plus ``vmapped_seeds`` (the seeds run together); ``wall_s``
  and ``compile_s`` are those of the whole vmapped group.

Costs: memory and step time grow ~linearly in the number of seeds (one program, no
re-compiles); GDAS's sampled forward computes every op under vmap (``lax.switch`` with a
per-seed index becomes a select), so its results are unchanged but it loses the sampled
forward's saving (CPU, test size: 4 vmapped GDAS seeds 3.4x the time of 4 sequential steps;
DARTS 1.4x faster vmapped; BENCHMARKS.md). Population methods (less-local DARTS) and
multi-process runs are refused.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from jnas import report, spaces, train, xla
from jnas.config import config_to_dict
from jnas.oneshot import (OneShotConfig, SearchState, Supernet, alpha_probs, build_result,
                          build_state, discretise, epoch_perms, init_alpha, make_supernet,
                          prepare, score_arch, search_config_dict, step_batch)

__all__ = ["VMAP_METHODS", "check_vmap_seeds", "stack_states", "seed_state", "seed_batches",
           "vmap_oneshot", "run_vmapped_seeds"]

VMAP_METHODS = ("darts", "darts2", "gdas", "snas")
"""The registry methods whose seeds can run as one vmapped search."""

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def check_vmap_seeds(method: str, seeds: Sequence[int]) -> None:
    """``ValueError`` unless ``method`` can run ``seeds`` (>= 2, distinct) as one vmapped
    search in this process."""
    if method not in VMAP_METHODS:
        raise ValueError(f"--vmap-seeds runs one-shot searches with one (w, α) per seed "
                         f"({', '.join(VMAP_METHODS)}), not {method!r}; leave it out")
    if len(seeds) < 2:
        raise ValueError("--vmap-seeds needs at least two seeds (e.g. --seeds 0-9); leave it "
                         "out for one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--vmap-seeds needs distinct seeds, got {list(seeds)}")
    if jax.process_count() > 1:
        raise ValueError("--vmap-seeds runs in one process (its batch may still be split over "
                         "the local devices); leave out the multi-process options")


def stack_states(states: Sequence[Any]) -> Any:
    """The per-seed states stacked on a new leading axis (leaf-wise ``np.stack``)."""
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states)


def seed_state(stacked: Any, i: int) -> Any:
    """Seed ``i``'s state (host arrays) of a stacked state."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[i], stacked)


def seed_batches(data: Sequence[Split], perms: Sequence[tuple[np.ndarray, np.ndarray]],
                 s: int, batch_size: int) -> dict[str, np.ndarray]:
    """Step ``s``'s batch of every seed stacked on axis 0: seed ``i`` takes the images of its
    own split ``data[i]`` at its own epoch permutation ``perms[i]``, as
    :func:`jnas.oneshot.run_epochs` does for one seed."""
    parts = [step_batch(d, p, s, batch_size) for d, p in zip(data, perms)]
    return {k: np.stack([b[k] for b in parts]) for k in ("xt", "yt", "xv", "yv")}


def _non_finite(ms: list[dict[str, np.ndarray]], i: int) -> tuple[int, str, float] | None:
    for s, m in enumerate(ms):
        for k, v in m.items():
            x = np.asarray(v)[i]
            bad = x[~np.isfinite(x)]
            if bad.size:
                return s, k, float(bad.ravel()[0])
    return None


class _SeedRun:
    """One seed's bookkeeping: keys, split, folder, history."""

    def __init__(self, seed: int, setup: Any, out: Path | None, config_dict: dict[str, Any]):
        self.seed, self.setup, self.out, self.config_dict = seed, setup, out, config_dict
        self.history: list[dict[str, Any]] = []
        self.epoch = 0


def vmap_oneshot(method: str, config: OneShotConfig, make_step: Callable[..., Callable], *,
                 space: str | Any, dataset: str, seeds: Sequence[int],
                 out_dir: str | Path | None, quiet: bool = False, net: Supernet | None = None,
                 data: Split | Sequence[Split] | None = None, stop_after: int | None = None,
                 finish: Callable[[report.Result], report.Result] | None = None
                 ) -> tuple[dict[int, report.Result], list[SearchState]]:
    """:func:`jnas.oneshot.run_oneshot` for every seed of ``seeds`` as one vmapped search.

    ``make_step`` as for ``run_oneshot``; ``out_dir``: the parent of the ``seed_<s>`` folders
    (checkpoints, ``search_progress.json``, ``alpha.png``; None: nothing written). ``data``:
    one search split for every seed, a list with one per seed, or None (each seed's own split
    of ``dataset``, as the sequential run). Seeds whose folders stopped at different epochs
    resume as separate vmapped groups. ``finish`` post-processes each result (SNAS: ``eta``).
    Returns ``({seed: Result}, [stacked final state of each group])``.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(set(seeds)) or not seeds:
        raise ValueError(f"vmap_oneshot needs distinct seeds, got {seeds}")
    if jax.process_count() > 1:
        raise ValueError("vmapped seeds run in one process (their batch split over its local "
                         "devices); run the seeds sequentially on several processes")
    space = spaces.get_space(space).name
    net = net if net is not None else make_supernet(space, config)
    if data is None or isinstance(data[0], np.ndarray):
        per_seed: list[Any] = [data] * len(seeds)
    else:
        per_seed = list(data)
        if len(per_seed) != len(seeds):
            raise ValueError(f"data holds {len(per_seed)} splits for {len(seeds)} seeds")
    out = Path(out_dir) if out_dir is not None else None
    defaults = config_to_dict(type(config)())
    t_start = time.time()
    runs, init_states = [], []
    build = None
    for seed, d in zip(seeds, per_seed):
        setup = prepare(config, space=space, dataset=dataset, key=seed, net=net, data=d)
        if runs and (setup.steps_per_epoch, setup.sample_x.shape) != (
                runs[0].setup.steps_per_epoch, runs[0].setup.sample_x.shape):
            raise ValueError("the seeds' search splits differ in size; vmapped seeds need "
                             "equal train/val sizes")
        if build is None:  # one program for every seed's init (the sequential init_state's)
            w_opt, a_opt = setup.w_opt, setup.a_opt  # equal for every seed (same sizes)
            build = jax.jit(lambda k, a, x: build_state(net, k, a, w_opt, a_opt, x),
                            compiler_options=xla.compiler_options("fastest"))
        alpha = init_alpha(net, setup.keys[2], config.alpha_init_std)
        state = jax.device_get(build(setup.keys[1], alpha, setup.sample_x))
        cfg = search_config_dict(method, space, dataset, seed, config)
        run = _SeedRun(seed, setup, out / f"seed_{seed}" if out is not None else None, cfg)
        if run.out is not None and config.checkpoint:
            state, run.history, run.epoch = train.resume_search(run.out, state, cfg, defaults)
        runs.append(run)
        init_states.append(jax.device_get(state))
    first = runs[0].setup
    step_fn = make_step(net, config, first.w_opt, first.a_opt, first.total_steps)
    compiled = xla.Compiled(jax.vmap(step_fn), options=config.xla, donate_argnums=0)
    mesh = train.data_mesh(config.batch_size)
    results: dict[int, report.Result] = {}
    finals = []
    for epoch0 in sorted({r.epoch for r in runs}):
        group = [i for i, r in enumerate(runs) if r.epoch == epoch0]
        state = train.replicate(stack_states([init_states[i] for i in group]), mesh)
        state = _run_group(method, config, space, dataset, [runs[i] for i in group], state,
                           compiled, mesh, epoch0, stop_after, quiet)
        finals.append(state)
        alphas = jax.device_get(state.alpha)
        for j, i in enumerate(group):
            r = runs[i]
            res = build_result(method, space, dataset, r.seed, config,
                               {k: v[j] for k, v in alphas.items()}, r.history, t_start,
                               compiled.compile_s, r.out,
                               extra={"vmapped_seeds": [runs[g].seed for g in group]})
            results[r.seed] = finish(res) if finish is not None else res
    return {s: results[s] for s in seeds}, finals


def _run_group(method: str, config: OneShotConfig, space: str, dataset: str,
               runs: list[_SeedRun], state: Any, compiled: xla.Compiled, mesh: Any,
               epoch0: int, stop_after: int | None, quiet: bool) -> Any:
    """The epoch loop of :func:`jnas.oneshot.run_epochs` for a group of seeds at one epoch."""
    bs, spe, epochs = config.batch_size, runs[0].setup.steps_per_epoch, config.epochs
    data = [r.setup.data for r in runs]
    sharding = NamedSharding(mesh, P(None, "data"))  # seeds vmapped, batch data parallel
    bench_ds = dataset if dataset in ("cifar10", "cifar100", "ImageNet16-120") else "cifar10"
    tag = f"{method} seeds {','.join(str(r.seed) for r in runs)}"
    for epoch in range(epoch0, epochs):
        if stop_after is not None and epoch >= stop_after:
            break
        perms = [epoch_perms(r.setup.keys[3], epoch, len(d[0]), len(d[2]))
                 for r, d in zip(runs, data)]
        bar = tqdm(total=spe, desc=f"[{tag}] epoch {epoch + 1}/{epochs}", disable=quiet,
                   leave=False, file=sys.stderr, dynamic_ncols=True)
        metrics = []
        for s in range(spe):
            batch = jax.device_put(seed_batches(data, perms, s, bs), sharding)
            state, m = compiled(state, batch)
            metrics.append(m)
            bar.update(1)
        bar.close()
        ms = jax.device_get(metrics)
        host = jax.device_get(state)
        for i, r in enumerate(runs):
            bad = _non_finite(ms, i)
            if bad is not None:
                s, name, v = bad
                raise train.NonFiniteLossError(
                    f"seed {r.seed}: {name} is {v} at step {epoch * spe + s + 1} (epoch "
                    f"{epoch + 1}): the search diverged; lower the learning rates (--set "
                    f"w_lr=... / a_lr=...) or w_clip, or run the seeds without --vmap-seeds")
            mean = {k: float(np.mean([np.mean(np.asarray(m[k])[i]) for m in ms]))
                    for k in ms[0]}
            alpha = {k: np.asarray(v)[i] for k, v in host.alpha.items()}
            rule = getattr(config, "derive", None)  # SNAS: argmax on every edge
            arch = discretise(space, alpha) if rule is None else discretise(space, alpha, rule)
            rec = {"epoch": epoch + 1, **mean, "arch": arch.to_string(),
                   "alpha": {k: np.asarray(v).tolist() for k, v in alpha_probs(alpha).items()}}
            sc = score_arch(space, arch)
            if sc is not None:
                rec["test_accuracy"] = sc[f"test_accuracy_{bench_ds}"]
            r.history.append(rec)
            if not quiet:
                nums = " ".join(f"{k} {v:.4g}" for k, v in rec.items()
                                if isinstance(v, float) and k != "epoch")
                tqdm.write(f"[{method} seed {r.seed}] epoch {epoch + 1}/{epochs} {nums} cell "
                           f"{rec['arch']}", file=sys.stdout)
            if r.out is not None and config.checkpoint:
                train.save_checkpoint(r.out / "ckpt", seed_state(host, i), epoch + 1)
                report.write_json(r.out / "search_progress.json",
                                  {"config": r.config_dict, "history": r.history}, indent=None)
    return state


def _method(method: str, config: OneShotConfig, costs: dict[str, np.ndarray] | None
            ) -> tuple[str, Callable[..., Callable], Callable | None]:
    """(recorded name, make_step, finish) of a registry method, as its sequential entry."""
    from jnas import darts, snas  # the methods sit above this engine's imports
    if method in ("darts", "darts2"):
        order = getattr(config, "order", 1)
        if method == "darts2" and order != 2:
            raise ValueError(f"darts2 needs a config with order=2, got order={order}")
        return ("darts2" if order == 2 else "darts"), darts.bilevel_maker(order), None
    if method == "gdas":
        return "gdas", darts.bilevel_maker(1, "hard_gumbel"), None
    if method == "snas":
        def make(net, cfg, w_opt, a_opt, total):
            return snas.make_snas_step(net, cfg, w_opt, a_opt, total, costs=costs)
        eta = snas.resource_eta(config)
        return "snas", make, lambda res: res.replace(eta=eta)
    raise ValueError(f"cannot vmap the seeds of {method!r}; valid: {', '.join(VMAP_METHODS)}")


def run_vmapped_seeds(method: str, config: OneShotConfig, *, seeds: Sequence[int],
                      space: str = "nb201", dataset: str = "cifar10",
                      out_dir: str | Path | None = None, quiet: bool = False,
                      costs: dict[str, np.ndarray] | None = None, **kw: Any
                      ) -> tuple[dict[int, report.Result], list[SearchState]]:
    """Runs ``seeds`` of the one-shot ``method`` as one vmapped search (:func:`vmap_oneshot`):
    'darts' / 'darts2' (DARTS, Liu et al., ICLR 2019), 'gdas' (Dong & Yang, CVPR 2019) or
    'snas' (Xie et al., ICLR 2019), each with its config class. Returns ``{seed: Result}``,
    equal to ``run_darts`` / ``run_gdas`` / ``run_snas`` with ``key=seed`` up to float
    rounding (plus ``vmapped_seeds``), and the stacked final states. ``out_dir/seed_<s>``
    holds seed ``s``'s checkpoints (the CLI writes ``result.json`` there). ``costs``: SNAS's
    op cost table (tests); ``kw``: ``net``, ``data``, ``stop_after``."""
    name, make, finish = _method(method, config, costs)
    return vmap_oneshot(name, config, make, space=space, dataset=dataset, seeds=seeds,
                        out_dir=out_dir, quiet=quiet, finish=finish, **kw)
