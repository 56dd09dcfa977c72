"""Retry policy and the loopback Range server used by the acquisition tests."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from senclip.errors import SenclipError
from senclip.net import RemoteError, RetryPolicy, gdal_env, is_remote, is_transient, retry_call
from senclip.testing import RangeServer


def test_retry_call_retries_transient_then_succeeds():
    calls, waits = [], []

    def flaky(attempt):
        calls.append(attempt)
        if attempt < 3:
            raise OSError("HTTP response code: 503")
        return "done"

    assert retry_call(flaky, RetryPolicy(attempts=4, backoff=0.5), sleep=waits.append) == "done"
    assert calls == [1, 2, 3]
    assert len(waits) == 2 and 0.4 <= waits[0] <= 0.6 and 0.8 <= waits[1] <= 1.2  # doubling backoff


def test_retry_call_gives_up_after_attempts_and_reports():
    calls = []

    def down(attempt):
        calls.append(attempt)
        raise TimeoutError("timed out")

    with pytest.raises(RemoteError, match="after 3 tries: timed out"):
        retry_call(down, RetryPolicy(attempts=3), what="x", sleep=lambda s: None)
    assert calls == [1, 2, 3]


def test_retry_call_does_not_retry_404_or_user_errors():
    calls = []

    def missing(attempt):
        calls.append(attempt)
        raise OSError("HTTP response code: 404")

    with pytest.raises(RemoteError):
        retry_call(missing, RetryPolicy(attempts=4), sleep=lambda s: None)
    assert calls == [1]
    assert not is_transient(SenclipError("bad band"))
    assert is_transient(OSError("Read failed. See previous exception for details."))


def test_retry_call_lets_bugs_and_user_errors_through_unchanged():
    """Only I/O, HTTP and GDAL failures become RemoteError (a block 'failed', retried by a rerun); a bug
    inside a remote operation surfaces at once as itself."""
    import rasterio.errors
    from pystac_client.exceptions import APIError

    for error in (TypeError("bad argument"), KeyError("B04"), AttributeError("x"), SenclipError("no band")):
        calls = []

        def buggy(attempt, error=error, calls=calls):
            calls.append(attempt)
            raise error

        with pytest.raises(type(error)) as info:
            retry_call(buggy, RetryPolicy(attempts=3), sleep=lambda s: None)
        assert info.value is error and calls == [1]
    for error in (OSError("disk"), rasterio.errors.RasterioIOError("HTTP response code: 503"),
                  APIError("503 Service Unavailable"), __import__("json").JSONDecodeError("x", "", 0)):
        assert is_remote(error)
    assert not is_remote(ValueError("a bug")) and not is_remote(ZeroDivisionError())

    def unavailable(attempt):
        raise rasterio.errors.RasterioIOError("HTTP response code: 503")

    with pytest.raises(RemoteError, match="after 2 tries"):
        retry_call(unavailable, RetryPolicy(attempts=2), sleep=lambda s: None)


def test_policy_validation_and_gdal_env():
    with pytest.raises(SenclipError):
        RetryPolicy(attempts=0)
    env = gdal_env(RetryPolicy(timeout=7))
    assert env["GDAL_HTTP_MAX_RETRY"] == "0" and env["GDAL_HTTP_TIMEOUT"] == "7"
    assert "CPL_VSIL_CURL_NON_CACHED" not in env
    assert (
        gdal_env(RetryPolicy(), retry_of="http://h/x.tif?sig=1")["CPL_VSIL_CURL_NON_CACHED"]
        == "/vsicurl/http://h/x.tif"
    )


def _get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def test_range_server_ranges_and_faults(tmp_path):
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 4)
    with RangeServer(tmp_path) as srv:
        status, headers, body = _get(srv.url("f.bin"), {"Range": "bytes=10-19"})
        assert (
            status == 206 and body == bytes(range(10, 20)) and headers["Content-Range"] == "bytes 10-19/1024"
        )
        assert _get(srv.url("f.bin"), {"Range": "bytes=-4"})[2] == bytes(range(252, 256))
        assert _get(srv.url("f.bin"))[2] == bytes(range(256)) * 4
        srv.faults.add("f.bin", "503", times=1)
        with pytest.raises(urllib.error.HTTPError, match="503"):
            _get(srv.url("f.bin"))
        assert _get(srv.url("f.bin"))[0] == 200  # the fault was used up
        srv.faults.add("f.bin", "truncate", times=1)
        with pytest.raises(Exception):  # noqa: B017 - IncompleteRead from http.client
            _get(srv.url("f.bin"))
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(srv.url("missing.bin"))
        assert srv.requests["/f.bin"] == 6 and srv.bytes_sent["/f.bin"] == 10 + 4 + 1024 + 0 + 1024 + 512


def test_range_server_process_control(tmp_path):
    from senclip.testing import RangeServerProcess

    (tmp_path / "f.bin").write_bytes(b"x" * 100)
    with RangeServerProcess(tmp_path) as srv:
        srv.faults.add("f.bin", "503", times=1)
        with pytest.raises(urllib.error.HTTPError, match="503"):
            _get(srv.url("f.bin"))
        assert _get(srv.url("f.bin"), {"Range": "bytes=0-9"})[2] == b"x" * 10
        assert srv.requests["/f.bin"] == 2 and srv.bytes_sent["/f.bin"] == 10
        srv.reset_stats()
        assert srv.requests["/f.bin"] == 0
        proc = srv.proc
    assert proc.poll() is not None  # the server process ended
