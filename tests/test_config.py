"""Tests for jnas.config (override parsing) and jnas.rng (key-driven host randomness)."""
import dataclasses

import jax
import numpy as np
import pytest

from jnas.config import apply_overrides, config_to_dict
from jnas.rng import as_key, np_rng


@dataclasses.dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1
    epochs: int = 5
    use_bn: bool = True
    name: str = "a"
    shape: tuple = (1, 2)


def test_overrides_parse_to_field_types():
    cfg = apply_overrides(_Cfg(), ["lr=3e-4", "epochs=7", "use_bn=false", "name=b",
                                   "shape=(3, 4)"])
    assert cfg == _Cfg(lr=3e-4, epochs=7, use_bn=False, name="b", shape=(3, 4))
    assert config_to_dict(cfg)["epochs"] == 7


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown config key 'lrr'.*epochs, lr"):
        apply_overrides(_Cfg(), ["lrr=1"])


@pytest.mark.parametrize("item,msg", [("epochs=2.5", "integer"), ("use_bn=maybe", "boolean"),
                                      ("lr=fast", "number"), ("lr", "key=value")])
def test_bad_values_are_named(item, msg):
    with pytest.raises(ValueError, match=msg):
        apply_overrides(_Cfg(), [item])


def test_np_rng_is_a_function_of_the_key():
    a = np_rng(jax.random.key(3)).integers(0, 1 << 30, 8)
    b = np_rng(3).integers(0, 1 << 30, 8)
    c = np_rng(jax.random.key(4)).integers(0, 1 << 30, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    raw = jax.random.key_data(jax.random.key(3))
    np.testing.assert_array_equal(np_rng(raw).integers(0, 1 << 30, 8), a)
    assert jax.dtypes.issubdtype(as_key(5).dtype, jax.dtypes.prng_key)


# ----------------------------------------------------------------------------- new helpers
from jnas.config import (check_choice, check_positive, check_range, field_docs,  # noqa: E402
                         parse_seeds, split_overrides)


@dataclasses.dataclass(frozen=True)
class _Checked:
    kind: str = "ucb"  # acquisition function
    n: int = 3         # pool size
    lr: float = 0.1    # learning rate
    p: float = 0.5     # a probability
    maybe: int | None = None  # optional count

    def __post_init__(self):
        check_choice(self, "kind", ("ucb", "ei"))
        check_positive(self, "n", "lr", "maybe")
        check_range(self, "p", 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class _Child(_Checked):
    extra: bool = False  # a field of the subclass


def test_field_docs_reads_trailing_comments_through_bases():
    assert field_docs(_Checked) == {"kind": "acquisition function", "n": "pool size",
                                    "lr": "learning rate", "p": "a probability",
                                    "maybe": "optional count"}
    docs = field_docs(_Child())
    assert docs["extra"] == "a field of the subclass" and docs["kind"] == "acquisition function"
    assert field_docs(_Cfg) == dict.fromkeys(("lr", "epochs", "use_bn", "name", "shape"), "")


@pytest.mark.parametrize("item,msg", [
    ("kind=foo", r"_Checked.kind = 'foo' is not valid; choose one of 'ucb', 'ei'"),
    ("n=0", r"_Checked.n = 0 must be > 0"), ("lr=nan", "NaN"), ("maybe=-1", "must be > 0"),
    ("p=1.5", r"outside \[0.0, 1.0\]")])
def test_post_init_checks_run_on_overrides(item, msg):
    with pytest.raises(ValueError, match=msg):
        apply_overrides(_Checked(), [item])
    assert apply_overrides(_Checked, ["maybe=2"]).maybe == 2   # a class gives its defaults


def test_check_positive_allow_zero():
    @dataclasses.dataclass(frozen=True)
    class Z:
        x: int = 0

        def __post_init__(self):
            check_positive(self, "x", allow_zero=True)
    Z()
    with pytest.raises(ValueError, match=">= 0"):
        Z(-1)


def test_unknown_keys_all_listed_and_prefixes_skipped():
    with pytest.raises(ValueError, match="unknown config keys 'a', 'b'"):
        apply_overrides(_Cfg(), ["a=1", "b=2"])
    cfg = apply_overrides(_Cfg(), ["epochs=2", "ws.steps=9"], prefixes=("ws.",))
    assert cfg.epochs == 2


def test_split_overrides():
    assert split_overrides(["C=8", "ws.steps=2000", "epochs=1"]) == (["C=8", "epochs=1"],
                                                                      ["steps=2000"])
    assert split_overrides(None) == ([], [])
    assert split_overrides(["x.a=1"], prefix="x.") == ([], ["a=1"])


def test_parse_seeds():
    assert parse_seeds(None, None) == [0]
    assert parse_seeds(7, None) == [7]
    assert parse_seeds(None, "0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(None, str(2**32 - 1)) == [2**32 - 1]
    for bad, msg in [("3-1", "empty range"), ("a", "not an integer"), ("", "no seed"),
                     ("1-x", "not a range"), ("-5", "out of range"),
                     ("99999999999999999999", "out of range"), ("0-4294967296", "out of range")]:
        with pytest.raises(ValueError, match=msg):
            parse_seeds(None, bad)
    with pytest.raises(ValueError, match=r"out of range; use 0\.\.4294967295"):
        parse_seeds(99999999999999999999, None)
