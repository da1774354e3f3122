"""Your own objective: a plain function ``archs -> scores`` drives any jnas searcher.

Here the objective is a proxy that needs no training: prefer cells with many convolutions
but penalise FLOPs above a budget (``jnas.arch_cost``). Return floats (the signal), or
``jnas.Query(signal, reported, cost_s)`` to also report another number and a cost. Swap in a
real training run, a zero-cost proxy or a lookup in your own table.

    python examples/custom_evaluator.py --budget 100 --max-flops 100
"""
import argparse

import jax

import jnas


def main(argv=None) -> jnas.Result:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--max-flops", type=float, default=100.0, help="MFLOPs budget")
    args = p.parse_args(argv)

    def objective(archs):                   # higher is better
        scores = []
        for arch in archs:
            flops = jnas.arch_cost(jnas.NB201, arch)["flops_M"]
            convs = sum(op.startswith("nor_conv") for op in arch.ops)
            scores.append(convs - max(0.0, flops - args.max_flops) / 10.0)
        return scores                       # or [jnas.Query(signal, reported, cost_s), ...]

    results = {}
    for name, searcher in {"rs": jnas.RandomSearch("nb201", jax.random.key(0)),
                           "rea": jnas.RegularizedEvolution("nb201", jax.random.key(0))}.items():
        results[name] = jnas.run_search(searcher, objective, budget=args.budget, method=name)
        r = results[name]
        flops = jnas.arch_cost("nb201", r.best_arch)["flops_M"]
        print(f"{name:4s} best {r.best_arch}  ({flops:.1f} MFLOPs, "
              f"signal {r.extra['best_signal']:.2f})")
    return results["rea"]


if __name__ == "__main__":
    main()
