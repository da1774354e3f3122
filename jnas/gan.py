"""GA-NAS: a generator fitted to the top architectures, trained by RL on a discriminator.

Rezaei et al., "Generative Adversarial Neural Architecture Search", IJCAI 2021
(arXiv 2105.09356). Loop: query ``n_init`` random cells; then repeat: take the ``top_k``
queried cells (the "winning set"); optionally fit the generator G to it by maximum
likelihood (``mle_steps``); train the pairwise discriminator D to tell winning cells from
G's samples (and, optionally, from queried non-winners); train G by policy gradient (PPO
with clipping + entropy bonus, or REINFORCE with a batch-mean baseline) with D's reward;
sample ``m`` new *unseen* cells from G and query them. The best queried cell is the answer.
Networks and the cell codecs live in :mod:`jnas.gan_models`, the jitted steps in
:mod:`jnas.gan_steps`; :meth:`GANASSearcher.diagnostics` logs G's entropy per round.

The paper's hyper-parameters are not public ([U] in METHODS.md); every choice made here is a
field of :class:`GANASConfig` with its meaning in the comment. A params budget
(``max_params``, M) is enforced exactly by masking the decoder on NB201 (op params are
additive over edges) or by rejecting samples (both spaces; ``constraint='reject'``).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jnas import cost
from jnas.config import check_choice, check_positive, check_range, config_to_dict
from jnas.gan_models import make_codec
from jnas.gan_steps import StepsConfig, get_steps
from jnas.rng import as_key, np_rng
from jnas.spaces import get_space

__all__ = ["GANASConfig", "GANASSearcher", "make_ganas", "ENTROPY_ESTIMATE"]

ENTROPY_ESTIMATE = ("Monte-Carlo: mean over g_batch cells sampled from G (contexts = random "
                    "winning cells) of the summed per-step entropies (nats) of G's policy; "
                    "unbiased for the entropy of G given a context (chain rule)")


@dataclasses.dataclass(frozen=True)
class GANASConfig:
    """GA-NAS hyper-parameters (Rezaei et al., IJCAI 2021, arXiv 2105.09356). The paper's
    values are not public ([U] in METHODS.md); each field is a choice of this implementation
    (measurements: RESULTS.md, GA-NAS).

    A round: G is first fitted by ``mle_steps`` maximum-likelihood Adam steps to the
    ``top_k`` best queried cells (the winning set); D is trained to tell the winning set from
    G's samples and, with ``d_loser_frac`` > 0, from queried non-winners; G is trained by
    policy gradient on D's reward (entropy bonus ``ent_coef``, optional likelihood term
    ``mle_coef`` and KL penalty ``kl_coef`` to the previous round's final G); ``cand_batch``
    cells are sampled from G (conditioned on the cells not yet issued when ``propose_unseen``
    and the space is enumerable: all NB201 cells or the rows of a table subspace; rejection
    + random fill otherwise) and the best ``m`` unseen ones by D's reward are queried.
    ``max_params`` is enforced exactly by masking the decoder on NB201 (op params add up over
    edges) or by rejection (``constraint='reject'``, and always on NB101).

    The generator across rounds (G's entropy per round: :meth:`GANASSearcher.diagnostics`;
    uniform over NB201 = 9.66 nats; CIFAR-10, 12-epoch signal, 500 queries):

    - ``g_reset=True, mle_steps=20``: a fresh G each round, fitted to the current winning set
      and then trained by PPO on D's reward; from round 7 on its entropy is 3.1–3.5 nats (37 %
      distinct samples).
    - ``g_reset=True, mle_steps=0``: a fresh G each round with only ``g_iters`` PPO
      iterations; G stays near uniform (7–9 nats) and the search is D-ranked sampling of
      near-uniform cells. This is an ablation, not the paper's method.
    - ``g_reset=False``: G continued across rounds; it concentrates to about 1.6–2.2 nats
      (13–20 % distinct samples) with or without ``mle_steps``, ``kl_coef=0.5`` or
      ``ent_coef=0.1``.

    The default is the first mode (``g_reset=True, mle_steps=20``). On NB201 CIFAR-10 with
    the 12-epoch signal, seeds 0–19, its best signal minus REA's, paired by seed, is +0.08 ±
    0.20 / +0.33 ± 0.06 / +0.10 ± 0.03 at 100 / 200 / 500 queries (RESULTS.md, GA-NAS).
    """
    n_init: int = 20              # random cells queried first (N0)
    m: int = 10                   # new unseen cells queried per round
    top_k: int = 10               # size of the winning set (best queried cells)
    hidden: int = 32              # width of the bidirectional GCN encoders (G and D)
    gnn_layers: int = 2           # depth of the GCN encoders
    gru: int = 64                 # hidden size of the generator's GRU decoder
    d_steps: int = 30             # discriminator updates per round (0 = none)
    d_batch: int = 64             # pairs per discriminator update
    d_lr: float = 1e-3            # discriminator Adam learning rate
    d_loser_frac: float = 0.5     # share of D's negatives that are queried non-winners, [0, 1]
    pg: str = "ppo"               # policy gradient: 'ppo' (clipped) or 'reinforce' (mean baseline)
    g_iters: int = 5              # policy-gradient iterations per round (g_batch cells each)
    g_batch: int = 64             # cells sampled per policy-gradient iteration
    ppo_epochs: int = 4           # PPO epochs over each batch
    clip_eps: float = 0.2         # PPO clip range
    ent_coef: float = 0.01        # entropy bonus of the generator loss
    g_lr: float = 2e-3            # generator Adam learning rate
    mle_coef: float = 0.0         # weight of a max-likelihood term on the winners in each PG loss
    mle_steps: int = 20           # max-likelihood Adam steps fitting G to the winners per round
    kl_coef: float = 0.0          # weight of KL(G || previous round's final G) in each PG loss
    g_reset: bool = True          # re-initialise G (weights, Adam state) at every round's start
    cand_batch: int = 256         # cells sampled per proposal batch
    select: str = "reward"        # rank unseen candidates by D's reward ('reward') or not ('first')
    context: str = "winner"       # encoder input: 'winner' (random winning cell), 'best', 'empty'
    temperature: float = 1.0      # sampling temperature of proposals
    max_resample: int = 4         # extra proposal batches before random unseen cells fill a round
    propose_unseen: bool = True   # sample conditioned on the cells not yet issued (finite spaces)
    max_params: float | None = None  # params budget in M (None = unconstrained)
    constraint: str = "mask"      # budget: 'mask' (NB201 decoder masking + rejection) or 'reject'
    num_classes: int = 10         # classifier size used by the params counter (10 = CIFAR-10)
    fast_compile: bool = True     # XLA backend optimisation level 0 (3x faster CPU compiles)

    def __post_init__(self) -> None:
        check_choice(self, "pg", ("ppo", "reinforce"))
        check_choice(self, "select", ("reward", "first"))
        check_choice(self, "context", ("winner", "best", "empty"))
        check_choice(self, "constraint", ("mask", "reject"))
        check_positive(self, "n_init", "m", "top_k", "d_batch", "g_batch", "cand_batch",
                       "g_iters", "ppo_epochs", "hidden", "gru", "gnn_layers", "max_params")
        check_positive(self, "d_steps", "mle_steps", "kl_coef", "mle_coef", "ent_coef",
                       allow_zero=True)
        check_range(self, "d_loser_frac", 0.0, 1.0)

    def steps(self) -> StepsConfig:
        """The fields the compiled steps read (:class:`jnas.gan_steps.StepsConfig`)."""
        return StepsConfig(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(StepsConfig)})


# ---------------------------------------------------------------------------------------
# Searcher (ask/tell)
# ---------------------------------------------------------------------------------------
class GANASSearcher:
    """GA-NAS as an ask/tell searcher (Rezaei et al., IJCAI 2021; see module docstring).

    Args:
      space: ``'nb201'``/``'nb101'`` or the space object from :mod:`jnas.spaces`.
      key: a JAX key or int seed; the whole search is a function of it.
      config: a :class:`GANASConfig` (defaults when None).

    ``ask(n)`` returns ``n`` cells never returned before (isomorphism-aware on NB101) that
    satisfy the params budget; ``tell(archs, scores)`` records their scores (higher = better).
    Per-round diagnostics are in ``self.rounds`` (valid/unique/new fractions, generator
    entropy, D/G losses, seconds); ``self.compile_s`` is the one-off jit compile time.
    """

    def __init__(self, space: Any, key: Any, config: GANASConfig | None = None) -> None:
        self.config = config or GANASConfig()
        self.space = get_space(space)
        name = getattr(self.space, "name", str(space))
        if name not in ("nb201", "nb101"):
            raise ValueError(f"GA-NAS supports spaces 'nb201' and 'nb101', got {name!r}")
        self.space_name = name
        self.codec = make_codec(name, self.config.num_classes)
        self.key = as_key(key)
        self.steps = get_steps(self.codec, self.config)
        self.compile_s = 0.0
        self._g, self._d = self._call("init", jax.random.fold_in(self.key, 0))
        self._budget = jnp.float32(np.inf)
        cfg = self.config
        if cfg.max_params is not None:
            floor = self.codec.base_cost if name == "nb201" else 0.0
            if cfg.max_params < floor:
                raise ValueError(f"max_params={cfg.max_params} M is below the params of the "
                                 f"network outside the cells ({floor:.4f} M): no cell fits; "
                                 "raise max_params")
            if cfg.constraint == "mask" and name == "nb201":
                self._budget = jnp.float32(cfg.max_params - self.codec.base_cost)
        self._issued: set[str] = set()
        self._pool_seqs, self._pool_row, self._pool_ok = self._candidate_pool()
        self._queue: list[tuple[Any, np.ndarray]] = []
        self._tokens: dict[str, np.ndarray] = {}
        self._told: list[tuple[str, Any, float]] = []
        self._round = 0
        self._initialised = False
        self.rounds: list[dict[str, float]] = []

    @property
    def generator_params(self) -> Any:
        """The generator's current parameters (for sampling with ``self.steps``)."""
        return self._g[0]

    # ---- helpers ------------------------------------------------------------------------
    def _key_of(self, arch: Any) -> str:
        if self.space_name == "nb101":
            return arch.spec_hash()
        return arch.to_string()

    def params_M(self, arch: Any) -> float:
        """Params (M) of an arch, for the ``max_params`` constraint."""
        return float(cost.arch_cost(self.space_name, arch,
                                    num_classes=self.config.num_classes)["params_M"])

    def _candidate_pool(self) -> tuple[Any, dict[str, int] | None, np.ndarray | None]:
        """The enumerable candidate set, if any: ``(seqs, row_of_key, within_budget)``.

        NB201 (or a table subspace, e.g. the offline NB101 subset, via ``space.enumerate``)
        gives a finite set; then G's proposals can be conditioned on its unseen rows
        (``propose_unseen``) and generated cells outside it are discarded. The full NB101
        space is not enumerable: ``(None, None, None)``.
        """
        try:
            archs = list(self.space.enumerate())
        except (AttributeError, ValueError, NotImplementedError):
            return None, None, None
        if not archs:
            raise ValueError("GA-NAS: the search space (table) has no cells")
        seqs = np.stack([self.codec.encode(a) for a in archs]).astype(np.int32)
        row_of = {self._key_of(a): i for i, a in enumerate(archs)}
        mp = self.config.max_params
        if mp is None:
            ok = np.ones(len(archs), bool)
        elif self.space_name == "nb201":
            cost = self.codec.cost[np.arange(self.codec.T)[None, :], seqs].sum(-1)
            ok = self.codec.base_cost + cost <= mp + 1e-9
        else:
            ok = np.array([self._ok(a) for a in archs])
        return jnp.asarray(seqs), row_of, ok

    def _available(self) -> np.ndarray:
        """f32[M]: 1 for candidate-set rows within the budget and never issued."""
        avail = self._pool_ok.astype(np.float32)
        rows = [self._pool_row[k] for k in self._issued if k in self._pool_row]
        avail[rows] = 0.0
        return avail

    def _ok(self, arch: Any) -> bool:
        mp = self.config.max_params
        return mp is None or self.params_M(arch) <= mp + 1e-9

    def _valid(self, arch: Any) -> bool:
        try:
            self.space.validate(arch)
            return True
        except (ValueError, AssertionError):
            return False

    def _next_key(self, tag: int) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(self.key, 1 + self._round), tag)

    def _random_unseen(self, n: int, tag: int) -> list[tuple[Any, np.ndarray]]:
        out: list[tuple[Any, np.ndarray]] = []
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 1000:
                raise RuntimeError("GA-NAS: could not find enough unseen random cells within the "
                                   "params budget; relax max_params or lower the budget")
            for arch in self.space.sample(jax.random.fold_in(self._next_key(tag), tries),
                                          max(2 * n, 8)):
                k = self._key_of(arch)
                if k in self._issued or not self._ok(arch):
                    continue
                self._issued.add(k)
                out.append((arch, self.codec.encode(arch)))
                if len(out) == n:
                    break
        return out

    def _call(self, name: str, *args: Any) -> Any:
        """Calls a jitted step (compiled once per process and shared by searchers with the
        same config), adding any compile time to ``compile_s``."""
        fn = getattr(self.steps, name)
        c0 = fn.compile_s
        out = fn(*args)
        self.compile_s += fn.compile_s - c0
        return out

    def _winners_losers(self) -> tuple[jax.Array, jax.Array, float]:
        order = sorted(range(len(self._told)), key=lambda i: -self._told[i][2])
        k = self.config.top_k
        win_idx = order[:k]
        win = [self._tokens[self._told[i][0]] for i in win_idx]
        win = [win[i % len(win)] for i in range(k)]  # pad by repetition while < k told
        lose_idx = order[k:]
        rng = np_rng(self._next_key(7))
        n_l = self.config.d_batch
        if lose_idx:
            pick = rng.choice(np.asarray(lose_idx), n_l, replace=True)
            lose = [self._tokens[self._told[i][0]] for i in pick]
            w = 1.0
        else:
            lose, w = [win[i % k] for i in range(n_l)], 0.0
        return jnp.asarray(np.stack(win)), jnp.asarray(np.stack(lose)), w

    # ---- one GA-NAS round ---------------------------------------------------------------
    def _run_round(self, n: int) -> list[tuple[Any, np.ndarray]]:
        cfg = self.config
        t0 = time.perf_counter()
        c0 = self.compile_s
        winners, losers, lw = self._winners_losers()
        g_prev = self._g[0]  # the previous round's final G (for the KL term)
        if cfg.g_reset and self._round > 0:  # a fresh G for this round (D continues)
            self._g = self._call("init", self._next_key(11))[0]
        self._g, self._d, met = self._call("round", self._g, self._d, g_prev, winners, losers,
                                           jnp.float32(lw), self._next_key(1),
                                           self._budget)
        end = np.asarray(met["end_tokens"])
        g_unique = len({tuple(r) for r in end.tolist()}) / max(len(end), 1)
        out: list[tuple[Any, np.ndarray, float]] = []
        n_cand = n_valid = n_over = 0
        uniq: set[str] = set()
        ents = []
        conditioned = cfg.propose_unseen and self._pool_seqs is not None
        for attempt in range(1 + cfg.max_resample):
            key = self._next_key(100 + attempt)
            if conditioned:
                avail = self._available()
                if not avail.any():
                    break
                toks, rew, _, ent = self._call("propose_in", self._g[0], self._d[0], winners,
                                               key, self._budget, self._pool_seqs,
                                               jnp.asarray(avail))
            else:
                toks, rew, _, ent = self._call("propose", self._g[0], self._d[0], winners,
                                               key, self._budget)
            toks, rew = np.asarray(toks), np.asarray(rew)
            ents.append(float(np.mean(ent)))
            fresh = []
            for t_row, r in zip(toks, rew):
                arch = self.codec.decode(t_row)
                n_cand += 1
                if not self._valid(arch):
                    continue
                k = self._key_of(arch)
                if self._pool_row is not None and k not in self._pool_row:
                    continue  # outside the table the search runs on
                n_valid += 1
                uniq.add(k)
                if not self._ok(arch):
                    n_over += 1
                    continue
                if k in self._issued:
                    continue
                self._issued.add(k)
                fresh.append((float(r), len(out) + len(fresh), arch, t_row))
            if cfg.select == "reward":
                fresh.sort(key=lambda x: (-x[0], x[1]))
            need = n - len(out)
            for r, _, arch, t_row in fresh[:need]:
                out.append((arch, t_row, r))
            for _, _, arch, _ in fresh[need:]:  # not used: free them for later rounds
                self._issued.discard(self._key_of(arch))
            if len(out) >= n:
                break
        n_fill = n - len(out)
        filled = self._random_unseen(n_fill, 3) if n_fill > 0 else []
        self._round += 1
        self.rounds.append({
            "round": self._round, "n_told": len(self._told),
            "d_loss": float(met["d_loss"]), "reward": float(met["reward"]),
            "g_entropy": float(met["g_entropy"]), "conditioned": bool(conditioned),
            "g_entropy_end": float(met["entropy_end"]), "g_unique_frac": g_unique,
            "mle_nll": float(met["mle_nll"]),
            "g_loss_first": float(met["g_loss_first"]), "g_loss_last": float(met["g_loss_last"]),
            "entropy": ents[0] if ents else float("nan"), "valid_frac": n_valid / max(n_cand, 1),
            "unique_frac": len(uniq) / max(n_valid, 1),
            "over_budget_frac": n_over / max(n_valid, 1),
            "random_fill": n_fill, "proposal_batches": len(ents),
            "time_s": time.perf_counter() - t0 - (self.compile_s - c0)})
        return [(a, t) for a, t, _ in out] + filled

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        """``n`` new unseen cells (random for the first ``n_init``, then from G)."""
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        out = []
        while len(out) < n:
            if not self._queue:
                if not self._initialised:
                    self._initialised = True
                    self._queue = self._random_unseen(self.config.n_init, 2)
                elif not self._told:
                    self._queue = self._random_unseen(n - len(out), 4)
                else:
                    self._queue = self._run_round(max(self.config.m, n - len(out)))
            arch, toks = self._queue.pop(0)
            self._tokens[self._key_of(arch)] = np.asarray(toks, np.int32)
            out.append(arch)
        return out

    def tell(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        """Records the scores (higher is better) of cells returned by :meth:`ask`."""
        if len(archs) != len(scores):
            raise ValueError(f"tell got {len(archs)} archs but {len(scores)} scores")
        for arch, s in zip(archs, scores):
            k = self._key_of(arch)
            if k not in self._tokens:
                self._tokens[k] = self.codec.encode(arch)
                self._issued.add(k)
            s = float(s)
            if not np.isfinite(s):
                s = -np.inf
            self._told.append((k, arch, s))

    def diagnostics(self) -> dict[str, Any]:
        """The per-round generator log, JSON-ready (``run_search`` records it as the
        result's ``diagnostics`` when the search loop supports it).

        Returns ``{"entropy_estimate", "uniform_entropy", "rounds"}``: a sentence saying how
        the entropies are estimated; ``log`` of the number of candidate cells (the entropy
        of a uniform G over them; None when the space is not enumerable); per round
        ``round``, ``n_told`` (cells told before it), ``g_entropy_end`` (nats, a Monte-Carlo
        estimate: the mean over ``g_batch`` cells sampled from the round's final G of the
        summed per-step entropies of its policy, unbiased for G's entropy given a context),
        ``g_unique_frac`` (distinct cells among those samples), ``g_entropy`` (the same
        estimate on the last policy-gradient batch, before its update), ``proposal_entropy``
        (the same for the first proposal batch, whose policy masks issued cells when
        ``propose_unseen``), ``unique_frac`` / ``valid_frac`` of the proposals, ``mle_nll``
        (per decision after the refit, None without one), ``d_loss``, ``reward``,
        ``random_fill`` and ``time_s``.
        """
        keys = ("round", "n_told", "g_entropy_end", "g_unique_frac", "g_entropy", "entropy",
                "unique_frac", "valid_frac", "mle_nll", "d_loss", "reward", "random_fill",
                "time_s")
        rename = {"entropy": "proposal_entropy"}

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not np.isfinite(v) else v

        n_cand = int(self._pool_ok.sum()) if self._pool_ok is not None else 0
        return {"entropy_estimate": ENTROPY_ESTIMATE,
                "uniform_entropy": float(np.log(n_cand)) if n_cand else None,
                "rounds": [{rename.get(k, k): clean(r.get(k)) for k in keys}
                           for r in self.rounds]}

    def config_dict(self) -> dict[str, Any]:
        """The config as a dict."""
        return config_to_dict(self.config)


def make_ganas(space: Any, key: Any, config: GANASConfig | None = None) -> GANASSearcher:
    """Method factory (``jnas.registry``): ``GANASSearcher(space, key, config)``."""
    return GANASSearcher(space, key, config)
