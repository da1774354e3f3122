"""Sample-based NAS on the NAS-Bench-201 table: RS, REA and BONAS through one ask/tell loop.

Every searcher has ``ask(n) -> archs`` and ``tell(archs, signals)``; the evaluator answers
with the 12-epoch validation accuracy (the search signal of the NB201 paper, Dong & Yang,
ICLR 2020) and reports the 200-epoch test accuracy. The loop is written out once by hand,
then ``jnas.run_search`` runs the same thing with a history, a trajectory and a ``Result``.
REA: Real et al., AAAI 2019; BONAS: Shi et al., NeurIPS 2020.

    python examples/sample_search.py --budget 100
"""
import argparse

import jax

import jnas


def main(argv=None) -> dict[str, jnas.Result]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--dataset", default="cifar10",
                   choices=("cifar10", "cifar100", "ImageNet16-120"))
    args = p.parse_args(argv)
    key = jax.random.key(0)

    # By hand: ask for a cell, look it up, tell the signal back.
    evaluator = jnas.make_evaluator("nb201", dataset=args.dataset, protocol="12epoch")
    rea = jnas.RegularizedEvolution("nb201", key, jnas.REAConfig(population=10, sample=3))
    best = None
    for _ in range(args.budget):
        (arch,) = rea.ask(1)
        (signal,) = evaluator.evaluate([arch])
        rea.tell([arch], [signal])
        if best is None or signal > best[0]:
            best = (signal, arch)
    print(f"by hand  rea    best signal {best[0]:.2f}  test "
          f"{evaluator.reported_score(best[1]):.2f}  {best[1].to_string()}")

    # The same loop by the library (its REA proposes the same cells), for three searchers.
    bonas = jnas.BONASConfig(n_init=10, k=5, gcn_epochs=20, n_candidates=500)
    searchers = {"rs": jnas.RandomSearch(jnas.NB201, key),
                 "rea": jnas.RegularizedEvolution(jnas.NB201, key),
                 "bonas": jnas.BONASSearcher(jnas.NB201, key, bonas)}
    results = {}
    for name, searcher in searchers.items():
        ev = jnas.make_evaluator("nb201", dataset=args.dataset, space=jnas.NB201)
        results[name] = jnas.run_search(searcher, ev, budget=args.budget, method=name, seed=0)
        r = results[name]
        print(f"run_search {name:6s} test {r.bench['test_accuracy']:.2f} after "
              f"{args.budget} queries ({r.extra['simulated_cost_s'] / 3600:.1f} simulated "
              f"GPU hours)  {r.best_arch}")
    return results


if __name__ == "__main__":
    main()
