"""The ``jnas`` command: search, info, compare, download, methods.

``jnas search METHOD --space SPACE [--dataset D] [--benchmark NAME|FILE] [--budget N]
[--epochs E] [--seed S | --seeds 0-9] [--out DIR] [--set key=value ...]`` runs one search per
seed and writes ``DIR/seed_<S>/result.json`` (the result record of DESIGN.md). Sample-based
methods (rs, rea, bonas, ganas, renas) query a tabular benchmark (or, for BONAS, the
weight-sharing evaluator on real images); one-shot methods (darts, darts2, snas, gdas,
less-local) train a supernet on images.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from jnas.search import _jsonable as _json_default

SPACES = ("nb201", "darts", "nb101")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
_DATASET_ALIASES = {"imagenet16-120": "ImageNet16-120", "imagenet16": "ImageNet16-120",
                    "imagenet": "ImageNet16-120", "cifar10": "cifar10", "cifar100": "cifar100"}


def parse_seeds(seed: int | None, seeds: str | None) -> list[int]:
    """Seeds from ``--seed S`` or ``--seeds 0-9`` / ``--seeds 0,3,5``."""
    if seeds is None:
        return [0 if seed is None else int(seed)]
    out: list[int] = []
    for part in seeds.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            try:
                a, b = int(lo), int(hi)
            except ValueError as e:
                raise ValueError(f"--seeds: {part!r} is not a range like 0-9") from e
            if b < a:
                raise ValueError(f"--seeds: empty range {part!r}")
            out.extend(range(a, b + 1))
        else:
            try:
                out.append(int(part))
            except ValueError as e:
                raise ValueError(f"--seeds: {part!r} is not an integer") from e
    if not out:
        raise ValueError("--seeds: no seed given")
    return out


def _dataset(name: str) -> str:
    key = name.lower()
    if key not in _DATASET_ALIASES:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return _DATASET_ALIASES[key]


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jnas", description="Neural architecture search in JAX.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a search (one result.json per seed)")
    s.add_argument("method", help="search method (see `jnas methods`)")
    s.add_argument("--space", default="nb201", help=f"search space: {', '.join(SPACES)}")
    s.add_argument("--dataset", default="cifar10", help=f"dataset: {', '.join(DATASETS)}")
    s.add_argument("--benchmark", default=None,
                   help="tabular benchmark: 'nb201', 'nb101' or a CSV file (default: the "
                        "space's table)")
    s.add_argument("--metric", default=None, help="CSV benchmark: the column the search sees")
    s.add_argument("--report", default=None, help="CSV benchmark: the column reported")
    s.add_argument("--protocol", default="12epoch", choices=("12epoch", "200epoch"),
                   help="NB201 signal: 12-epoch validation (default, as the NB201 paper) or "
                        "200-epoch numbers directly")
    s.add_argument("--evaluator", default="tabular", choices=("tabular", "weight-sharing"),
                   help="sample-based methods: table lookup, or weight-sharing training on "
                        "real images (BONAS)")
    s.add_argument("--budget", type=int, default=None, help="queries (sample-based methods)")
    s.add_argument("--epochs", type=int, default=None, help="search epochs (one-shot methods)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--seeds", default=None, help="e.g. 0-9 or 0,2,5")
    s.add_argument("--out", default="runs", help="output folder")
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config field (repeatable)")

    i = sub.add_parser("info", help="print an architecture's cells, params, FLOPs, accuracies")
    i.add_argument("space", help=f"search space: {', '.join(SPACES)}")
    i.add_argument("arch", help="architecture string (NB201: |op~0|+|...|) or NB201 index")
    i.add_argument("--dataset", default="cifar10")

    c = sub.add_parser("compare", help="summarise and plot several result folders")
    c.add_argument("dirs", nargs="+", help="folders holding seed_*/result.json")
    c.add_argument("--budgets", default="50,100,200,500")
    c.add_argument("--plot", default=None, help="write the best-so-far plot here (PNG)")

    d = sub.add_parser("download", help="fetch benchmark files (pinned URL + sha256)")
    d.add_argument("names", nargs="*", help="file names (default: all)")

    sub.add_parser("methods", help="list the search methods")
    return p


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)


def _make_config(spec: Any, args: argparse.Namespace) -> Any:
    from jnas.config import apply_overrides
    config = spec.config_cls()
    names = {f for f in getattr(config, "__dataclass_fields__", {})}
    implicit: dict[str, Any] = {}
    if args.epochs is not None:
        if "epochs" not in names:
            raise ValueError(f"method {spec.name!r} has no 'epochs' setting")
        implicit["epochs"] = args.epochs
    config = apply_overrides(config, implicit)
    return apply_overrides(config, args.overrides)


def _make_evaluator(args: argparse.Namespace, space: Any, dataset: str, seed: int,
                    ws_overrides: list[str]) -> Any:
    from jnas import benchmarks
    if args.evaluator == "weight-sharing":
        if args.space != "nb201":
            raise ValueError("--evaluator weight-sharing supports --space nb201 only")
        from jnas import weight_sharing
        return weight_sharing.make_evaluator("weight-sharing", dataset=dataset, seed=seed,
                                             protocol=args.protocol, overrides=ws_overrides)
    bench_name = args.benchmark or args.space
    if bench_name.endswith(".csv"):
        if args.metric is None:
            raise ValueError("--benchmark FILE.csv needs --metric COLUMN (and optionally "
                             "--report COLUMN)")
        bench = benchmarks.load_table(bench_name, space=space, metric=args.metric,
                                      report=args.report)
        return benchmarks.TableEvaluator(bench)
    return benchmarks.make_evaluator(bench_name, dataset=dataset, protocol=args.protocol)


def cmd_search(args: argparse.Namespace) -> int:
    """Runs ``args.method`` for every seed; returns an exit code."""
    from jnas import registry
    from jnas.rng import as_key
    spec = registry.get_method(args.method)
    if args.space not in SPACES:
        raise ValueError(f"unknown space {args.space!r}; valid spaces: {', '.join(SPACES)}")
    if args.space not in spec.spaces:
        raise ValueError(f"method {spec.name!r} supports spaces {', '.join(spec.spaces)}, "
                         f"not {args.space!r}")
    dataset = _dataset(args.dataset)
    seeds = parse_seeds(args.seed, args.seeds)
    # ``--set ws.KEY=VALUE`` configures the weight-sharing evaluator, the rest the method.
    ws_overrides = [o[3:] for o in args.overrides if o.startswith("ws.")]
    args.overrides = [o for o in args.overrides if not o.startswith("ws.")]
    config = _make_config(spec, args)
    out = Path(args.out)
    for seed in seeds:
        seed_dir = out / f"seed_{seed}"
        key = as_key(seed)
        t0 = time.time()
        if spec.kind == "oneshot":
            result = spec.factory(config, space=args.space, dataset=dataset, key=key,
                                  out_dir=seed_dir)
        else:
            from jnas import benchmarks, search, spaces
            space = spaces.get_space(args.space)
            budget = args.budget if args.budget is not None else 100
            evaluator = _make_evaluator(args, space, dataset, seed, ws_overrides)
            if isinstance(evaluator, benchmarks.TableEvaluator):
                # A table that covers part of the space (the NB101 subset, a user CSV):
                # searchers only propose cells the table can answer.
                from jnas.benchmarks_nb101 import TableSpace
                space = TableSpace(evaluator.bench, space)
            searcher = spec.factory(space, key, config)
            res = search.run_search(searcher, evaluator, budget=budget, out_dir=seed_dir,
                                    method=spec.name, seed=seed, config=config,
                                    log=lambda m: print(m, flush=True),
                                    log_every=max(1, budget // 10))
            result = res.to_json() if hasattr(res, "to_json") else dict(res)
        result.update({"method": spec.name, "space": args.space, "dataset": dataset,
                       "seed": seed})
        result.setdefault("wall_s", time.time() - t0)
        result.setdefault("config", _config_dict(config))
        _write_json(seed_dir / "result.json", result)
        best = result.get("bench") or {}
        print(f"[{spec.name} seed {seed}] best_arch={result.get('best_arch')} "
              f"bench={json.dumps(best, default=_json_default)} "
              f"wall={result['wall_s']:.1f}s -> {seed_dir / 'result.json'}", flush=True)
    if len(seeds) > 1:
        from jnas import report
        results = report.load_results([out])
        budgets = sorted({b for b in (10, 50, 100, 200, 500) if b < (args.budget or 100)}
                         | {args.budget or 100})
        if spec.kind == "sample":
            print(report.format_summary(report.summarise(results, budgets)), flush=True)
    return 0


def _config_dict(config: Any) -> dict[str, Any]:
    import dataclasses
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def cmd_info(args: argparse.Namespace) -> int:
    """Prints an architecture's cells, params, FLOPs and benchmark accuracies."""
    from jnas import spaces
    space = spaces.get_space(args.space)
    text = args.arch
    bench = None
    if args.space == "nb201":
        from jnas import benchmarks
        try:
            bench = benchmarks.load_nb201()
        except FileNotFoundError as e:
            print(f"(no NB201 table: {e})", file=sys.stderr)
        if text.isdigit():
            if bench is None:
                raise ValueError("an NB201 index needs the NB201 table (jnas download)")
            text = bench.arch_at(int(text)).to_string()
    arch = space.parse(text)
    print(f"space: {args.space}\narch: {arch.to_string()}")
    try:
        from jnas.cells import arch_cost
        cost = arch_cost(args.space, arch, num_classes=10)
        print(f"params: {cost['params_M']:.4f} M\nflops: {cost['flops_M']:.2f} M")
    except (ImportError, NotImplementedError) as e:
        print(f"(cost not available: {e})")
    if bench is not None:
        i = bench.index_of(arch)
        print(f"nb201 index: {i}")
        for ds in DATASETS:
            print(f"test accuracy (200 epochs) {ds}: {bench.test_acc[ds][i]:.2f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Prints mean ± std at several budgets for each folder; writes a best-so-far plot."""
    from jnas import report
    budgets = [int(b) for b in args.budgets.split(",")]
    groups = {str(d): report.load_results([Path(d)]) for d in args.dirs}
    for name, results in groups.items():
        print(f"== {name} ({len(results)} runs)")
        print(report.format_summary(report.summarise(results, budgets)))
    if args.plot:
        report.plot_best_so_far(groups, args.plot)
        print(f"plot -> {args.plot}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetches benchmark files into the cache (verifying sha256)."""
    from jnas import download
    names = args.names or list(download.FILES)
    for name in names:
        print(f"{name}: {download.fetch(name)}", flush=True)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """Lists registered methods with their kind and spaces."""
    from jnas import registry
    for name, spec in registry.methods().items():
        print(f"{name:12s} {spec.kind:8s} spaces={','.join(spec.spaces):16s} {spec.doc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jnas`` console script."""
    args = _build_parser().parse_args(argv)
    if args.command == "search":
        from jnas.train import enable_compilation_cache
        enable_compilation_cache()
    handlers = {"search": cmd_search, "info": cmd_info, "compare": cmd_compare,
                "download": cmd_download, "methods": cmd_methods}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, KeyError, OSError, RuntimeError) as e:
        print(f"jnas: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
