"""Tests for jnas.registry: the explicit method table, lazy imports, entry points."""
import subprocess
import sys

import pytest

from jnas import registry

ONESHOT_STACK = ("jnas.oneshot", "jnas.darts", "jnas.snas", "jnas.less_local", "jnas.cells",
                 "jnas.train")


def test_table_lists_every_method_with_kind_spaces_doc():
    ms = registry.methods()
    assert set(ms) == {"rs", "rea", "bonas", "ganas", "renas", "renas-rea", "darts", "darts2",
                       "gdas", "snas", "less-local"}
    for name, spec in ms.items():
        assert spec.name == name and spec.kind in ("sample", "oneshot") and spec.doc
        assert spec.spaces and all(s in ("nb201", "darts", "nb101") for s in spec.spaces)
        assert ":" in spec.target and ":" in spec.config
        assert spec.benchmarks == (("nb201",) if spec.kind == "oneshot" else spec.benchmarks)
        assert spec.kind == "oneshot" or "csv" in spec.benchmarks


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: bonas, darts"):
        registry.get_method("nope")
    spec = registry.get_method("rs")
    assert registry.get_method(spec) is spec
    with pytest.raises(ValueError, match="kind"):
        registry.MethodSpec("x", "other", "a:b", "a:C", ("nb201",), ())


def test_every_entry_point_and_config_loads():
    for spec in registry.methods().values():
        assert callable(spec.load())
        cls = spec.config_cls()
        assert isinstance(cls, type) and isinstance(spec.default_config(), cls)


def test_sample_factory_builds_a_searcher():
    import jax
    from jnas.spaces import NB201
    spec = registry.get_method("rea")
    s = spec.factory(NB201, jax.random.key(0), spec.default_config())
    archs = s.ask(3)
    assert len(archs) == 3 and all(NB201.validate(a) for a in archs)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(m for m in sys.modules if m.startswith('jnas')))"],
                         capture_output=True, text=True, check=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    return set(out.stdout.split())


def test_choosing_a_sample_method_does_not_import_the_oneshot_stack():
    mods = _modules_after("from jnas import registry\n"
                          "registry.methods()\n"
                          "s = registry.get_method('rs'); s.load(); s.config_cls()")
    assert "jnas.search" in mods
    assert not set(ONESHOT_STACK) & mods, sorted(set(ONESHOT_STACK) & mods)
    mods = _modules_after("from jnas import registry; registry.get_method('darts').load()")
    assert "jnas.darts" in mods


def test_jnas_search_rs_does_not_import_the_oneshot_stack(data_dir, tmp_path):
    import os
    code = ("import sys\nfrom jnas.cli import main\n"
            f"assert main(['search', 'rs', '--budget', '3', '--out', {str(tmp_path)!r}, "
            "'--quiet']) == 0\n"
            "print(' '.join(m for m in sys.modules if m.startswith('jnas')))")
    env = {**os.environ, "JNAS_DATA_DIR": str(data_dir), "JNAS_CACHE_DIR": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    mods = set(out.stdout.strip().splitlines()[-1].split())
    assert "jnas.search" in mods and "jnas.cli" in mods
    assert not set(ONESHOT_STACK) & mods, sorted(set(ONESHOT_STACK) & mods)
    assert (tmp_path / "seed_0" / "result.json").is_file()
