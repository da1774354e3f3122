"""The ``jnas`` command: search, info, compare, download, methods.

``jnas search METHOD [--space S] [--dataset D] [--benchmark NAME|FILE] [--budget N | --epochs E]
[--seed S | --seeds 0-9] [--out DIR] [--set key=value ...]`` runs one search per seed and writes
``DIR/seed_<S>/result.json`` (a :class:`jnas.report.Result`): sample-based methods through
:func:`jnas.search.run_method` against a table (or BONAS's weight-sharing evaluator), one-shot
methods through their registry entry point. The command only turns options into a config and an
evaluator; options that do not apply are refused, and every bad input ends with exit code 2 and
one line ``jnas: error: ...`` before anything is written (several processes: jnas.distributed).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from jnas.cli_parser import (DATASET_ALIASES, DATASETS, DEFAULT_BUDGET, INPUT, SPACES, UsageError,
                             build_parser)
from jnas.config import parse_seeds  # re-exported: experiments import it from here
from jnas.interrupt import delivered

__all__ = ["main", "build_parser", "UsageError", "SPACES", "DATASETS", "config_help",
           "parse_seeds"]

def _dataset(name: str | None) -> str:
    key = (name or "cifar10").lower()
    if key not in DATASET_ALIASES:
        raise ValueError(f"unknown dataset {name!r}; use --dataset with one of "
                         f"{', '.join(DATASETS)}")
    return DATASET_ALIASES[key]


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, KeyError):  # str() is only the key: say what it is and how to see more
        text = f"missing key {text} (JNAS_TRACEBACK=1 shows where)"
    return text


# ----------------------------------------------------------------------------- help
def _keys_table(cls: type, prefix: str = "") -> str:
    from jnas.config import field_docs
    docs, rows = field_docs(cls), []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((prefix + f.name, typ, repr(default), docs.get(f.name, "")))
    if not rows:
        return "  (none: this method has no settings)"
    w = [max(len(r[k]) for r in rows) for k in range(3)]
    return "\n".join(f"  {n:<{w[0]}}  {t:<{w[1]}}  {d:<{w[2]}}  {doc}".rstrip()
                     for n, t, d, doc in rows)


def config_help(spec: Any) -> str:
    """The ``--set`` keys of a method's config (and of the weight-sharing evaluator where the
    method can use it): name, type, default and one-line doc."""
    cls = spec.config_cls()
    text = (f"{spec.name} ({spec.kind}): {spec.doc}\n  spaces: {', '.join(spec.spaces)}"
            + (f"; benchmarks: {', '.join(spec.benchmarks)}" if spec.kind == "sample" else "")
            + f"\n\nconfig keys of {spec.name} ({cls.__name__}; --set KEY=VALUE):\n"
            + _keys_table(cls))
    if "weight-sharing" in spec.benchmarks:
        from jnas.weight_sharing import WSConfig
        text += ("\n\nweight-sharing evaluator keys (WSConfig; with --evaluator weight-sharing, "
                 "--set ws.KEY=VALUE):\n" + _keys_table(WSConfig, "ws."))
    return text


# ----------------------------------------------------------------------------- search
@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a ``jnas search`` will run, worked out (and checked) before anything is written."""
    spec: Any
    config: Any
    dataset: str
    seeds: list[int]
    out: Path
    budget: int | None = None        # sample-based
    benchmark: str | None = None     # sample-based, tabular: nb201 / nb101 / FILE.csv
    protocol: str = "12epoch"
    metric: str | None = None        # CSV benchmark columns
    report: str | None = None
    ws_overrides: tuple[str, ...] = ()
    cluster: Any = None              # one-shot, several processes: distributed.ClusterSpec


def _refuse(given: dict[str, Any], why: str) -> None:
    bad = [k for k, v in given.items() if v not in (None, False, [])]
    if bad:
        raise ValueError(f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply "
                         f"{why}; leave {'it' if len(bad) == 1 else 'them'} out")


def _plan(args: argparse.Namespace) -> _Plan:
    """Checks every option against the method, space and benchmark; builds the config."""
    from jnas import config as cfg
    from jnas import registry
    spec = registry.get_method(args.method)
    if args.space not in SPACES:
        raise ValueError(f"unknown space {args.space!r}; use --space with one of "
                         f"{', '.join(SPACES)}")
    if args.space not in spec.spaces:
        raise ValueError(f"method {spec.name!r} supports spaces {', '.join(spec.spaces)}, "
                         f"not {args.space!r}; pick one of those with --space")
    dataset = _dataset(args.dataset)
    seeds = parse_seeds(args.seed, args.seeds)
    main_over, ws_over = cfg.split_overrides(args.overrides)
    plan: dict[str, Any] = {}
    if spec.kind == "oneshot":
        _refuse({"--budget": args.budget, "--benchmark": args.benchmark,
                 "--metric": args.metric, "--report": args.report,
                 "--protocol": args.protocol, "--evaluator": args.evaluator,
                 "--set ws.*": ws_over},
                f"to the one-shot method {spec.name!r} (it trains a supernet for --epochs)")
        if args.epochs is not None and args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        implicit = {} if args.epochs is None else {"epochs": args.epochs}
        from jnas import distributed
        plan["cluster"] = distributed.cluster_spec(args.coordinator, args.num_processes,
                                                   args.process_id,
                                                   timeout_s=args.coordinator_timeout)
    else:
        _refuse({"--epochs": args.epochs, "--coordinator": args.coordinator,
                 "--num-processes": args.num_processes is not None,
                 "--process-id": args.process_id is not None},
                f"to the sample-based method {spec.name!r} (it runs for --budget queries, "
                "in one process)")
        if args.budget is not None and args.budget < 1:
            raise ValueError(f"--budget must be at least 1 query, got {args.budget}")
        plan.update(budget=args.budget or DEFAULT_BUDGET, **_check_evaluator(spec, args,
                                                                               ws_over))
        implicit = {}
    config = cfg.apply_overrides(cfg.apply_overrides(spec.config_cls(), implicit), main_over)
    out = Path(args.out) if args.out else Path("runs") / spec.name
    if getattr(args, "vmap_seeds", False):
        _check_vmap(spec, seeds, plan.get("cluster"))
    return _Plan(spec, config, dataset, seeds, out, **plan)


def _check_evaluator(spec: Any, args: argparse.Namespace, ws_over: list[str]
                     ) -> dict[str, Any]:
    """The evaluator options of a sample-based run, refusing those that do not apply."""
    if args.evaluator == "weight-sharing":
        if "weight-sharing" not in spec.benchmarks:
            raise ValueError(f"method {spec.name!r} cannot use --evaluator weight-sharing "
                             "(only bonas can); leave it out")
        if args.space != "nb201":
            raise ValueError("--evaluator weight-sharing supports --space nb201 only")
        _refuse({"--benchmark": args.benchmark, "--metric": args.metric,
                 "--report": args.report}, "to --evaluator weight-sharing (it trains on images)")
        return {"benchmark": None, "protocol": args.protocol or "12epoch",
                "ws_overrides": tuple(ws_over)}
    _refuse({"--set ws.*": ws_over}, "without --evaluator weight-sharing")
    bench = args.benchmark or {"nb201": "nb201", "nb101": "nb101"}.get(args.space)
    if bench is None:
        raise ValueError(f"no tabular benchmark for the {args.space} space; give "
                         "--benchmark FILE.csv (with --metric COLUMN), or use a one-shot "
                         "method")
    if bench.endswith(".csv"):
        if "csv" not in spec.benchmarks:
            raise ValueError(f"method {spec.name!r} cannot query a CSV table")
        if args.metric is None:
            raise ValueError("--benchmark FILE.csv needs --metric COLUMN (and optionally "
                             "--report COLUMN)")
        _refuse({"--protocol": args.protocol, "--dataset": args.dataset},
                "to a CSV table (its columns are the numbers)")
        return {"benchmark": bench, "protocol": "table", "metric": args.metric,
                "report": args.report}
    _refuse({"--metric": args.metric, "--report": args.report},
            f"to the {bench} table (--metric/--report name columns of a --benchmark "
            "FILE.csv)")
    if bench not in ("nb201", "nb101"):
        raise ValueError(f"unknown benchmark {bench!r}; use --benchmark nb201, nb101 or a "
                         "FILE.csv")
    if bench not in spec.benchmarks:
        raise ValueError(f"method {spec.name!r} cannot query the {bench} table")
    if bench != args.space:
        raise ValueError(f"--benchmark {bench} holds {bench} cells, not {args.space} ones; "
                         f"use --space {bench}, or --benchmark {args.space}")
    if bench == "nb101":
        _refuse({"--protocol": args.protocol}, "to the nb101 table (one 108-epoch number)")
    return {"benchmark": bench, "protocol": args.protocol or "12epoch"}


def _make_evaluator(plan: _Plan, space: str, seed: int) -> Any:
    """A fresh evaluator for one seed (evaluators count their queries and simulated cost)."""
    from jnas import benchmarks
    if plan.benchmark is None:
        from jnas import weight_sharing
        return weight_sharing.make_evaluator("weight-sharing", dataset=plan.dataset, seed=seed,
                                             protocol=plan.protocol,
                                             overrides=list(plan.ws_overrides))
    if plan.benchmark.endswith(".csv"):
        return benchmarks.TableEvaluator(benchmarks.load_table(
            plan.benchmark, space=space, metric=plan.metric, report=plan.report))
    return benchmarks.make_evaluator(plan.benchmark, dataset=plan.dataset,
                                     protocol=plan.protocol)


def _check_vmap(spec: Any, seeds: list[int], cluster: Any) -> None:
    """``--vmap-seeds``: a one-shot method with one (w, α) per seed, >= 2 seeds, 1 process."""
    if spec.kind != "oneshot":
        raise ValueError(f"--vmap-seeds does not apply to the sample-based method "
                         f"{spec.name!r} (it vmaps one-shot searches); leave it out")
    if cluster is not None:
        raise ValueError("--vmap-seeds and several processes are exclusive (a vmapped run "
                         "splits its batch over one process's devices); leave one out")
    from jnas import oneshot_seeds
    oneshot_seeds.check_vmap_seeds(spec.name, seeds)


def _run_vmapped(plan: _Plan, args: argparse.Namespace, todo: list[int]) -> dict[int, Any]:
    """``--vmap-seeds``: the unfinished seeds as one vmapped search
    (:func:`jnas.oneshot_seeds.run_vmapped_seeds`); ``{seed: Result}``. With ``--force`` the
    old folders move aside first and come back if the run fails."""
    from jnas import oneshot_seeds
    if not todo:
        return {}
    moved = []
    for seed in todo if args.force else []:
        seed_dir, old = plan.out / f"seed_{seed}", plan.out / ".replaced" / f"seed_{seed}"
        if seed_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            old.parent.mkdir(parents=True, exist_ok=True)
            seed_dir.rename(old)
            moved.append((seed_dir, old))
    args.saved_hint = (f"the finished epochs (checkpoints) of seeds {todo} are saved under "
                       f"{plan.out}; re-running the same command resumes")
    if not args.quiet:
        print(f"== {plan.spec.name} seeds {','.join(map(str, todo))} as one vmapped search "
              f"-> {plan.out}", flush=True)
    try:
        results, _states = oneshot_seeds.run_vmapped_seeds(
            plan.spec.name, plan.config, seeds=todo, space=args.space, dataset=plan.dataset,
            out_dir=plan.out, quiet=args.quiet)
    except Exception:
        for seed_dir, old in moved:
            shutil.rmtree(seed_dir, ignore_errors=True)
            old.rename(seed_dir)
        _rmdir_if_empty(plan.out / ".replaced")
        raise
    return results


def _run_seed(plan: _Plan, args: argparse.Namespace, seed: int, seed_dir: Path,
              evaluator: Any) -> Any:
    """One search; returns its :class:`jnas.report.Result`."""
    log = None if args.quiet else (lambda m: print(m, flush=True))
    if plan.spec.kind == "sample":
        from jnas import search
        return search.run_method(plan.spec, plan.config, space=args.space, evaluator=evaluator,
                                 seed=seed, budget=plan.budget, out_dir=seed_dir, log=log,
                                 dataset=plan.dataset)
    result, _state = plan.spec.load()(plan.config, space=args.space, dataset=plan.dataset,
                                      key=seed, out_dir=seed_dir, quiet=args.quiet)
    return result


def _enable_cache() -> None:
    """The persistent XLA cache; an unusable cache folder is a warning, not an error."""
    from jnas import xla
    try:
        path = xla.enable_compilation_cache()
        if path is not None:
            probe = Path(path) / f".jnas-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
    except OSError as e:
        import jax
        jax.config.update("jax_compilation_cache_dir", None)
        print(f"jnas: warning: compilation cache off ({_one_line(e)}); point JNAS_CACHE_DIR "
              "or JNAS_XLA_CACHE_DIR at a writable folder, or set JNAS_XLA_CACHE_DIR=off",
              file=sys.stderr)


def _summary_line(name: str, seed: int, result: dict[str, Any], path: Path) -> str:
    from jnas.report import jsonable
    return (f"[{name} seed {seed}] best_arch={result.get('best_arch')} "
            f"bench={json.dumps(result.get('bench') or {}, default=jsonable)} "
            f"wall={float(result.get('wall_s') or 0):.1f}s -> {path}")


def cmd_search(args: argparse.Namespace) -> int:
    """Runs ``args.method`` for every seed; returns an exit code."""
    if not args.method and not args.help:
        raise UsageError("give a METHOD, e.g. `jnas search rea`; see `jnas methods`")
    if args.help:
        from jnas import registry
        print(args.help_text() + (f"\n{config_help(registry.get_method(args.method))}"
                                  if args.method else ""))
        return 0
    from jnas import compare, report
    plan = _plan(args)
    args.out = str(plan.out)
    primary = True  # several processes: process 0 alone reads and writes OUT and prints
    if plan.cluster is not None:
        from jnas import distributed
        distributed.initialize(plan.cluster)
        primary = distributed.is_primary()
        args.quiet = args.quiet or not primary
    name, seeds = plan.spec.name, plan.seeds
    settings: dict[str, Any] = {"method": name, "space": args.space, "dataset": plan.dataset,
                                "config": compare.jsonish(dataclasses.asdict(plan.config))}
    first = None  # the first seed's evaluator: what the runs query, checked now
    if plan.spec.kind == "sample":
        first = _make_evaluator(plan, args.space, seeds[0])
        settings["evaluator"] = compare.jsonish(first.describe())
        table = getattr(first, "bench", None)
        if table is not None and plan.budget > len(table):
            print(f"jnas: note: --budget {plan.budget} is more than the {len(table)} cells of "
                  f"the {Path(plan.benchmark).name} table; each run stops after {len(table)} "
                  "queries", file=sys.stderr, flush=True)
    def check() -> list[str]:  # every folder checked before anything is written
        return ["new" if args.force else
                compare.existing_run(plan.out / f"seed_{seed}", settings, plan.budget,
                                     compare.jsonish(dataclasses.asdict(
                                         plan.spec.default_config())))
                for seed in seeds]
    if plan.cluster is not None:
        check = functools.partial(distributed.on_primary, check)
    states = dict(zip(seeds, check()))
    _enable_cache()
    done = []
    pre = (_run_vmapped(plan, args, [s for s in seeds if states[s] != "finished"])
           if getattr(args, "vmap_seeds", False) else {})  # {seed: Result} run vmapped
    for i, seed in enumerate(seeds):
        seed_dir = plan.out / f"seed_{seed}"
        path = seed_dir / "result.json"
        if states[seed] == "finished":
            if not primary:
                continue
            saved = json.loads(path.read_text())
            print(_summary_line(name, seed, saved, path) + " (finished earlier; --force runs "
                  "it again)", flush=True)
            done.append(saved)
            continue
        old = plan.out / ".replaced" / seed_dir.name  # --force: the old run, until success
        if args.force and seed_dir.exists() and primary and seed not in pre:
            shutil.rmtree(old, ignore_errors=True)
            old.parent.mkdir(parents=True, exist_ok=True)
            seed_dir.rename(old)
        kept = ("queries so far (history.jsonl)" if plan.spec.kind == "sample" else
                "finished epochs (checkpoint)" if getattr(plan.config, "checkpoint", True)
                else "nothing (checkpoint=false)")
        args.saved_hint = (f"{len(done)} finished seed(s) and seed {seed}'s {kept} are saved "
                           f"under {plan.out}; re-running the same command resumes")
        if len(seeds) > 1 and not args.quiet and seed not in pre:
            print(f"== {name} seed {seed} ({i + 1}/{len(seeds)}) -> {seed_dir}", flush=True)
        evaluator = None
        if plan.spec.kind == "sample":  # a fresh one per seed (it counts queries and cost)
            evaluator = first if seed == seeds[0] else _make_evaluator(plan, args.space, seed)
        try:
            result = pre[seed] if seed in pre else _run_seed(plan, args, seed, seed_dir,
                                                             evaluator)
        except Exception:  # a failed forced run gives the old folder back (Ctrl-C keeps both)
            if old.exists() and primary:
                shutil.rmtree(seed_dir, ignore_errors=True)
                old.rename(seed_dir)
                _rmdir_if_empty(old.parent)
            raise
        if not primary:
            continue
        report.write_json(path, result)
        if old.exists():
            shutil.rmtree(old)
            _rmdir_if_empty(old.parent)
        record = result.to_json()
        done.append(record)
        print(_summary_line(name, seed, record, path), flush=True)
    if len(seeds) > 1 and primary:
        budgets = sorted({b for b in (10, 50, 100, 200, 500) if b < (plan.budget or 1)}
                         | {plan.budget or 1})
        group = compare.Group(str(plan.out), tuple(done), plan.spec.kind,
                              compare.setting_of(done[0]))
        print(compare.format_group(group, budgets), flush=True)
    return 0


# ----------------------------------------------------------------------------- other commands
def cmd_info(args: argparse.Namespace) -> int:
    """Prints an architecture's cells, params, FLOPs and benchmark accuracies."""
    from jnas import spaces
    from jnas.cost import arch_cost
    if args.space not in SPACES:
        raise ValueError(f"unknown space {args.space!r}; use one of {', '.join(SPACES)}")
    dataset = _dataset(args.dataset) if args.dataset is not None else None
    space = spaces.get_space(args.space)
    text, bench = args.arch, None
    n_cells = len(spaces.NB201_OPS) ** len(spaces.NB201_EDGES)
    if (args.space == "nb201" and text.strip().lstrip("-").isdigit()
            and not 0 <= int(text) < n_cells):  # said before the table is needed
        raise ValueError(f"NB201 index {int(text)} is out of range; use 0..{n_cells - 1}")
    if args.space == "nb201":
        from jnas import benchmarks
        try:
            bench = benchmarks.load_nb201()
        except (OSError, RuntimeError) as e:  # missing and not downloadable: cost only
            print(f"(no NB201 table: {_one_line(e)})", file=sys.stderr)
    if text.strip().lstrip("-").isdigit():
        if args.space != "nb201":
            raise ValueError(f"an index names an NB201 cell; give a {args.space} "
                             "architecture string instead")
        if bench is None:
            raise ValueError("an NB201 index needs the NB201 table; run `jnas download` or "
                             "give the architecture string")
        i = int(text)
        if not 0 <= i < len(bench):
            raise ValueError(f"NB201 index {i} is out of range; use 0..{len(bench) - 1}")
        text = bench.arch_at(i).to_string()
    arch = space.parse(text)
    print(f"space: {args.space}\narch: {arch.to_string()}")
    shape, classes = INPUT[dataset or "cifar10"]
    cost = arch_cost(args.space, arch, input_shape=shape, num_classes=classes)
    print(f"params: {cost['params_M']:.4f} M\nflops: {cost['flops_M']:.2f} M"
          + (f"  ({dataset or 'cifar10'} input, {classes} classes)"))
    if bench is not None:
        i = bench.index_of(arch)
        print(f"nb201 index: {i}")
        for ds in ([dataset] if dataset else DATASETS):
            print(f"test accuracy (200 epochs) {ds}: {bench.test_acc[ds][i]:.2f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Prints mean ± std at several budgets for each folder; writes a best-so-far plot."""
    from jnas import compare
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--budgets {args.budgets!r} is not a list of integers; e.g. "
                         "--budgets 50,100,200") from None
    print(compare.compare(args.dirs, budgets, plot=args.plot, mixed=args.mixed), flush=True)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetches benchmark files into the cache (verifying sha256)."""
    from jnas import download
    for name in args.names or list(download.FILES):
        print(f"{name}: {download.fetch(name)}", flush=True)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """Lists the methods: kind, spaces, what they query, one-line doc."""
    from jnas import registry
    for name, spec in registry.methods().items():
        where = (f"benchmarks: {', '.join(spec.benchmarks)}" if spec.kind == "sample" else
                 "data: cifar10 images; found cells scored on "
                 + (", ".join(spec.benchmarks) or "no table"))
        print(f"{name:11s} {spec.kind:8s} {spec.doc}\n{'':21s}spaces: "
              f"{', '.join(spec.spaces)}; {where}")
    return 0


_HANDLERS = {"search": cmd_search, "info": cmd_info, "compare": cmd_compare,
             "download": cmd_download, "methods": cmd_methods}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jnas`` console script; returns the exit code (2: bad input,
    130: interrupted)."""
    import zipfile
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)
        with delivered():  # Ctrl-C is not lost in a GC callback
            return _HANDLERS[args.command](args)
    except SystemExit as e:  # --help of the top-level parser
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    except KeyboardInterrupt:
        print(f"jnas: interrupted: {getattr(args, 'saved_hint', 'nothing was saved')}",
              file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError, KeyError, RuntimeError,
            zipfile.BadZipFile) as e:
        if os.environ.get("JNAS_TRACEBACK"):
            raise
        print(f"jnas: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
