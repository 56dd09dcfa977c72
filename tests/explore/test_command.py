"""``senclip explore`` as a command: start-up, the URL, the --host warning, Ctrl-C, one-line errors."""

from __future__ import annotations

import httpx
import pytest
from explore_helpers import ServerProcess

from senclip.cli import main


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_serves_warns_off_loopback_stops_on_ctrl_c_and_writes_nothing(made):
    before = listing(made.root)
    server = ServerProcess(made.map, "--composite", made.scene, "--host", "0.0.0.0")
    port = server.url.rsplit(":", 1)[1].strip("/")
    try:
        info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=30).json()
        assert info["title"] == "map.tif" and "composite" in info["layers"]
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).text.startswith("<!doctype html>")
        foreign = httpx.get(f"http://127.0.0.1:{port}/api/info", headers={"host": "attacker.example"},
                            timeout=30)
        assert foreign.status_code == 400  # the Host check stays on off loopback
    finally:
        status, err = server.stop()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert status == 0, err
    assert lines[0].startswith("warning: listening on 0.0.0.0") and len(lines) == 2, lines
    assert lines[1] == "senclip explore: stopped"
    assert server.url == f"http://127.0.0.1:{port}/"  # what a browser here opens
    assert f"listening on 0.0.0.0:{port}" in server.first_line
    assert listing(made.root) == before  # no lock, no .aux.xml, nothing


@pytest.mark.parametrize(("argv", "words"), [
    (["missing.tif"], "file not found"),
    (["{scene}"], "one uint8 band"),
    (["{map}", "--composite", "{map}"], "red, green and blue"),
    (["{map}", "--basemap", "tiles.example.org/{{z}}"], "--basemap"),
    (["{map}", "--embeddings", "{scene}"], "not a `senclip embed` GeoParquet file"),
    (["{root}/nothing"], "file not found"),
])
def test_bad_input_is_one_line(made, capsys, argv, words):
    argv = [a.format(scene=made.scene, map=made.map, root=made.root) for a in argv]
    assert main(["explore", *argv, "--no-browser", "--port", "0"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err


def test_a_port_in_use_is_one_line_before_anything_loads(made, capsys):
    """The port is taken first: a port in use is said at once, before the model (here one that does
    not exist, which would otherwise be the error) and the legend's areas are loaded."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", str(made.map), "--embeddings", str(made.tiles), "--model", "no-such-model",
                     "--no-browser", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "\n" not in err


def test_help_names_the_endpoints_document(capsys):
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    out = capsys.readouterr().out
    assert "docs/explore.md" in out and "--basemap" in out and "--no-browser" in out


def test_the_socket_says_it_is_tcp():
    """asyncio disables Nagle's algorithm only on sockets whose protocol is IPPROTO_TCP; without it each
    response waited for the client's delayed ACK (48 ms a request instead of 2 to 7 here)."""
    import socket

    from senclip.explore.server import bind

    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
