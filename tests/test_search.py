"""The search loop: budget, duplicates, trajectory, determinism, resume; RS, REA; reports."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jnas import registry, report, search
from jnas.spaces import NB201Arch, get_space

SPACE = get_space("nb201")


class ConvCount:
    """A synthetic evaluator: signal = number of nor_conv_3x3 edges + a tiny per-arch jitter;
    reported = 10 * signal. Counts queries like the tabular evaluators."""
    space = "nb201"
    dataset = "synthetic"

    def __init__(self):
        self.num_queries = 0
        self.simulated_cost_s = 0.0
        self.calls: list[str] = []

    def _s(self, a):
        return a.ops.count("nor_conv_3x3") + 1e-3 * (a.to_index() % 97) / 97

    def evaluate(self, archs):
        self.num_queries += len(archs)
        self.simulated_cost_s += 2.0 * len(archs)
        self.calls += [a.to_string() for a in archs]
        return [self._s(a) for a in archs]

    def reported_score(self, a):
        return 10 * self._s(a)

    def report(self, a):
        return {"test_accuracy": self.reported_score(a)}


class Repeater:
    """Proposes the same three cells forever."""
    name = "repeat"

    def __init__(self):
        self.archs = SPACE.sample(0, 3)
        self.told = 0

    def ask(self, n):
        return [self.archs[i % 3] for i in range(n)]

    def tell(self, archs, scores):
        self.told += len(archs)


def test_registered():
    for name in ("rs", "rea"):
        spec = registry.get_method(name)
        assert spec.kind == "sample" and "nb201" in spec.spaces
    assert registry.get_method("rea").config_cls().population == 10
    assert registry.get_method("rea").config_cls().sample == 3


def test_budget_trajectory_history_consistent(key):
    ev = ConvCount()
    res = search.run_search(search.RegularizedEvolution(SPACE, key), ev, budget=60, seed=0)
    new = [h for h in res.history if h["new"]]
    assert res.extra["num_queries"] == ev.num_queries == len(new) == 60
    assert len({h["arch"] for h in new}) == 60  # never re-queried
    assert len(ev.calls) == len(set(ev.calls)) == 60
    assert res.extra["simulated_cost_s"] == pytest.approx(120.0)
    # Trajectory = reported score of the best-by-signal arch among the first q queries.
    for q, val in res.trajectory:
        best = max(new[:q], key=lambda h: h["signal"])
        assert val == best["reported"]
        assert [x[0] for x in res.trajectory] == list(range(1, 61))
    assert res.best_arch == max(new, key=lambda h: h["signal"])["arch"]
    d = res.to_json()
    for f in ("method", "space", "dataset", "seed", "best_arch", "trajectory", "bench",
              "wall_s", "compile_s", "config"):
        assert f in d
    assert d["method"] == "rea" and d["config"] == {"population": 10, "sample": 3}
    assert d["bench"]["test_accuracy"] == res.trajectory[-1][1]
    json.dumps(d)


def test_duplicates_free_and_loop_ends():
    ev = ConvCount()
    s = Repeater()
    res = search.run_search(s, ev, budget=10, batch_size=4, max_duplicates=50)
    assert res.extra["num_queries"] == 3 and ev.num_queries == 3
    assert "duplicate" in res.extra["note"]
    assert s.told == len(res.history) > 50  # duplicates are still told (cached signal)
    with pytest.raises(ValueError, match="budget"):
        search.run_search(Repeater(), ev, budget=0)


def test_same_seed_same_run_and_seeds_differ():
    def run(seed, cls):
        return search.run_search(cls(SPACE, seed), ConvCount(), budget=40, batch_size=3)
    for cls in (search.RandomSearch, search.RegularizedEvolution):
        a, b, c = run(1, cls), run(1, cls), run(2, cls)
        assert [h["arch"] for h in a.history] == [h["arch"] for h in b.history]
        assert [h["arch"] for h in a.history] != [h["arch"] for h in c.history]


def test_rea_mutates_tournament_winners(key):
    rea = search.RegularizedEvolution(SPACE, key)
    ev = ConvCount()
    first = rea.ask(10)
    rea.tell(first, ev.evaluate(first))
    for _ in range(30):
        pop = [a for a, _ in rea.population]
        assert len(pop) == 10
        child = rea.ask(1)[0]
        dists = [sum(x != y for x, y in zip(child.ops, p.ops)) for p in pop]
        assert min(dists) == 1  # one edge changed from a population member
        rea.tell([child], ev.evaluate([child]))
        assert rea.population[-1][0] == child  # newest in, oldest out
    with pytest.raises(ValueError, match="REAConfig.sample"):
        search.RegularizedEvolution(SPACE, key, search.REAConfig(population=2, sample=3))


def test_rea_beats_random_on_a_smooth_objective():
    """On an objective that rewards one op per edge, evolution must climb faster than RS."""
    def best(cls, seed):
        return search.run_search(cls(SPACE, seed), ConvCount(), budget=80).trajectory[-1][1]
    rs = np.mean([best(search.RandomSearch, s) for s in range(8)])
    rea = np.mean([best(search.RegularizedEvolution, s) for s in range(8)])
    assert rea > rs + 5.0  # > 0.5 conv edges better on average


def test_resume_continues_and_matches_uninterrupted(tmp_path):
    full = search.run_search(search.RegularizedEvolution(SPACE, 3), ConvCount(), budget=50,
                             batch_size=2)
    out = tmp_path / "run"
    part = search.run_search(search.RegularizedEvolution(SPACE, 3), ConvCount(), budget=20,
                             batch_size=2, out_dir=out)
    assert part.extra["num_queries"] == 20
    # Simulate a kill mid-write: a torn last line.
    with open(out / "history.jsonl", "a") as f:
        f.write('{"arch": "|nor_co')
    ev = ConvCount()
    resumed = search.run_search(search.RegularizedEvolution(SPACE, 3), ev, budget=50,
                                batch_size=2, out_dir=out)
    assert resumed.extra["resumed_queries"] == 20
    assert ev.num_queries == 30  # only the missing queries are made
    assert [h["arch"] for h in resumed.history] == [h["arch"] for h in full.history]
    assert resumed.trajectory == full.trajectory and resumed.best_arch == full.best_arch
    assert resumed.extra["simulated_cost_s"] == pytest.approx(full.extra["simulated_cost_s"])
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(full.history)  # meta line + every proposal, nothing lost
    with pytest.raises(ValueError, match="different settings"):
        search.run_search(search.RandomSearch(SPACE, 3), ConvCount(), budget=50,
                          batch_size=2, out_dir=out)


def test_run_seeds_and_summary_on_nb201(data_dir, tmp_path):
    res = search.run_seeds("rs", [0, 1, 2], 30, out_dir=tmp_path / "rs", dataset="cifar100")
    assert [r["seed"] for r in res] == [0, 1, 2]
    assert all((tmp_path / "rs" / f"seed_{s}" / "result.json").is_file() for s in range(3))
    loaded = report.load_results([tmp_path / "rs"])
    assert len(loaded) == 3 and loaded[0]["dataset"] == "cifar100"
    for r in res:
        assert r["bench"]["test_accuracy"] == r["trajectory"][-1][1]
        assert r["evaluator"]["protocol"] == "12epoch"
    summ = report.summarise(res, budgets=(10, 30, 40))
    vals = [report.score_at(r, 10) for r in res]
    assert summ["budgets"][10]["mean"] == pytest.approx(np.mean(vals))
    assert summ["budgets"][10]["std"] == pytest.approx(np.std(vals))
    assert summ["budgets"][40]["n"] == 0 and math.isnan(summ["budgets"][40]["mean"])
    assert "| 30 |" in report.format_summary(summ)


def test_summary_and_plot_by_hand(tmp_path):
    runs = [{"method": "a", "trajectory": [[1, 50.0], [2, 60.0], [3, 60.0]]},
            {"method": "a", "trajectory": [[1, 40.0], [2, 40.0], [3, 80.0]]}]
    s = report.summarise(runs, budgets=(1, 3))
    assert s["budgets"][1]["mean"] == 45.0 and s["budgets"][1]["std"] == 5.0
    assert s["budgets"][3]["mean"] == 70.0
    x, mu, sd = report.best_so_far_curve(runs)
    assert x.tolist() == [1, 2, 3] and mu.tolist() == [45.0, 50.0, 70.0]
    p = report.plot_best_so_far({"a": runs, "b": runs[:1]}, tmp_path / "p.png")
    assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="no result.json"):
        report.load_results([tmp_path])


def test_cli_search_and_compare(data_dir, tmp_path, capsys):
    from jnas import cli
    out = tmp_path / "rea"
    rc = cli.main(["search", "rea", "--space", "nb201", "--budget", "15", "--seeds", "0-1",
                   "--out", str(out)])
    assert rc == 0
    r = json.loads((out / "seed_1" / "result.json").read_text())
    assert r["method"] == "rea" and r["seed"] == 1 and r["space"] == "nb201"
    NB201Arch.from_string(r["best_arch"])
    assert len(r["trajectory"]) == 15 and "test_accuracy_cifar100" in r["bench"]
    rc = cli.main(["compare", str(out), "--budgets", "5,15", "--plot", str(tmp_path / "c.png")])
    assert rc == 0 and (tmp_path / "c.png").is_file()
    assert "| 15 |" in capsys.readouterr().out


def test_load_jsonl_later_wins_defaults_and_keep(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"seed": 0, "best": {"200": 1.0}}) + "\n"
                 + json.dumps({"seed": 1, "protocol": "200epoch", "best": {"500": 2.0}}) + "\n")
    b.write_text(json.dumps({"seed": 0, "best": {"500": 3.0}}) + "\n\n"
                 + json.dumps({"seed": 1, "protocol": "200epoch", "best": {"50": 4.0}}) + "\n")
    key = ("protocol", "seed")
    recs = report.load_jsonl([a, b], key, defaults={"protocol": "12epoch"})
    assert recs[("12epoch", 0)]["best"] == {"500": 3.0}          # default filled, later wins
    assert recs[("200epoch", 1)]["best"] == {"50": 4.0}
    longest = lambda r: max(int(k) for k in r["best"])  # noqa: E731
    recs = report.load_jsonl([a, b], key, defaults={"protocol": "12epoch"},
                             keep=lambda new, old: longest(new) > longest(old))
    assert recs[("200epoch", 1)]["best"] == {"500": 2.0}         # the longer run is kept
    assert recs[("12epoch", 0)]["best"] == {"500": 3.0}


def _convs(archs):
    """A plain objective: the number of 3x3 convs of each cell."""
    return [float(a.ops.count("nor_conv_3x3")) for a in archs]


@pytest.mark.parametrize("method", ["rs", "rea", "bonas", "ganas"])
def test_a_plain_function_drives_run_search(method):
    from jnas.bo import BONASConfig
    from jnas.gan import GANASConfig
    configs = {"bonas": BONASConfig(n_init=4, k=2, gcn_epochs=2, n_candidates=50),
               "ganas": GANASConfig(n_init=4, m=2, top_k=2, hidden=8, gru=8, d_steps=1,
                                    d_batch=8, g_iters=1, g_batch=8, ppo_epochs=1,
                                    cand_batch=16)}
    searcher = registry.get_method(method).load()("nb201", 0, configs.get(method))
    res = search.run_search(searcher, _convs, budget=8, seed=0)
    assert res.extra["num_queries"] == 8 and res.bench == {}
    new = [h for h in res.history if h["new"]]
    assert all(h["reported"] == h["signal"] for h in new)  # reported defaults to the signal
    assert res.extra["simulated_cost_s"] == 0.0
    assert res.trajectory[-1][1] == max(h["signal"] for h in new)
    if method in ("bonas", "ganas"):  # compile time of the jitted programs is measured
        assert res.compile_s > 0


def test_evaluate_only_objects_and_query_answers():
    class Only:
        def evaluate(self, archs):
            return _convs(archs)

    class WithQuery:
        def evaluate(self, archs):
            return [search.Query(s, 10 * s, 1.5) for s in _convs(archs)]

    res = search.run_search(search.RandomSearch("nb201", 1), Only(), budget=5)
    assert res.extra["num_queries"] == 5
    res = search.run_search(search.RandomSearch("nb201", 1), WithQuery(), budget=5)
    new = [h for h in res.history if h["new"]]
    assert all(h["reported"] == 10 * h["signal"] for h in new)
    assert res.extra["simulated_cost_s"] == pytest.approx(7.5)
    with pytest.raises(ValueError, match="one per architecture"):
        search.run_search(search.RandomSearch("nb201", 1), lambda a: [], budget=2)
    with pytest.raises(ValueError, match="evaluate"):
        search.as_evaluator(42)


def test_space_names_accepted_and_configs_check_themselves():
    a = search.RandomSearch("nb201", 3).ask(4)
    b = search.RandomSearch(SPACE, 3).ask(4)
    assert [x.to_string() for x in a] == [x.to_string() for x in b]
    assert len(search.RegularizedEvolution("nb201", 0).ask(2)) == 2
    with pytest.raises(ValueError, match="REAConfig.sample"):
        search.REAConfig(population=2, sample=3)


def test_first_progress_line_explains_reported():
    lines = []
    search.run_search(search.RandomSearch("nb201", 0), _convs, budget=10, log=lines.append,
                      log_every=5)
    assert len(lines) == 2 and "best-by-signal" in lines[0] and "best-by-signal" not in lines[1]


def test_run_method_on_the_table(data_dir, tmp_path):
    from jnas import benchmarks
    ev = benchmarks.make_evaluator("nb201")
    res = search.run_method("rea", None, space="nb201", evaluator=ev, seed=0, budget=12,
                            out_dir=tmp_path / "s0")
    assert isinstance(res, report.Result) and res.method == "rea" and res.space == "nb201"
    assert res.config == {"population": 10, "sample": 3} and res.extra["num_queries"] == 12
    assert (tmp_path / "s0" / "history.jsonl").is_file()
    with pytest.raises(ValueError, match="sample-based"):
        search.run_method("darts", None, space="nb201", evaluator=ev, seed=0, budget=1)


# ------------------------------------------------- isomorphs; tables covering part of the space
def test_nb201_canonical_classes_are_the_tables_unique_strings(data_dir):
    from jnas.benchmarks import load_nb201
    from jnas.search_history import iso_key, nb201_canonical
    bench = load_nb201()
    pairs = {(nb201_canonical(SPACE.parse(str(s))), str(u))
             for s, u in zip(bench.arch_strings, bench.unique_strings)}
    assert len(pairs) == len({c for c, _ in pairs}) == len({u for _, u in pairs}) == 6466
    a = NB201Arch.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    b = NB201Arch.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|"
                              "none~2|")  # node 2 does not reach the output
    assert iso_key(a) == iso_key(b) and a.to_string() != b.to_string()


def test_run_search_skip_isomorphs_counts_isomorphs_as_repeats():
    a = NB201Arch.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    b = NB201Arch.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|"
                              "none~2|")
    c = NB201Arch.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|"
                              "nor_conv_3x3~1|none~2|")

    class Fixed:
        def __init__(self):
            self.todo, self.told = [a, b, c], []

        def ask(self, n):
            return [self.todo.pop(0)]

        def tell(self, archs, scores):
            self.told += list(scores)

    ev = ConvCount()
    r0 = search.run_search(Fixed(), ev, 3)
    assert r0.extra["num_queries"] == 3 and "skip_isomorphs" not in r0.extra
    s, ev = Fixed(), ConvCount()
    r1 = search.run_search(s, ev, 2, skip_isomorphs=True)
    assert ev.calls == [a.to_string(), c.to_string()] and r1.extra["skip_isomorphs"]
    assert [h["new"] for h in r1.history] == [True, False, True]
    assert s.told[1] == s.told[0]  # the isomorph is told its queried twin's signal


@pytest.fixture(scope="module")
def csv_2000(data_dir, tmp_path_factory):
    """A user CSV of 2,000 real NB201 rows (every 7th table row): arch, val_acc (12-epoch
    CIFAR-10 validation), test_acc (200-epoch test); written to a tmp dir."""
    from jnas.benchmarks import load_nb201
    bench = load_nb201()
    rows = range(0, 14000, 7)
    path = tmp_path_factory.mktemp("csv") / "my.csv"
    path.write_text("arch,val_acc,test_acc\n" + "".join(
        f"{bench.arch_strings[i]},{bench.val12['cifar10'][i]},{bench.test_acc['cifar10'][i]}\n"
        for i in rows))
    return path, {str(bench.arch_strings[i]) for i in rows}


@pytest.mark.parametrize("method,sets,budget", [
    ("bonas", ["n_init=3", "k=3", "gcn_epochs=2", "gcn_hidden=8"], 9),
    ("renas", ["train_size=12", "top_k=3", "epochs=2"], 15)])
def test_bonas_and_renas_search_a_user_csv_of_2000_cells(csv_2000, tmp_path, method, sets,
                                                         budget):
    from jnas import cli
    path, held = csv_2000
    argv = ["search", method, "--space", "nb201", "--benchmark", str(path), "--metric",
            "val_acc", "--report", "test_acc", "--budget", str(budget), "--quiet", "--out",
            str(tmp_path / "r")]
    for s in sets:
        argv += ["--set", s]
    assert cli.main(argv) == 0
    r = json.loads((tmp_path / "r" / "seed_0" / "result.json").read_text())
    assert r["num_queries"] == budget and {h["arch"] for h in r["history"]} <= held


def test_ganas_factory_on_a_user_csv_of_2000_cells(csv_2000):
    from jnas.gan import GANASConfig
    from jnas.tables import TableEvaluator, load_table
    path, held = csv_2000
    ev = TableEvaluator(load_table(path, "nb201", "val_acc", "test_acc"))
    cfg = GANASConfig(n_init=6, m=3, top_k=3, hidden=8, gru=8, d_steps=1, d_batch=4,
                      g_iters=1, g_batch=4, ppo_epochs=1, cand_batch=8)
    r = search.run_method("ganas", cfg, space="nb201", evaluator=ev, seed=0, budget=9)
    assert r.extra["num_queries"] == 9 and {h["arch"] for h in r.history} <= held


def test_bonas_on_the_nb101_table(data_dir):
    from jnas.benchmarks import make_evaluator
    from jnas.bo import BONASConfig
    cfg = BONASConfig(n_init=3, k=3, gcn_epochs=2, gcn_hidden=8)
    r = search.run_method("bonas", cfg, space="nb101", evaluator=make_evaluator("nb101"),
                          seed=0, budget=9)
    assert r.extra["num_queries"] == 9 and r.space == "nb101" and r.best_arch
    assert len(r.history) == 9  # no isomorph of an asked cell is proposed again
