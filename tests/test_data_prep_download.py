"""data_prep.download against a loopback HTTP server: resume with Range, checksums, the offline message."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from dataclasses import dataclass, field

import pytest
from helpers.data_prep import petimages_members, read_summary, zip_bytes

from catsdogs.config import CACHE_ENV
from catsdogs.errors import UserError
from data_prep import download
from data_prep.cli import main

ARCHIVE = zip_bytes(petimages_members(10))
ARCHIVE_SHA256 = hashlib.sha256(ARCHIVE).hexdigest()
NAME = "kagglecatsanddogs_5340.zip"


@dataclass
class Behaviour:
    """How the test server answers; ``requests`` records (Range header, status) per request."""

    payload: bytes = ARCHIVE
    cut_first_after: int | None = None  # drop the connection after this many body bytes, on the first request
    honour_range: bool = True
    requests: list[tuple[str | None, int]] = field(default_factory=list)


def make_handler(behaviour: Behaviour) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/{NAME}":
                self.send_error(404)
                return
            payload, start = behaviour.payload, 0
            requested = self.headers.get("Range")
            status = 200
            if requested and behaviour.honour_range:
                start = int(requested.removeprefix("bytes=").split("-")[0])
                if start >= len(payload):
                    behaviour.requests.append((requested, 416))
                    self.send_error(416)
                    return
                status = 206
            behaviour.requests.append((requested, status))
            body = payload[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.end_headers()
            if behaviour.cut_first_after is not None and len(behaviour.requests) == 1:
                self.wfile.write(body[: behaviour.cut_first_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def server():
    """Start a server for a Behaviour: ``url, behaviour = server(Behaviour(...))``."""
    started = []

    def start(behaviour: Behaviour) -> tuple[str, Behaviour]:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(behaviour))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/{NAME}", behaviour

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_interrupted_download_resumes_with_range_and_verifies(tmp_path, server):
    url, behaviour = server(Behaviour(cut_first_after=len(ARCHIVE) // 3))
    with pytest.raises(UserError, match="interrupted.*run the same command again to resume"):
        download.download_file(url, tmp_path, ARCHIVE_SHA256, attempts=1)
    part = tmp_path / f"{NAME}.part"
    assert part.stat().st_size == len(ARCHIVE) // 3
    assert not (tmp_path / NAME).exists()
    path = download.download_file(url, tmp_path, ARCHIVE_SHA256, attempts=1)
    assert path.read_bytes() == ARCHIVE and not part.exists()
    assert behaviour.requests == [(None, 200), (f"bytes={len(ARCHIVE) // 3}-", 206)]


def test_one_call_retries_and_resumes_by_itself(tmp_path, server):
    url, behaviour = server(Behaviour(cut_first_after=1000))
    path = download.download_file(url, tmp_path, ARCHIVE_SHA256, attempts=2, retry_wait=0)
    assert path.read_bytes() == ARCHIVE
    assert [status for _, status in behaviour.requests] == [200, 206]


def test_a_server_ignoring_range_restarts_from_zero(tmp_path, server):
    url, behaviour = server(Behaviour(cut_first_after=1000, honour_range=False))
    with pytest.raises(UserError, match="interrupted"):
        download.download_file(url, tmp_path, ARCHIVE_SHA256, attempts=1)
    path = download.download_file(url, tmp_path, ARCHIVE_SHA256, attempts=1)
    assert path.read_bytes() == ARCHIVE  # not the first 1000 bytes twice
    assert behaviour.requests == [(None, 200), ("bytes=1000-", 200)]


def test_a_complete_part_file_is_finished_without_downloading_again(tmp_path, server):
    url, behaviour = server(Behaviour())
    (tmp_path / f"{NAME}.part").write_bytes(ARCHIVE)
    assert download.download_file(url, tmp_path, ARCHIVE_SHA256).read_bytes() == ARCHIVE
    assert behaviour.requests == [(f"bytes={len(ARCHIVE)}-", 416)]


def test_wrong_checksum_deletes_the_part_and_says_so(tmp_path, server):
    url, _ = server(Behaviour())
    with pytest.raises(UserError, match=f"checksum mismatch.*{ARCHIVE_SHA256}.*expected {'0' * 64}.*deleted"):
        download.download_file(url, tmp_path, "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_not_a_petimages_archive_is_refused(tmp_path, server):
    other = zip_bytes({"docs/readme.txt": b"hello"})
    url, _ = server(Behaviour(payload=other))
    with pytest.raises(UserError, match="PetImages/Cat and PetImages/Dog"):
        download.download_file(url, tmp_path, hashlib.sha256(other).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_the_real_url_requires_full_class_counts(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(ARCHIVE)
    with pytest.raises(UserError, match="only 10 cat and 10 dog images"):
        download.check_petimages_archive(path, download.PETIMAGES_MIN_PER_CLASS)


def test_offline_is_a_one_line_message(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/{NAME}"
    with pytest.raises(UserError) as caught:
        download.download_file(url, tmp_path, ARCHIVE_SHA256, timeout=5)
    message = caught.value.worded()  # as the command says it
    assert message.startswith(f"could not download {url} (")
    assert message.endswith("download it in a browser and pass it with --source PATH") and "\n" not in message


def test_http_errors_are_user_errors(tmp_path, server):
    url, _ = server(Behaviour())
    with pytest.raises(UserError, match="could not download .*HTTP 404"):
        download.download_file(url.replace(NAME, "missing.zip"), tmp_path, None)


def test_cli_download_splits_and_reuses_the_cached_archive(tmp_path, server, monkeypatch, capsys):
    url, behaviour = server(Behaviour())
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    flags = ["--download", "--url", url, "--sha256", ARCHIVE_SHA256, "--train", "4", "--val", "2", "--test", "2",
             "--quiet"]
    with pytest.raises(SystemExit) as exited:
        main([*flags, "--out", str(tmp_path / "out")])
    assert exited.value.code == 0
    assert (tmp_path / "cache" / NAME).read_bytes() == ARCHIVE  # $CATSDOGS_CACHE honoured
    summary = read_summary(tmp_path / "out")
    assert summary["kind"] == "petimages-zip" and summary["download"]["url"] == url
    assert summary["counts"]["train"] == {"cats": 4, "dogs": 4}
    with pytest.raises(SystemExit) as exited:  # the second run finds the verified archive: no request
        main([*flags, "--out", str(tmp_path / "out2")])
    assert exited.value.code == 0 and len(behaviour.requests) == 1


def test_cli_offline_exits_2_with_one_line(tmp_path, capsys):
    url = f"http://127.0.0.1:{unused_port()}/{NAME}"
    with pytest.raises(SystemExit) as exited:
        main(["--download", "--url", url, "--download-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith(f"error: could not download {url} (") and err.count("\n") == 1


def test_default_download_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.default_download_dir() == tmp_path / ".cache" / "catsdogs"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert download.default_download_dir() == tmp_path / "elsewhere"


def test_cli_sha256_none_skips_the_checksum_but_not_the_layout(tmp_path, server, capsys):
    url, _ = server(Behaviour())
    with pytest.raises(SystemExit) as exited:
        main(["--download", "--url", url, "--sha256", "none", "--download-dir", str(tmp_path / "dl"),
              "--train", "4", "--val", "2", "--test", "2", "--quiet", "--out", str(tmp_path / "out")])
    assert exited.value.code == 0
    assert read_summary(tmp_path / "out")["download"]["sha256"] is None
