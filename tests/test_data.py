"""Tests for jnas.data: image folder / zip loading, cache, tfds plumbing, split, augmentation,
batching, prefetch and error messages."""
from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jnas import data, data_images


# ----------------------------------------------------------------------------- helpers

def _write_tree(root: Path, counts: dict[str, dict[str, int]], size=(32, 32), seed=0) -> None:
    """Writes ``root/<split>/<class>/NNNN.png`` with random (lossless) images."""
    rng = np.random.default_rng(seed)
    for split, classes in counts.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.png")


def _zip_tree(root: Path, zpath: Path) -> Path:
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            zf.write(p, rel + "/" if p.is_dir() else rel)
    return zpath


@pytest.fixture
def tree(tmp_path, cache_dir) -> Path:
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"b_cls": 3, "a_cls": 2, "c_cls": 4},
                       "test": {"a_cls": 1, "b_cls": 2, "c_cls": 1}})
    return root


# ----------------------------------------------------------------------------- folder / zip

def test_folder_labels_classes_order_and_pixels(tree):
    x, y = data.load_image_folder(tree, "train")
    assert x.shape == (9, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    assert data.list_classes(tree, "train") == ["a_cls", "b_cls", "c_cls"]
    assert y.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]          # sorted classes, sorted files
    ref = np.asarray(Image.open(tree / "train" / "b_cls" / "0001.png"))
    np.testing.assert_array_equal(x[3], ref)                   # a_cls has 2, so b_cls/0001 is #3
    xt, yt = data.load_image_folder(tree, "test")
    assert yt.tolist() == [0, 1, 1, 2]


def test_zip_and_folder_agree(tree, tmp_path):
    z = _zip_tree(tree, tmp_path / "imgs.zip")
    for split in ("train", "test"):
        xf, yf = data.load_image_folder(tree, split, cache=False)
        xz, yz = data.load_image_folder(z, split, cache=False)
        np.testing.assert_array_equal(xf, xz)
        np.testing.assert_array_equal(yf, yz)


def test_real_zip_subset_agrees_with_extracted_folder(data_dir, tmp_path, cache_dir):
    src = data_dir / "cifar10" / "cifar10-jpg.zip"
    x, y = data.load_image_folder(src, "test", max_per_class=3)
    assert x.shape == (30, 32, 32, 3)
    assert np.bincount(y).tolist() == [3] * 10
    assert data.list_classes(src, "test") == list(data.CIFAR10_CLASSES)
    # Extract the same files into a folder: loading it must give identical arrays.
    with zipfile.ZipFile(src) as zf:
        for cls in data.CIFAR10_CLASSES:
            names = sorted(n for n in zf.namelist()
                           if n.startswith(f"test/{cls}/") and n.endswith(".jpg"))[:3]
            for n in names:
                zf.extract(n, tmp_path / "ext")
    xf, yf = data.load_image_folder(tmp_path / "ext", "test")
    np.testing.assert_array_equal(x, xf)
    np.testing.assert_array_equal(y, yf)


def test_load_cifar10_auto_uses_shared_zip(data_dir, cache_dir):
    x, y = data.load_cifar10("auto", "test", data_dir=data_dir, max_per_class=20)
    assert x.shape == (200, 32, 32, 3) and np.bincount(y).tolist() == [20] * 10
    # Real photos, not noise: mean near the CIFAR-10 mean, neighbouring pixels correlated.
    m = x.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(m, data.CIFAR10_MEAN, atol=0.06)
    f = x.astype(np.float32)
    corr = np.corrcoef(f[:, :, :-1].ravel(), f[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8
    # The train-only zip serves the train split with the same layout.
    xt, yt = data.load_image_folder(data_dir / "cifar10" / "cifar10-train-jpg.zip", "train",
                                    max_per_class=2)
    xa, ya = data.load_image_folder(data_dir / "cifar10" / "cifar10-jpg.zip", "train",
                                    max_per_class=2)
    np.testing.assert_array_equal(xt, xa)
    np.testing.assert_array_equal(yt, ya)


def test_train_only_zip_has_no_test_split(data_dir, cache_dir):
    with pytest.raises(ValueError, match=r"no split 'test'.*splits found: \['train'\]"):
        data.load_image_folder(data_dir / "cifar10" / "cifar10-train-jpg.zip", "test")


def test_cache_reuse_does_not_decode_again(tree, tmp_path, cache_dir, monkeypatch):
    z = _zip_tree(tree, tmp_path / "imgs.zip")
    calls = []
    real = data_images.decode_image
    monkeypatch.setattr(data_images, "decode_image", lambda *a: calls.append(a[1]) or real(*a))
    x1, y1 = data.load_image_folder(z, "train")
    assert len(calls) == 9
    assert list((cache_dir / "images").glob("*.npy"))
    x2, y2 = data.load_image_folder(z, "train")
    assert len(calls) == 9                                     # served from the cache
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # A changed source (new mtime/size) is decoded again.
    _write_tree(tmp_path / "imgs2", {"train": {"a_cls": 1, "b_cls": 1, "c_cls": 1}}, seed=5)
    _zip_tree(tmp_path / "imgs2", z)
    x3, _ = data.load_image_folder(z, "train")
    assert len(calls) == 12 and x3.shape[0] == 3


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("JNAS_CACHE_DIR", raising=False)
    assert data.cache_dir() == Path.home() / ".cache" / "jnas"
    monkeypatch.setenv("JNAS_CACHE_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path


# ----------------------------------------------------------------------------- errors

def test_missing_path_error(tmp_path, cache_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_image_folder(tmp_path / "nope.zip", "train")


def test_missing_split_error(tree, tmp_path):
    z = _zip_tree(tree, tmp_path / "imgs.zip")
    with pytest.raises(ValueError, match=r"no split 'val'.*\['test', 'train'\]"):
        data.load_image_folder(z, "val")


def test_wrong_size_image_error(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"a": 2, "b": 2}})
    Image.fromarray(np.zeros((28, 30, 3), np.uint8)).save(root / "train" / "b" / "0001.png")
    with pytest.raises(ValueError, match=r"0001.png is 30x28 .* 32x32 is expected"):
        data.load_image_folder(root, "train")
    # A folder of another (uniform) size loads when that size is named.
    small = tmp_path / "small"
    _write_tree(small, {"train": {"a": 2}}, size=(28, 30))
    x, _ = data.load_image_folder(small, "train", image_size=(28, 30))
    assert x.shape == (2, 28, 30, 3)


def test_mixed_sizes_without_expected_size_error(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"a": 1}})
    _write_tree(root, {"train": {"b": 1}}, size=(16, 16))
    with pytest.raises(ValueError, match="different sizes"):
        data.load_image_folder(root, "train", image_size=None)


def test_empty_class_error(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"a": 2}})
    (root / "train" / "empty_cls").mkdir()
    with pytest.raises(ValueError, match=r"\['empty_cls'\].*hold no images"):
        data.load_image_folder(root, "train")
    z = _zip_tree(root, tmp_path / "e.zip")
    with pytest.raises(ValueError, match="empty_cls"):
        data.load_image_folder(z, "train")


def test_corrupt_image_and_bad_zip_errors(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"a": 1}})
    (root / "train" / "a" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode image .*bad.jpg"):
        data.load_image_folder(root, "train")
    (tmp_path / "x.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable .zip"):
        data.load_image_folder(tmp_path / "x.zip", "train")


def test_class_mismatch_between_splits_error(tmp_path, cache_dir):
    root = tmp_path / "imgs"
    _write_tree(root, {"train": {"a": 1, "b": 1}, "test": {"a": 1}})
    with pytest.raises(ValueError, match="different class folders"):
        data.load_image_folder(root, "train")


# ----------------------------------------------------------------------------- arrays / tfds

def test_load_arrays(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 3), dtype=np.uint8)
    y = np.arange(5, dtype=np.int64)
    np.savez(tmp_path / "a.npz", images=x, labels=y)
    xa, ya = data.load_arrays(tmp_path / "a.npz")
    np.testing.assert_array_equal(xa, x)
    assert ya.dtype == np.int32 and ya.tolist() == list(range(5))
    np.savez(tmp_path / "b.npz", foo=x)
    with pytest.raises(ValueError, match=r"holds arrays \['foo'\]; expected 'images'"):
        data.load_arrays(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=x.transpose(0, 3, 1, 2), y=y)
    with pytest.raises(ValueError, match="channels"):
        data.load_arrays(tmp_path / "c.npz")
    with pytest.raises(FileNotFoundError):
        data.load_arrays(tmp_path / "missing.npz")


def test_tfds_path_with_fake_module(monkeypatch):
    """The tfds plumbing (lazy import, as_numpy, dtypes, cifar100) on a stand-in module."""
    seen = {}
    fake = types.ModuleType("tensorflow_datasets")

    def load(name, split, batch_size, as_supervised, data_dir):
        seen.update(name=name, split=split, batch_size=batch_size, data_dir=data_dir)
        n = 6
        return (np.full((n, 32, 32, 3), 7, np.uint8), np.arange(n, dtype=np.int64) % 3)

    fake.load = load
    fake.as_numpy = lambda ds: ds
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    x, y = data.load_cifar10("tfds", "test")
    assert seen == {"name": "cifar10", "split": "test", "batch_size": -1, "data_dir": None}
    assert x.shape == (6, 32, 32, 3) and y.dtype == np.int32
    x, y = data.load_cifar100(split="train", data_dir="/d")
    assert seen["name"] == "cifar100" and seen["data_dir"] == "/d"
    x, y = data.load_cifar10("tfds", "train", max_per_class=1)
    assert y.tolist() == [0, 1, 2]

    def fail(*a, **k):
        raise ConnectionError("no network")

    fake.load = fail
    with pytest.raises(RuntimeError, match="could not load 'cifar10'.*image folder/zip"):
        data.load_cifar10("tfds", "train")


def test_auto_without_zip_falls_back_to_tfds(monkeypatch, tmp_path):
    fake = types.ModuleType("tensorflow_datasets")
    fake.load = lambda *a, **k: (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2, np.int64))
    fake.as_numpy = lambda ds: ds
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    x, _ = data.load_cifar10("auto", "train", data_dir=tmp_path)
    assert x.shape == (2, 32, 32, 3)


# ----------------------------------------------------------------------------- split

def test_search_split_sizes_disjoint_stratified_deterministic(key):
    x, y = data.mock_cifar(1000, key)
    idx = np.arange(1000)
    # Tag each image with its index so we can check disjointness on the outputs.
    x = x.copy()
    x[:, 0, 0, 0] = idx % 256
    x[:, 0, 0, 1] = idx // 256
    (xt, yt), (xv, yv) = data.search_split(x, y, key)
    tag = lambda a: a[:, 0, 0, 0].astype(int) + 256 * a[:, 0, 0, 1].astype(int)  # noqa: E731
    ti, vi = set(tag(xt)), set(tag(xv))
    assert len(ti) == len(xt) and len(vi) == len(xv)
    assert not ti & vi and ti | vi == set(range(1000))
    assert abs(len(xt) - 500) <= 10                             # per-class rounding only
    for c in range(10):
        n = (y == c).sum()
        assert abs((yt == c).sum() - n / 2) <= 0.5 + 1e-9       # stratified halves
    (xt2, yt2), _ = data.search_split(x, y, key)
    np.testing.assert_array_equal(xt, xt2)
    np.testing.assert_array_equal(yt, yt2)
    (xt3, _), _ = data.search_split(x, y, jax.random.key(1))
    assert set(tag(xt3)) != ti
    (xq, _), (xr, _) = data.search_split(x, y, key, frac=0.8)
    assert abs(len(xq) - 800) <= 10 and len(xq) + len(xr) == 1000
    with pytest.raises(ValueError, match="frac"):
        data.search_split(x, y, key, frac=1.0)


def test_search_split_on_real_cifar_sizes(data_dir, cache_dir):
    x, y = data.load_cifar10("auto", "test", data_dir=data_dir, max_per_class=50)
    assert (np.diff(y) >= 0).all()  # the loader returns images grouped by class
    (xt, yt), (xv, yv) = data.search_split(x, y, jax.random.key(0))
    assert len(xt) == len(xv) == 250
    # each half is shuffled: a prefix (a validation batch) covers the classes
    assert len(np.unique(yv[:40])) >= 8 and len(np.unique(yt[:40])) >= 8
    assert np.bincount(yt).tolist() == [25] * 10 == np.bincount(yv).tolist()


# ----------------------------------------------------------------------------- transforms

def test_normalize_stats_and_errors():
    x = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 255)])
    z = np.asarray(data.normalize(x))
    np.testing.assert_allclose(z[0, 0, 0], -np.array(data.CIFAR10_MEAN) / data.CIFAR10_STD, rtol=1e-5)
    np.testing.assert_allclose(z[1, 0, 0], (1 - np.array(data.CIFAR10_MEAN)) / data.CIFAR10_STD,
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(data.normalize(x.astype(np.float32) / 255)), z, rtol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        data.normalize(np.zeros((2, 3, 4, 4), np.uint8))


def test_augment_crop_within_pad_and_flip(key):
    n = 256
    base = np.arange(32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3) + 1.0  # no zeros
    x = jnp.asarray(np.repeat(base, n, axis=0))
    out = np.asarray(jax.jit(data.augment)(key, x))
    assert out.shape == x.shape and out.dtype == x.dtype
    b = base[0]
    padded = np.pad(b, ((4, 4), (4, 4), (0, 0)))
    candidates = {}
    for flip in (False, True):
        for dy in range(9):
            for dx in range(9):
                crop = padded[dy:dy + 32, dx:dx + 32]
                candidates[(crop[:, ::-1] if flip else crop).tobytes()] = (dy, dx, flip)
    offsets, flips = set(), 0
    for o in out:
        found = candidates.get(o.tobytes())
        assert found is not None, "augmented image is not a (flipped) crop of the padded input"
        offsets.add(found[:2])
        flips += found[2]
    assert 0.35 < flips / n < 0.65                              # flip with p = 0.5
    assert len(offsets) > 40                                    # 81 possible offsets, spread out
    assert {dy for dy, _ in offsets} == set(range(9))           # full pad range used, no more


def test_augment_flip_really_flips(key):
    x = jnp.asarray(np.random.default_rng(0).integers(0, 255, (64, 32, 32, 3), dtype=np.uint8))
    out = np.asarray(data.augment(key, x, pad=0))               # pad 0: only the flip remains
    xs = np.asarray(x)
    same = [np.array_equal(o, a) for o, a in zip(out, xs)]
    mirrored = [np.array_equal(o, a[:, ::-1]) for o, a in zip(out, xs)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54
    assert out.dtype == np.uint8


def test_augment_deterministic_per_key_and_per_example(key):
    x = jnp.asarray(np.random.default_rng(1).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8))
    a = np.asarray(data.augment(key, x))
    np.testing.assert_array_equal(a, np.asarray(data.augment(key, x)))
    assert not np.array_equal(a, np.asarray(data.augment(jax.random.key(7), x)))
    # Identical inputs in one batch get different augmentations (per-example keys).
    same = jnp.repeat(x[:1], 16, axis=0)
    outs = np.asarray(data.augment(key, same))
    assert len({o.tobytes() for o in outs}) > 8
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        data.augment(key, x[0])


# ----------------------------------------------------------------------------- batching

def test_batch_iterator_order_shapes_and_epochs(key):
    x, y = data.mock_cifar(50, key)
    batches = list(data.batch_iterator(x, y, 8, key, epochs=2))
    assert len(batches) == 2 * 6                                # 50 // 8 = 6 per epoch
    assert all(bx.shape == (8, 32, 32, 3) and by.shape == (8,) for bx, by in batches)
    again = list(data.batch_iterator(x, y, 8, key, epochs=2))
    for (a, b), (c, d) in zip(batches, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    other = list(data.batch_iterator(x, y, 8, jax.random.key(3), epochs=1))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(batches, other))
    # Different epochs use different orders.
    assert not all(np.array_equal(batches[i][1], batches[6 + i][1]) for i in range(6))
    full = list(data.batch_iterator(x, y, 8, key, epochs=1, drop_remainder=False))
    assert [len(b[1]) for b in full] == [8] * 6 + [2]
    labels = np.sort(np.concatenate([b[1] for b in full]))
    np.testing.assert_array_equal(labels, np.sort(y))           # every example exactly once
    inf = data.batch_iterator(x, y, 8, key)                    # epochs=None: endless
    assert len([next(inf) for _ in range(20)]) == 20


def test_batch_iterator_bad_input_errors(key):
    x, y = data.mock_cifar(10, key)
    with pytest.raises(ValueError, match="exceeds the 10 examples"):
        next(data.batch_iterator(x, y, 16, key))
    with pytest.raises(ValueError, match=r"labels must be \[N\] = \[10\]"):
        next(data.batch_iterator(x, y[:5], 4, key))
    with pytest.raises(ValueError, match="channels last"):
        next(data.batch_iterator(x.transpose(0, 3, 1, 2), y, 4, key))
    with pytest.raises(ValueError, match="uint8 .* or float"):
        next(data.batch_iterator(x.astype(np.int64), y, 4, key))
    with pytest.raises(ValueError, match="labels must be integers"):
        next(data.batch_iterator(x, y.astype(np.float32), 4, key))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batch_iterator(x, y, 0, key))
    with pytest.raises(ValueError, match=rf"labels span \[{y.min()}, {y.max()}\] but num_classes=5"):
        data.validate_batch(x, y, num_classes=5)


def test_prefetch_to_device_and_sharding(key):
    x, y = data.mock_cifar(32, key)
    host = list(data.batch_iterator(x, y, 8, key, epochs=1))
    dev = list(data.prefetch_to_device(data.batch_iterator(x, y, 8, key, epochs=1), size=2))
    assert len(dev) == len(host) == 4
    for (a, b), (c, d) in zip(host, dev):
        assert isinstance(c, jax.Array)
        np.testing.assert_array_equal(a, np.asarray(c))
        np.testing.assert_array_equal(b, np.asarray(d))
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    first = next(data.prefetch_to_device(data.batch_iterator(x, y, 8, key), sharding=sh))
    assert first[0].sharding == sh
    assert len(first[0].addressable_shards) == len(jax.devices())


def test_mock_cifar_deterministic_and_learnable(key):
    x, y = data.mock_cifar(200, key, num_classes=4)
    x2, y2 = data.mock_cifar(200, key, num_classes=4)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.dtype == np.uint8 and y.dtype == np.int32 and set(y.tolist()) == {0, 1, 2, 3}
    # Class means are separable: nearest-class-mean on mean colour is near perfect.
    feats = x.reshape(200, -1, 3).mean(1)
    means = np.stack([feats[y == c].mean(0) for c in range(4)])
    pred = np.argmin(((feats[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.9
