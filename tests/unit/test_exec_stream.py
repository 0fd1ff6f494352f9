"""An exec's first output can arrive with the HTTP upgrade's headers: the SDK's buffered
response reader then holds it, and the socket alone would lose it (seen as an empty stdout
on a loaded engine). `_attached` hands those bytes over first."""

import socket
import struct
from types import SimpleNamespace

from pytest_axp.sandbox.docker import _attached, _recv_exact


def _frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def _docker_like(engine_sends: bytes):
    """A socket as the SDK returns it after `exec_start(socket=True)`: the response's
    buffered reader has read the headers, and whatever came with them."""
    ours, engine = socket.socketpair()
    engine.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: x\r\n\r\n" + engine_sends)
    reader = ours.makefile("rb")
    while reader.readline() not in (b"\r\n", b""):
        pass  # as http.client reads the headers: in chunks, past their end
    response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=reader)))
    return SimpleNamespace(_sock=ours, _response=response, close=ours.close), engine


def test_output_read_with_the_headers_is_not_lost():
    sock, engine = _docker_like(_frame(1, b"ran\n"))
    engine.sendall(_frame(2, b"late\n"))
    engine.close()
    raw = _attached(sock)
    assert _recv_exact(raw, 8) == bytes([1, 0, 0, 0]) + struct.pack(">I", 4)
    assert _recv_exact(raw, 4) == b"ran\n"
    assert _recv_exact(raw, 13) == _frame(2, b"late\n")
    assert _recv_exact(raw, 1) is None  # the stream's end, as before


def test_nothing_buffered_leaves_the_socket_as_it_is():
    sock, engine = _docker_like(b"")
    raw = _attached(sock)
    assert raw is sock._sock and raw.gettimeout() is None  # still blocking
    engine.sendall(_frame(1, b"x"))
    assert _recv_exact(raw, 9) == _frame(1, b"x")
    engine.close()
