"""Loaded by a child whose PYTHONPATH starts here: any network attempt off this machine is logged
to ``$VISIONYARD_TEST_NET_LOG`` and refused, so a test can prove a run made none."""

import os
import socket

_LOG = os.environ.get("VISIONYARD_TEST_NET_LOG")
_LOCAL = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0"}
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _refuse(what: str):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\n")
    raise OSError(f"network access refused by the test: {what}")


def _local(sock, address) -> bool:
    return sock.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in _LOCAL)


def connect(self, address):
    return _connect(self, address) if _local(self, address) else _refuse(f"connect {address}")


def connect_ex(self, address):
    return _connect_ex(self, address) if _local(self, address) else _refuse(f"connect {address}")


def getaddrinfo(host, *args, **kwargs):
    host_text = host.decode() if isinstance(host, bytes) else host
    return _getaddrinfo(host, *args, **kwargs) if host_text in _LOCAL else _refuse(f"resolve {host_text}")


if _LOG:
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
