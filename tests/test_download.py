"""Download: pinned sha256, atomic cache, corrupt/truncated files, served from 127.0.0.1."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from jnas import download
from jnas.download import DownloadError, FILES, fetch

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
def server(data_dir, monkeypatch):
    """Serves good, corrupted and truncated copies of NAME on 127.0.0.1 (loopback only)."""
    monkeypatch.delenv("JNAS_DATA_DIR", raising=False)
    good = (data_dir / FILES[NAME].relpath).read_bytes()
    bad = bytearray(good)
    bad[100] ^= 0xFF
    _Handler.files = {"/good": good, "/corrupt": bytes(bad), "/short": good[: len(good) // 2],
                      "/cut": good[: len(good) // 2]}
    _Handler.lie_length = {"/cut"}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", good
    httpd.shutdown()
    httpd.server_close()


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
