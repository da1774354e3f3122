"""The scripts in examples/ run as written (tiny sizes), through the public API only."""
import runpy
import sys
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(monkeypatch, name, *argv):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"](list(argv))


def test_examples_use_public_names_and_stay_short():
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 65, path.name
        assert "import jnas\n" in text and "from jnas" not in text and "jnas._" not in text


def test_custom_evaluator(monkeypatch, capsys):
    res = _run(monkeypatch, "custom_evaluator.py", "--budget", "20")
    assert res.method == "rea" and res.to_json()["num_queries"] == 20
    assert "MFLOPs" in capsys.readouterr().out


def test_sample_search(monkeypatch, capsys, data_dir):
    results = _run(monkeypatch, "sample_search.py", "--budget", "12")
    assert set(results) == {"rs", "rea", "bonas"}
    assert all(r.to_json()["num_queries"] == 12 and r.bench for r in results.values())
    out = capsys.readouterr().out
    assert "by hand  rea" in out and out.count("run_search") == 3


def test_oneshot_search(monkeypatch, capsys):
    import jnas
    arch = _run(monkeypatch, "oneshot_search.py", "--steps", "2", "--batch", "8")
    assert isinstance(arch, jnas.NB201Arch)
    assert "found: |" in capsys.readouterr().out
