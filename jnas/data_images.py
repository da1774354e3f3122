"""Image sources: folders and zips of JPEGs, tensorflow-datasets, user arrays; their checks.

All loaders return ``(images uint8[N, H, W, 3], labels int32[N])``:

* an image folder ``<root>/<split>/<class>/*.jpg`` or the same tree inside a ``.zip``
  (:func:`load_image_folder`); class folders sorted alphabetically give labels ``0..K-1``;
  decoded arrays are cached as ``.npy`` under ``$JNAS_CACHE_DIR`` (default ``~/.cache/jnas``);
* CIFAR-10/100 (Krizhevsky 2009): the pinned JPEG zips of ``$JNAS_DATA_DIR`` (verified
  against their content digest, :func:`jnas.download.verify_local`) or tensorflow-datasets
  (:func:`load_tfds`, :func:`load_cifar10`, :func:`load_cifar100`), with GPUs hidden from
  TensorFlow so it never grabs JAX's memory;
* user arrays in an ``.npz`` file (:func:`load_arrays`).

Re-exported by :mod:`jnas.data`.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import itertools
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from jnas import download
from jnas.report import write_json

__all__ = ["IMAGE_EXTENSIONS", "cache_dir", "list_classes", "load_image_folder", "load_tfds",
           "load_cifar10", "load_cifar100", "load_arrays", "validate_batch", "decode_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """The jnas cache folder: ``$JNAS_CACHE_DIR`` or ``~/.cache/jnas`` (a local derivative)."""
    return download.cache_dir()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- image folders

class _Listing:
    """The image files of one split: ``classes`` and ``(class_index, member)`` in load order."""

    def __init__(self, classes: list[str], files: list[tuple[int, str]], fingerprint: str):
        self.classes, self.files, self.fingerprint = classes, files, fingerprint


def _is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _group(entries: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, list[str]]]:
    """``(split, class, member)`` triples -> ``{split: {class: [member, ...]}}``."""
    tree: dict[str, dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    for split, cls, member in entries:
        tree[split][cls]  # noqa: B018 - registers class folders even when empty
        if member:
            tree[split][cls].append(member)
    return tree


def _zip_tree(zf: zipfile.ZipFile) -> dict[str, dict[str, list[str]]]:
    entries = []
    for name in zf.namelist():
        parts = name.rstrip("/").split("/")
        if len(parts) == 2 and name.endswith("/"):          # an (empty?) class folder
            entries.append((parts[0], parts[1], ""))
        elif len(parts) == 3 and _is_image(name):
            entries.append((parts[0], parts[1], name))
    return _group(entries)


def _folder_tree(root: Path) -> dict[str, dict[str, list[str]]]:
    entries = []
    for split_dir in root.iterdir():
        if not split_dir.is_dir():
            continue
        for cls_dir in split_dir.iterdir():
            if not cls_dir.is_dir():
                continue
            entries.append((split_dir.name, cls_dir.name, ""))
            entries += [(split_dir.name, cls_dir.name, str(p)) for p in cls_dir.iterdir()
                        if p.is_file() and _is_image(p.name)]
    return _group(entries)


def _listing(path: Path, split: str, max_per_class: int | None = None) -> _Listing:
    """Classes and files of ``split`` in ``path`` (zip or folder), with clear errors."""
    if not path.exists():
        raise FileNotFoundError(
            f"image data not found: {path} does not exist. Pass the folder or .zip holding "
            f"'train/<class>/*.jpg' and 'test/<class>/*.jpg' (e.g. "
            f"$JNAS_DATA_DIR/cifar10/cifar10-jpg.zip).")
    is_zip = path.is_file()
    if is_zip:
        try:
            with zipfile.ZipFile(path) as zf:
                tree = _zip_tree(zf)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{path} is not a readable .zip file ({e}); re-download it or "
                             f"pass an image folder instead.") from None
    else:
        tree = _folder_tree(path)
    if split not in tree:
        raise ValueError(
            f"{path} has no split {split!r} (expected '{split}/<class>/<image>'); splits "
            f"found: {sorted(tree) or 'none'}. Use a source that holds the {split!r} split "
            f"(e.g. cifar10-jpg.zip has train and test, cifar10-train-jpg.zip only train).")
    classes = sorted(tree[split])
    empty = [c for c in classes if not tree[split][c]]
    if empty:
        raise ValueError(f"{path}: class folder(s) {empty} of split {split!r} hold no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); remove them or add images.")
    for other in ("train", "test", "val", "valid"):
        if other != split and other in tree and sorted(tree[other]) != classes:
            raise ValueError(
                f"{path}: splits {split!r} and {other!r} have different class folders "
                f"({classes} vs {sorted(tree[other])}), so labels would not agree between them.")
    files = [(label, m) for label, c in enumerate(classes)
             for m in sorted(tree[split][c])[:max_per_class]]
    h = hashlib.sha256(f"v{_CACHE_VERSION}|{path.resolve()}|{split}|{max_per_class}".encode())
    if is_zip:
        st = path.stat()
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for _, m in files:
            st = os.stat(m)
            h.update(f"|{m}|{st.st_size}|{st.st_mtime_ns}".encode())
    return _Listing(classes, files, h.hexdigest()[:20])


def decode_image(data: bytes, name: str, size: tuple[int, int] | None) -> np.ndarray:
    """One encoded image -> uint8[H, W, 3] (RGB); ``ValueError`` if corrupt or not ``size``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # PIL raises several types for corrupt files
        raise ValueError(f"cannot decode image {name}: {e}. Remove or replace the file.") from None
    if size is not None and arr.shape[:2] != tuple(size):
        raise ValueError(f"image {name} is {arr.shape[1]}x{arr.shape[0]} (WxH) but "
                         f"{size[1]}x{size[0]} is expected; resize the data set or pass "
                         f"image_size=None / the right size.")
    return arr


def _decode_all(path: Path, listing: _Listing, size: tuple[int, int] | None,
                workers: int | None) -> np.ndarray:
    """Read the files (sequentially) and decode them with PIL in a thread pool."""
    names = [m for _, m in listing.files]
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                blobs = [zf.read(m) for m in names]
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise ValueError(f"{path} is a corrupted .zip ({e}); re-download it (`jnas "
                             f"download {path.name}`) or pass an image folder instead.") from None
    else:
        blobs = [Path(m).read_bytes() for m in names]
    workers = workers or min(8, os.cpu_count() or 1)
    chunk = max(1, len(blobs) // (4 * workers))

    def work(lo: int) -> list[np.ndarray]:
        return [decode_image(b, n, size)
                for b, n in zip(blobs[lo:lo + chunk], names[lo:lo + chunk])]

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(work, range(0, len(blobs), chunk)))
    arrays = list(itertools.chain.from_iterable(parts))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{path}: images of split have different sizes {sorted(shapes)[:4]}; "
                         f"pass image_size=(H, W) to name the expected size.")
    return np.stack(arrays)


def list_classes(path: str | Path, split: str = "train") -> list[str]:
    """The class names of ``split`` in an image folder or zip, in label order (sorted)."""
    return _listing(Path(path).expanduser(), split).classes


def load_image_folder(path: str | Path, split: str = "train", *,
                      image_size: tuple[int, int] | None = (32, 32),
                      max_per_class: int | None = None, cache: bool = True,
                      workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``<path>/<split>/<class>/<image>`` from a folder or a ``.zip``.

    Class folders sorted alphabetically are labels ``0..K-1``; images are in (class, file
    name) order, so the result is deterministic. Decoded arrays are cached as ``.npy`` under
    :func:`cache_dir` keyed by the source's path, size and modification time (per-file for a
    folder), so the second load does not decode again.

    Args:
      path: folder or ``.zip`` (e.g. ``$JNAS_DATA_DIR/cifar10/cifar10-jpg.zip``).
      split: sub-folder name, usually ``'train'`` or ``'test'``.
      image_size: expected ``(H, W)``; any other size is an error. ``None``: any common size.
      max_per_class: keep only the first k files (by name) of each class (quick runs).
      cache: read/write the decoded cache.
      workers: decoding threads (default ``min(8, cpu_count)``).

    Returns:
      ``(images uint8[N, H, W, 3], labels int32[N])``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: no such split, an empty class folder, a corrupt or wrong-size image.
    """
    path = Path(path).expanduser()
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a folder name such as 'train' or 'test', got {split!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}")
    listing = _listing(path, split, max_per_class)
    labels = np.asarray([lab for lab, _ in listing.files], dtype=np.int32)
    stem = cache_dir() / "images" / f"{path.stem}-{split}-{listing.fingerprint}"
    # (max_per_class is part of the fingerprint)
    img_file = stem.with_name(stem.name + ".images.npy")
    if cache and img_file.exists():
        images = np.load(img_file)
        if len(images) == len(labels) and (image_size is None
                                           or images.shape[1:3] == tuple(image_size)):
            return images, labels
    images = _decode_all(path, listing, image_size, workers)
    if cache:
        _save_npy_atomic(img_file, images)
        meta = {"source": str(path.resolve()), "split": split, "classes": listing.classes,
                "n": int(len(labels))}
        write_json(stem.with_name(stem.name + ".json"), meta)
    return images, labels


# ----------------------------------------------------------------------------- tfds / arrays

def _hide_gpus_from_tf() -> None:
    """Keep TensorFlow (used by tfds) off the GPUs so it does not take JAX's memory."""
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError:
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised: devices can no longer change
        pass


def load_tfds(name: str, split: str = "train", data_dir: str | Path | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Loads a tensorflow-datasets image classification set as numpy arrays.

    Args:
      name: tfds name, e.g. ``'cifar10'`` or ``'cifar100'``.
      split: tfds split, e.g. ``'train'``, ``'test'``.
      data_dir: tfds data folder (default: tfds' own).

    Returns:
      ``(images uint8[N, H, W, C], labels int32[N])``.
    """
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415
    except ImportError as e:
        raise ImportError("tensorflow-datasets is needed for source='tfds': "
                          "pip install tensorflow-datasets tensorflow (or use the image "
                          "zip).") from e
    _hide_gpus_from_tf()
    try:
        ds = tfds.load(name, split=split, batch_size=-1, as_supervised=True,
                       data_dir=None if data_dir is None else str(data_dir))
        images, labels = tfds.as_numpy(ds)
    except Exception as e:
        raise RuntimeError(
            f"tensorflow-datasets could not load {name!r} split {split!r} ({type(e).__name__}: "
            f"{e}). It needs network access (or a prepared data_dir) and tensorflow; offline, "
            f"use an image folder/zip, e.g. "
            f"load_cifar10('<JNAS_DATA_DIR>/cifar10/cifar10-jpg.zip').") from e
    return _check_arrays(np.asarray(images), np.asarray(labels), f"tfds {name}:{split}")


def load_cifar10(source: str | Path = "auto", split: str = "train",
                 data_dir: str | Path | None = None, max_per_class: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 (Krizhevsky 2009) as ``(uint8[N,32,32,3], int32[N])``.

    Args:
      source: ``'auto'`` (the zip ``<data_dir or $JNAS_DATA_DIR>/cifar10/cifar10-jpg.zip`` if
        present, for ``split='train'`` also ``cifar10-train-jpg.zip``; else tfds), ``'tfds'``,
        or a path to an image folder / zip.
      split: ``'train'`` or ``'test'``.
      data_dir: where to look for the zip (``'auto'``) or tfds' data folder (``'tfds'``).
      max_per_class: keep only the first k images of each class (quick runs and tests).
    """
    source = str(source)
    if source == "auto":
        root = data_dir or os.environ.get("JNAS_DATA_DIR")
        if root:
            names = ["cifar10-jpg.zip"] + (["cifar10-train-jpg.zip"] if split == "train" else [])
            for n in names:
                p = Path(root).expanduser() / "cifar10" / n
                if p.exists():
                    download.verify_local(p, n)
                    return load_image_folder(p, split, max_per_class=max_per_class)
        return _first_per_class(*load_tfds("cifar10", split, None), max_per_class)
    if source == "tfds":
        return _first_per_class(*load_tfds("cifar10", split, data_dir), max_per_class)
    return load_image_folder(source, split, max_per_class=max_per_class)


def _first_per_class(images: np.ndarray, labels: np.ndarray, k: int | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    if k is None:
        return images, labels
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c in np.unique(labels)]))
    return images[keep], labels[keep]


def load_cifar100(source: str | Path = "tfds", split: str = "train",
                  data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 (fine labels) through tfds, or from an image folder / zip path."""
    if str(source) in ("tfds", "auto"):
        return load_tfds("cifar100", split, data_dir)
    return load_image_folder(source, split)


def load_arrays(npz_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """User arrays from an ``.npz`` with keys ``images``/``labels`` (or ``x``/``y``)."""
    p = Path(npz_path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"array file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        keys = set(z.files)
        for xk, yk in (("images", "labels"), ("image", "label"), ("x", "y")):
            if {xk, yk} <= keys:
                return _check_arrays(z[xk], z[yk], str(p))
    raise ValueError(f"{p} holds arrays {sorted(keys)}; expected 'images' and 'labels' "
                     f"(or 'x' and 'y'). Save with np.savez(path, images=..., labels=...).")


def _check_arrays(images: np.ndarray, labels: np.ndarray, what: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    validate_batch(images, labels, what=what)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images, labels.astype(np.int32)


# ----------------------------------------------------------------------------- checks

def validate_batch(images: Any, labels: Any = None, *, num_classes: int | None = None,
                   what: str = "batch") -> None:
    """Raises a ``ValueError`` naming the problem unless ``images`` is ``[N, H, W, C]`` (C 1 or
    3; uint8 or float) and ``labels`` an integer ``[N]`` array (in ``[0, num_classes)``)."""
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"{what}: images must be [N, H, W, C] with C in (1, 3) (channels "
                         f"last), got shape {shape}; transpose NCHW data with "
                         "x.transpose(0,2,3,1).")
    dt = np.dtype(images.dtype)
    if not (dt == np.uint8 or np.issubdtype(dt, np.floating)):
        raise ValueError(f"{what}: images must be uint8 (0..255) or float, got dtype {dt}.")
    if labels is None:
        return
    lshape = getattr(labels, "shape", None)
    if lshape is None or len(lshape) != 1 or lshape[0] != shape[0]:
        raise ValueError(f"{what}: labels must be [N] = [{shape[0]}] integer class ids, got "
                         f"shape {lshape} (one-hot labels: use labels.argmax(-1)).")
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise ValueError(f"{what}: labels must be integers, got dtype {labels.dtype}.")
    if num_classes is not None and lshape[0] and isinstance(labels, np.ndarray):
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{what}: labels span [{lo}, {hi}] but num_classes={num_classes}.")
