"""Local vLLM servers for the workloads under test, started once per distinct command line.

Each vLLM container of the manifests runs with its own args and literal env; only the model
becomes the local tiny model and the host loopback. Values the manifest takes from Secrets (the
API key) are generated here and never printed. Servers with the same effective command line are
shared; all the servers a run needs are queued together and come up a few at a time on this
machine (see `Launcher`), in the order the tests need them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serving_conformance.base.redact import Secret
from serving_conformance.engine.server import Launcher, VllmServer, free_port
from serving_conformance.manifests.workloads import Container, Workload

API_KEY_ENV = "VLLM_API_KEY"


@dataclass(frozen=True)
class ServerSpec:
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    # Env names whose values come from Secrets in the manifest (generated locally).
    secret_env: tuple[str, ...]

    @classmethod
    def of(cls, container: Container) -> ServerSpec:
        literal = tuple(sorted((k, v) for k, v in container.env.items() if v is not None))
        from_secrets = tuple(sorted(k for k, v in container.env.items() if v is None))
        return cls(tuple(container.vllm_tokens), literal, from_secrets)


@dataclass
class LocalServer:
    server: VllmServer
    secret_values: dict[str, str] = field(repr=False)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def api_key(self) -> str | None:
        value = self.secret_values.get(API_KEY_ENV)
        return Secret(value) if value is not None else None


class EngineFleet:
    def __init__(
        self, python: Path, model_dir: Path, log_dir: Path, startup_timeout: float,
        progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.python = python
        self.model_dir = model_dir
        self.log_dir = log_dir
        self.startup_timeout = startup_timeout
        self.progress = progress
        self.servers: dict[ServerSpec, LocalServer] = {}
        self.launcher = Launcher()

    def launch(self, specs: Iterable[ServerSpec]) -> None:
        for spec in specs:
            if spec in self.servers:
                continue
            secret_values = {name: secrets.token_urlsafe(24) for name in spec.secret_env}
            index = len(self.servers)
            server = VllmServer(
                list(spec.args),
                model_dir=self.model_dir,
                python=self.python,
                port=free_port(),
                env={**dict(spec.env), **secret_values},
                log_path=self.log_dir / f"vllm-{index}.log",
                startup_timeout=self.startup_timeout,
            )
            self.servers[spec] = LocalServer(self.launcher.submit(server), secret_values)
            self.progress(f"queued local vLLM #{index} ({' '.join(spec.args)}), log {server.log_path}")

    def server_for(self, workload: Workload) -> LocalServer:
        container = workload.serving_container
        if container is None:
            raise ValueError(f"{workload.label} has no vLLM container")
        spec = ServerSpec.of(container)
        self.launch([spec])
        local = self.servers[spec]
        if local.server.startup_seconds is None:
            self.progress(f"waiting for local vLLM for {workload.label} (/health)")
            local.server.wait_ready()
            self.progress(
                f"local vLLM for {workload.label} ready in {local.server.startup_seconds:.0f}s "
                f"(after {local.server.queued_seconds:.0f}s waiting for a start slot)"
            )
        return local

    def stop(self) -> None:
        """Stop every server; a later request launches its server again."""
        for local in self.servers.values():
            local.server.stop()
        self.servers.clear()

    def close(self) -> None:
        """Stop every server and the launcher's threads."""
        self.stop()
        self.launcher.close()
