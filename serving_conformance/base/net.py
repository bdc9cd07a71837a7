"""Ports and the addresses the suite may bind or reach: loopback, and the testbed's pod range."""

from __future__ import annotations

import ipaddress
import socket

# Addresses local to this machine: loopback, and the benchmarking range the testbed makes local
# for its pods (198.18.0.0/15, RFC 2544; never routed on real networks).
LOCAL_ONLY_RANGES = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("198.18.0.0/15"))


def is_local_address(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or any(address in net for net in LOCAL_ONLY_RANGES)


def require_local_address(host: str, what: str) -> None:
    """Refuse an address reachable from outside this machine."""
    if not is_local_address(host):
        raise ValueError(f"{what} must be a loopback or testbed pod address, not {host!r}")


def require_loopback(host: str, what: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{what} must be a loopback address, not {host!r}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (held together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def port_free(host: str, port: int) -> OSError | None:
    """None when `port` can be bound on `host`, else why not."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers' own listeners do
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
