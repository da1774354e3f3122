"""Tests for the public record and writers (jnas.report.Result, jsonable, write_json)."""
import dataclasses
import json
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jnas.report import Result, jsonable, write_json
from jnas.spaces import NB201


def _result(**kw):
    base = dict(method="rs", space="nb201", dataset="cifar10", seed=0, best_arch="a",
                bench={"test_acc": 90.0}, trajectory=[[1, 90.0]], history=[{"q": 1}],
                wall_s=1.5, compile_s=0.0, config={"population": 10})
    return Result(**{**base, **kw})


def test_result_to_json_is_flat_and_round_trips():
    r = _result(extra={"best_signal": np.float32(0.5), "num_queries": np.int64(1)})
    d = r.to_json()
    assert d["best_signal"] == 0.5 and d["num_queries"] == 1 and "extra" not in d
    assert list(d)[:4] == ["method", "space", "dataset", "seed"]
    assert Result.from_json(d) == dataclasses.replace(r, extra={"best_signal": 0.5,
                                                                "num_queries": 1})
    r2 = r.replace(seed=3, note="x")
    assert r2.seed == 3 and r2.extra["note"] == "x" and "note" not in r.extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.seed = 1
    with pytest.raises(ValueError, match="repeats named fields"):
        _result(extra={"seed": 1}).to_json()


def test_jsonable_handles_numpy_jax_arch_dataclass_path():
    arch = NB201.sample(0, 1)[0]
    obj = {"a": np.arange(3), "b": jnp.ones(2), "c": jnp.float32(2.0), "d": arch,
           "e": Path("/x"), "f": _result()}
    out = json.loads(json.dumps(obj, default=jsonable))
    assert out["a"] == [0, 1, 2] and out["b"] == [1.0, 1.0] and out["c"] == 2.0
    assert out["d"] == arch.to_string() and out["e"] == "/x" and out["f"]["method"] == "rs"
    with pytest.raises(TypeError, match="not JSON serialisable"):
        jsonable(object())


def test_write_json_is_atomic_and_takes_a_result(tmp_path):
    p = write_json(tmp_path / "sub" / "result.json", _result())
    assert json.loads(p.read_text())["best_arch"] == "a"
    assert [f.name for f in p.parent.iterdir()] == ["result.json"]   # no temp file left
    with pytest.raises(TypeError):
        write_json(p, {"x": object()})
    assert json.loads(p.read_text())["best_arch"] == "a"              # old file intact
    assert [f.name for f in p.parent.iterdir()] == ["result.json"]
    write_json(p, {"x": 1}, indent=None)
    assert p.read_text() == '{"x": 1}'


# ----------------------------------------------------------------------------- public API
def test_public_api_resolves_lazily_and_is_documented():
    import subprocess
    import sys

    import jnas
    from jnas import apidoc
    out = subprocess.run([sys.executable, "-c", "import jnas, sys; print(sorted(m for m in "
                          "sys.modules if m.startswith('jnas.')))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"                       # `import jnas` imports nothing
    for name in ("relax", "gcn", "REAConfig", "discretise", "normalize", "create_train_state",
                 "Result", "Query", "Evaluator", "Searcher", "get_space", "run_search"):
        assert name in jnas.__all__
    for name in jnas.__all__:
        assert getattr(jnas, name) is not None
    text = (Path(__file__).parents[1] / "docs" / "API.md").read_text()
    missing = [n for n in jnas.__all__
               if not re.search(rf"`(class |jnas\.)?{re.escape(n)}\b", text)]
    assert not missing, f"docs/API.md lacks {missing}"
    assert text == apidoc.render(), ("docs/API.md is out of date: run "
                                     "`python -m jnas.apidoc > docs/API.md`")
