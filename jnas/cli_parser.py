"""The ``jnas`` command's argument parser (the handlers are in :mod:`jnas.cli`)."""
from __future__ import annotations

import argparse

__all__ = ["build_parser", "UsageError", "SPACES", "DATASETS", "DATASET_ALIASES", "INPUT",
           "DEFAULT_BUDGET"]

SPACES = ("nb201", "darts", "nb101")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
DATASET_ALIASES = {"imagenet16-120": "ImageNet16-120", "imagenet16": "ImageNet16-120",
                    "imagenet": "ImageNet16-120", "cifar10": "cifar10", "cifar100": "cifar100"}
INPUT = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
          "ImageNet16-120": ((16, 16, 3), 120)}
DEFAULT_BUDGET = 100


class UsageError(ValueError):
    """A command line that argparse rejects (unknown option, missing or malformed value)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    """The ``jnas`` argument parser (its errors raise :class:`UsageError`)."""
    p = _Parser(prog="jnas", description="Neural architecture search in JAX.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", add_help=False,
                       help="run a search (one result.json per seed)",
                       description="Run METHOD once per seed. `jnas search METHOD --help` "
                                   "also lists the method's config keys.")
    s.add_argument("-h", "--help", action="store_true", help="show this help and METHOD's keys")
    s.add_argument("method", nargs="?", help="search method (see `jnas methods`)")
    s.add_argument("--space", default="nb201", help=f"search space: {', '.join(SPACES)}")
    s.add_argument("--dataset", default=None,
                   help=f"dataset: {', '.join(DATASETS)} (default cifar10)")
    s.add_argument("--benchmark", default=None,
                   help="sample-based methods: tabular benchmark 'nb201', 'nb101' or a CSV "
                        "file (default: the space's table)")
    s.add_argument("--metric", default=None, help="CSV benchmark: the column the search sees")
    s.add_argument("--report", default=None, help="CSV benchmark: the column reported")
    s.add_argument("--protocol", default=None, choices=("12epoch", "200epoch"),
                   help="NB201 signal: 12-epoch validation (default, as the NB201 paper) or "
                        "200-epoch numbers directly")
    s.add_argument("--evaluator", default=None, choices=("tabular", "weight-sharing"),
                   help="sample-based methods: table lookup (default), or weight-sharing "
                        "training on real images (BONAS)")
    s.add_argument("--budget", type=int, default=None,
                   help=f"queries (sample-based methods; default {DEFAULT_BUDGET})")
    s.add_argument("--epochs", type=int, default=None, help="search epochs (one-shot methods)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    g.add_argument("--seeds", default=None, help="several seeds, e.g. 0-9 or 0,2,5")
    s.add_argument("--vmap-seeds", action="store_true",
                   help="darts, darts2, gdas, snas: run the --seeds as one vmapped search "
                        "(one program; each seed's result equals its sequential run)")
    s.add_argument("--out", default=None, help="output folder (default runs/METHOD)")
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config field (repeatable; ws.KEY "
                                             "for the weight-sharing evaluator)")
    s.add_argument("--force", action="store_true",
                   help="replace OUT/seed_<S> by a fresh run, even a finished one (the old "
                        "one comes back if the new one fails)")
    s.add_argument("--quiet", action="store_true", help="print no progress (errors still print)")
    m = s.add_argument_group("several processes (one-shot methods; jnas.distributed)")
    m.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="process 0's address and a free port (or JAX_COORDINATOR_ADDRESS)")
    m.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="number of processes, one per host (or JAX_NUM_PROCESSES)")
    m.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="this process's id, 0..N-1; 0 writes the results (or JAX_PROCESS_ID)")
    m.add_argument("--coordinator-timeout", type=int, default=300, metavar="S",
                   help="seconds to wait for the coordinator and the other processes "
                        "(default 300)")
    s.set_defaults(help_text=s.format_help)

    i = sub.add_parser("info", help="print an architecture's cells, params, FLOPs, accuracies")
    i.add_argument("space", help=f"search space: {', '.join(SPACES)}")
    i.add_argument("arch", help="architecture string (NB201: |op~0|+|...|) or NB201 index")
    i.add_argument("--dataset", default=None,
                   help=f"{', '.join(DATASETS)}: cost for its input size and classes, and "
                        "only its accuracy (default: cifar10 cost, every dataset's accuracy)")

    c = sub.add_parser("compare", help="summarise and plot several result folders")
    c.add_argument("dirs", nargs="+", help="folders holding seed_*/result.json")
    c.add_argument("--budgets", default="50,100,200,500",
                   help="query budgets of the table (sample-based runs)")
    c.add_argument("--plot", default=None, help="write the best-so-far plot here (PNG)")
    c.add_argument("--mixed", action="store_true",
                   help="allow runs of different datasets/protocols (one panel each)")

    d = sub.add_parser("download", help="fetch benchmark files (pinned URL + sha256)")
    d.add_argument("names", nargs="*", help="file names (default: all)")

    sub.add_parser("methods", help="list the search methods, their spaces and benchmarks")
    return p
