"""senclip.net.fetch: Range resume, verification, atomic rename, offline errors."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from senclip.errors import SenclipError
from senclip.net import OfflineError, RetryPolicy, cache_dir, fetch

DATA = bytes(range(256)) * 4096  # 1 MiB, not all-equal bytes
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()


def test_fetch_verifies_and_leaves_no_partial(http_server, tmp_path):
    http_server.files["/a.bin"] = DATA
    dest = fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, sha256=SHA, size=len(DATA),
                 progress=False)
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "a.bin.partial").exists()
    # an existing (verified) file is not fetched again
    fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False)
    assert len(http_server.requests_for("/a.bin")) == 1


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    http_server.files["/a.bin"] = DATA
    http_server.faults.add("/a.bin", "truncate", after=300_000)  # first transfer dies after 300 kB
    dest = fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False)
    assert hashlib.md5(dest.read_bytes()).hexdigest() == MD5
    log = http_server.requests_for("/a.bin")
    assert len(log) == 2
    assert log[0][1] is None and log[0][2] == 300_000
    start = int(log[1][1].split("=")[1].rstrip("-"))
    assert 0 < start <= 300_000  # resumed, not restarted
    assert log[1][2] == len(DATA) - start


def test_interrupted_run_is_resumed_by_the_next_run(http_server, tmp_path):
    http_server.files["/a.bin"] = DATA
    http_server.faults.add("/a.bin", "truncate", after=500_000)
    with pytest.raises(SenclipError, match="run again to resume"):
        fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False,
              policy=RetryPolicy(attempts=1))
    partial = tmp_path / "a.bin.partial"
    assert not (tmp_path / "a.bin").exists()
    kept = partial.stat().st_size
    assert 0 < kept <= 500_000
    fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == DATA
    # handler threads may log out of order: look for the resuming request, not the last entry
    assert (("/a.bin", f"bytes={kept}-", len(DATA) - kept) in http_server.requests_for("/a.bin"))


def test_complete_partial_gets_416_and_is_accepted(http_server, tmp_path):
    http_server.files["/a.bin"] = DATA
    (tmp_path / "a.bin.partial").write_bytes(DATA)
    fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert http_server.requests_for("/a.bin")[0][2] == 0


def test_checksum_mismatch_removes_the_file(http_server, tmp_path):
    bad = bytearray(DATA)
    bad[1234] ^= 0xFF
    http_server.files["/a.bin"] = bytes(bad)
    with pytest.raises(SenclipError, match=r"checksum mismatch for a\.bin: md5"):
        fetch(http_server.url("/a.bin"), tmp_path / "a.bin", md5=MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_one_line(http_server, tmp_path):
    with pytest.raises(SenclipError, match="HTTP 404") as info:
        fetch(http_server.url("/missing.bin"), tmp_path / "m.bin", progress=False)
    assert "\n" not in str(info.value)


def test_refused_connection_fails_fast_naming_the_cache(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(OfflineError, match=r"cannot reach 127\.0\.0\.1") as info:
        fetch(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", progress=False,
              offline_hint="; offline, pass --pretrained /path/to/file")
    assert time.perf_counter() - t0 < 5
    assert str(tmp_path / "x.bin") in str(info.value) and "--pretrained /path/to/file" in str(info.value)


def test_offline_switches(http_server, tmp_path, monkeypatch):
    http_server.files["/a.bin"] = DATA
    monkeypatch.setenv("SENCLIP_OFFLINE", "1")
    with pytest.raises(OfflineError, match="SENCLIP_OFFLINE=1 forbids"):
        fetch(http_server.url("/a.bin"), tmp_path / "a.bin", progress=False)
    monkeypatch.delenv("SENCLIP_OFFLINE")
    # HF_HUB_OFFLINE (set by the test guard) only concerns Hugging Face hosts ...
    fetch(http_server.url("/a.bin"), tmp_path / "a.bin", progress=False)
    # ... including a Hub endpoint redirected with HF_ENDPOINT
    monkeypatch.setenv("HF_ENDPOINT", http_server.url(""))
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1"):
        fetch(http_server.url("/a.bin"), tmp_path / "b.bin", progress=False)
    assert len(http_server.log) == 1


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SENCLIP_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "senclip")
