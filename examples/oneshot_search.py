"""A tiny differentiable NAS-Bench-201 search, written with the public jnas API only.

First-order DARTS (Liu et al., ICLR 2019, arXiv 1806.09055) on a small ``NB201Supernet``:
the weights step on the train half, α on the validation half, ``jnas.relax`` mixes the ops
of every edge and ``jnas.discretise`` turns α into a cell. Mock images keep it to seconds on
a CPU.

    python examples/oneshot_search.py --steps 20 [--relax gumbel]
"""
import argparse

import jax
import optax

import jnas


def main(argv=None) -> jnas.NB201Arch:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--relax", default="softmax", choices=jnas.relax.RELAXATIONS)
    args = p.parse_args(argv)
    key = jax.random.key(0)
    images, labels = jnas.mock_cifar(8 * args.batch, key)      # or jnas.load_cifar10()
    (xt, yt), (xv, yv) = jax.tree.map(jax.numpy.asarray, jnas.search_split(images, labels, key))
    net = jnas.NB201Supernet(C=4, N=1, num_classes=10)
    alpha = 1e-3 * jax.random.normal(key, (6, 5))                 # edges x ops, bare array
    variables = jnas.init_fast(net, key, jnas.normalize(xt[:2]), jax.nn.softmax(alpha),
                               train=True)
    w_opt, a_opt = optax.sgd(0.05, momentum=0.9), optax.adam(3e-3)
    state = (variables["params"], variables["batch_stats"], alpha,
             w_opt.init(variables["params"]), a_opt.init(alpha))

    def loss(params, alpha, stats, x, y, k):
        weights = jnas.relax.relax(args.relax, alpha, k, tau=1.0)
        logits, new = net.apply({"params": params, "batch_stats": stats}, x, weights,
                                train=True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

    @jnas.xla.compiled(options="fastest")   # XLA-CPU: compile fast, run a bit slower
    def step(state, k):
        params, stats, alpha, w_st, a_st = state
        ki, kj, ka, kr = jax.random.split(k, 4)
        i = jax.random.randint(ki, (args.batch,), 0, len(yt))
        j = jax.random.randint(kj, (args.batch,), 0, len(yv))
        x = jnas.augment(ka, jnas.normalize(xt[i]))
        (_, new), g = jax.value_and_grad(loss, has_aux=True)(params, alpha, stats, x, yt[i], kr)
        upd, w_st = w_opt.update(g, w_st, params)
        params = optax.apply_updates(params, upd)
        ga = jax.grad(lambda a: loss(params, a, new["batch_stats"], jnas.normalize(xv[j]),
                                     yv[j], kr)[0])(alpha)      # first-order: w fixed
        upd, a_st = a_opt.update(ga, a_st, alpha)
        return params, new["batch_stats"], optax.apply_updates(alpha, upd), w_st, a_st

    for k in jax.random.split(jax.random.key(1), args.steps):
        state = step(state, k)
    arch = jnas.discretise("nb201", state[2])                   # argmax op per edge
    print("found:", arch.to_string(), jnas.arch_cost("nb201", arch))
    return arch


if __name__ == "__main__":
    main()
