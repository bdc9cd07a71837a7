"""Pod addresses for the testbed: a private range made local to this machine.

The API server refuses loopback and link-local addresses in EndpointSlices, so pods get addresses
in the benchmarking range 198.18.0.0/15 (RFC 2544), which is never routed on real networks. One
`local` route makes every address of the range bindable and reachable here, like 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
import subprocess

from serving_conformance.base import proc

POD_RANGE = ipaddress.ip_network("198.18.0.0/16")


class NetworkError(RuntimeError):
    pass


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    result = proc.attempt(["ip", *args], timeout=30)
    if result.returncode == 127:
        raise NetworkError("the `ip` command (iproute2) is needed to give simulated pods addresses")
    return result


def route_present() -> bool:
    listing = _ip("route", "show", "table", "local", "type", "local", str(POD_RANGE)).stdout
    return str(POD_RANGE) in listing


def add_pod_route() -> bool:
    """Make the pod range local; True when this call added it (and so must remove it)."""
    if route_present():
        return False
    result = _ip("route", "add", "local", str(POD_RANGE), "dev", "lo", "table", "local")
    if result.returncode != 0:
        raise NetworkError(
            f"cannot add the local route for pod addresses {POD_RANGE} ({result.stderr.strip()}): "
            "the testbed needs CAP_NET_ADMIN (run as root)"
        )
    return True


def remove_pod_route() -> None:
    if route_present():
        _ip("route", "del", "local", str(POD_RANGE), "dev", "lo", "table", "local")


def node_cidr(index: int) -> str:
    """The podCIDR of the index-th simulated node: 198.18.<index+1>.0/24."""
    return str(list(POD_RANGE.subnets(new_prefix=24))[index + 1])
