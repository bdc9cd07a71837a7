"""Every wait the suite does has a name and a default here, overridable in one place.

Override with `--timeout NAME=SECONDS` (repeatable) or the environment variable
`SERVING_CONFORMANCE_TIMEOUTS="NAME=SECONDS,NAME=SECONDS"`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Timeouts:
    cluster_create: float = 300
    api_reachable: float = 20
    # Any one Kubernetes API request (connect, and each read); a watch gets its own length more.
    api_request: float = 30
    crd_established: float = 60
    platform_install: float = 600
    controller_ready: float = 180
    deployment_rollout: float = 600
    isvc_ready: float = 900
    pod_created: float = 120
    # How long a negative control waits for KServe's documented failure (a Warning event).
    negative_control: float = 120
    # Absence checks (no VirtualService, no warning) must hold for this whole window.
    absence_window: float = 20
    gateway_programmed: float = 120
    # A route accepted in status can take a moment to be served by the gateway's data plane.
    route_converge: float = 30
    http_request: float = 60
    engine_start: float = 300
    engine_stop: float = 30
    namespace_deleted: float = 180
    # Preparing a machine for kind: Debian packages (apt-get), dockerd answering `docker info`
    # after its start, and a `docker` command on the engine (import, build, network, exec).
    package_install: float = 900
    container_engine_start: float = 90
    docker_command: float = 600
    # A new kind cluster: every node given a podCIDR, its CNI written and the node Ready.
    kind_nodes_ready: float = 240
    # From the start of teardown (end of the tests, Ctrl-C or SIGTERM) to done: removing the run's
    # objects gets what is left of it; stopping the testbed's processes is bounded by their own
    # grace periods (base/proc.py).
    teardown: float = 120

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def overridden(self, assignments: Iterable[str]) -> Timeouts:
        changes: dict[str, float] = {}
        for assignment in assignments:
            name, sep, value = assignment.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in self.names():
                raise ValueError(
                    f"bad timeout {assignment!r}: use NAME=SECONDS with NAME one of {', '.join(self.names())}"
                )
            try:
                seconds = float(value)
            except ValueError as exc:
                raise ValueError(f"bad timeout {assignment!r}: {value!r} is not a number of seconds") from exc
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"bad timeout {assignment!r}: give a finite number of seconds above 0")
            changes[name] = seconds
        return replace(self, **changes)


def from_environment_and(assignments: Iterable[str]) -> Timeouts:
    env = [a for a in os.environ.get("SERVING_CONFORMANCE_TIMEOUTS", "").split(",") if a.strip()]
    return Timeouts().overridden([*env, *assignments])
