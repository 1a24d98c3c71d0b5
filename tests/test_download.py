"""genlab.download against a local HTTP server: checksums, atomic placement, errors for people."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading

import pytest

from genlab.download import download
from genlab.errors import DataError

PAYLOAD = b"genlab test payload\n" * 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of an HTTP server on 127.0.0.1 serving a folder holding ``payload.bin``."""
    root = tmp_path_factory.mktemp("served")
    (root / "payload.bin").write_bytes(PAYLOAD)

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_with_good_checksums(server, tmp_path):
    target = tmp_path / "sub" / "payload.bin"
    md5, sha256 = hashlib.md5(PAYLOAD).hexdigest(), hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{server}/payload.bin", target, md5=md5) == target
    assert target.read_bytes() == PAYLOAD
    download(f"{server}/payload.bin", target, sha256=sha256.upper(), md5=md5)  # hex in either case; replaces the file
    assert target.read_bytes() == PAYLOAD and list(target.parent.iterdir()) == [target]


def test_bad_checksum_raises_and_leaves_no_file(server, tmp_path):
    target = tmp_path / "payload.bin"
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{64}, not the expected 0{64}.*not kept"):
        download(f"{server}/payload.bin", target, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary part


def test_unreachable_url_raises_data_error_and_leaves_no_file(server, tmp_path):
    with pytest.raises(DataError, match="could not download .*missing.bin.*HTTPError"):
        download(f"{server}/missing.bin", tmp_path / "missing.bin")
    with socket.socket() as s:  # a port nobody listens on: what being offline looks like to urllib
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=f"could not download http://127.0.0.1:{port}/x"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout_s=5)
    assert list(tmp_path.iterdir()) == []


def test_download_reads_file_urls(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    target = download(source.as_uri(), tmp_path / "copy.bin", md5=hashlib.md5(PAYLOAD).hexdigest())
    assert target.read_bytes() == PAYLOAD
