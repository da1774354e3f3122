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
