"""``benchmark fetch-checkpoint`` against a local HTTP server: progress, resume after a cut, hash check."""

import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest

from benchmark.errors import CheckpointError
from benchmark.models import fetch, zoo
from benchmark.models.zoo import REPO_ROOT

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB: several chunks
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:8]


class _Server(http.server.ThreadingHTTPServer):
    payload = PAYLOAD
    cut_after: int | None = None  # close the connection after this many body bytes (once)
    honour_range = True
    requests: list

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.requests.append(self.headers.get("Range"))
        start = 0
        if server.honour_range and self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(server.payload):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
        else:
            self.send_response(200)
        body = server.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def entry(server, tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{server.server_address[1]}/m_20200617-{PREFIX}.pth"
    entry = zoo.ModelEntry(name="m", config="c.py", dataset="voc2012", checkpoint=str(tmp_path / "ck" / "m.pth"),
                           url=url)
    monkeypatch.setattr(fetch, "get_model_entry", lambda name: entry)
    return entry


def test_interrupted_download_keeps_a_partial_file_and_resumes_with_a_range(server, entry):
    server.cut_after = 700_000
    with pytest.raises(CheckpointError, match=r"0\.7 MB kept in .*m\.pth\.part, run the command again to resume"):
        fetch.fetch_checkpoint("m")
    assert not entry.checkpoint_path.exists()
    seen = []
    path, digest = fetch.fetch_checkpoint("m", progress=lambda done, total: seen.append((done, total)))
    assert server.requests == [None, "bytes=700000-"]
    assert path.read_bytes() == PAYLOAD and digest == hashlib.sha256(PAYLOAD).hexdigest()
    assert seen[0][0] > 700_000 and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not path.with_name("m.pth.part").exists()


def test_a_server_that_ignores_the_range_restarts_the_download(server, entry):
    server.cut_after, server.honour_range = 500_000, False
    with pytest.raises(CheckpointError, match="resume"):
        fetch.fetch_checkpoint("m")
    path, _ = fetch.fetch_checkpoint("m")
    assert path.read_bytes() == PAYLOAD


def test_a_complete_partial_file_is_verified_without_downloading_again(server, entry):
    entry.checkpoint_path.parent.mkdir(parents=True)
    entry.checkpoint_path.with_name("m.pth.part").write_bytes(PAYLOAD)
    path, _ = fetch.fetch_checkpoint("m")
    assert path.read_bytes() == PAYLOAD and server.requests == [f"bytes={len(PAYLOAD)}-"]


def test_a_tampered_download_is_not_stored(server, entry):
    server.payload = PAYLOAD[:-1] + b"x"
    with pytest.raises(CheckpointError, match=f"expected {PREFIX}; not stored"):
        fetch.fetch_checkpoint("m")
    assert list(entry.checkpoint_path.parent.iterdir()) == []


def test_cli_shows_progress_and_stores_the_file(server, tmp_path):
    url = f"http://127.0.0.1:{server.server_address[1]}/m_20200617-{PREFIX}.pth"
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "m.yaml").write_text(f"served:\n  config: c.py\n  dataset: voc2012\n  checkpoint: {tmp_path / 'm.pth'}\n"
                                   f"  url: {url}\n")
    result = subprocess.run([sys.executable, "-m", "benchmark.cli", "fetch-checkpoint", "served"],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                            env={**os.environ, "BENCHMARK_MODEL_ZOO": str(folder)})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == "served: 2.1 / 2.1 MB (100%)" and len(lines) >= 2  # a line per 10 %, not per chunk
    assert result.stdout.startswith(f"stored {tmp_path / 'm.pth'} (sha256 {hashlib.sha256(PAYLOAD).hexdigest()})")
    assert (tmp_path / "m.pth").read_bytes() == PAYLOAD
