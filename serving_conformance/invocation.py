"""The command line as typed: `pytest -m static --manifests-dir ../platform` means what it says,
from the checkout, an empty directory, a subdirectory or a platform repository with its own
pytest configuration.

pytest decides its rootdir and ini file before any plugin's options exist, so the value of
`--manifests-dir ../platform` (space form) is taken for a test path: the rootdir moves to the
manifests' directory, the checkout's configuration is lost, and pytest collects whatever is
where it started (pytest-dev/pytest#8846, a known limitation). Once the plugin's options are
known, the rootdir and ini file are decided again from the real test paths, and a run that names
manifests but no test path collects the shipped conformance suite (not the testpaths of the
repository it runs in).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from _pytest.config import findpaths

from serving_conformance.base.data import SUITE

# Options whose value alone says the run is a conformance run.
CONFORMANCE_OPTIONS = ("manifests_dir", "conformance_options")


def correct(config: pytest.Config, args: list[str]) -> None:
    """Called before the initial conftests load: fix the rootdir and the test paths."""
    namespace = config.known_args_namespace
    _refuse_empty(namespace)
    real_args = [str(a) for a in namespace.file_or_dir]
    _decide_root_again(config, args, real_args)
    if real_args or not any(getattr(namespace, name, None) for name in CONFORMANCE_OPTIONS):
        return
    # Manifests named and no test path: the conformance suite, whatever testpaths say.
    args.append(str(SUITE))
    namespace.file_or_dir = [str(SUITE)]


def _refuse_empty(namespace: object) -> None:
    for value in getattr(namespace, "manifests_dir", None) or []:
        if not str(value).strip():
            raise pytest.UsageError("--manifests-dir needs a directory (an empty value would read the current "
                                    "directory without saying so; write --manifests-dir=. for that)")


def _decide_root_again(config: pytest.Config, args: list[str], real_args: list[str]) -> None:
    namespace = config.known_args_namespace
    kwargs = {
        "inifile": namespace.inifilename,
        "override_ini": namespace.override_ini,
        "args": real_args,
        "rootdir_cmd_arg": namespace.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    accepted = inspect.signature(findpaths.determine_setup).parameters
    decided = findpaths.determine_setup(**{k: v for k, v in kwargs.items() if k in accepted})
    rootpath, inipath, inicfg = decided[0], decided[1], decided[2]
    if rootpath == config.rootpath and inipath == config.inipath:
        return
    old_root, old_ini = config.rootpath, config.inipath
    old_addopts = [str(a) for a in config.getini("addopts")]
    config._rootpath = rootpath  # noqa: SLF001 - pytest has no public way to correct it
    config._inipath = inipath  # noqa: SLF001
    if hasattr(config, "_inicfg"):
        config._inicfg = inicfg  # noqa: SLF001
    else:  # pytest 8
        config.inicfg = inicfg  # type: ignore[attr-defined]
    config._inicache.clear()  # noqa: SLF001
    config._parser.extra_info["rootdir"] = str(rootpath)  # noqa: SLF001
    config._parser.extra_info["inifile"] = str(inipath)  # noqa: SLF001
    # The wrong ini file's addopts were put in front of the arguments; the right one's go there.
    if old_addopts and args[: len(old_addopts)] == old_addopts:
        del args[: len(old_addopts)]
    args[:0] = [str(a) for a in config.getini("addopts")]
    if namespace.confcutdir in (str(old_root), str(old_ini.parent) if old_ini else None):
        namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)


def collects_suite_file(file_path: Path, config: pytest.Config) -> bool:
    """A conformance test module the repository's own `python_files` would not match."""
    if SUITE not in file_path.parents or not file_path.name.startswith("test_") or file_path.suffix != ".py":
        return False
    patterns = config.getini("python_files")
    return not any(file_path.match(p) for p in patterns)
