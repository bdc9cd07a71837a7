"""The field trial: the static profile on public repositories that hold KServe, vLLM or Gateway API
manifests, typed the way a platform engineer types it (`serving-conformance -m static
--manifests-dir=DIR`, from the repository's root), each at a pinned commit read from a local mirror.

    python benchmarks/field_trial.py [--mirrors /work/.mirror] [--only owner/name] [--out DIR]

The list is benchmarks/field_trial.yaml. Each repository is exported from
`<mirrors>/<owner>+<name>/repo` (a bare git directory, as `fetch` leaves it) at its commit into a
temporary directory; blobs the mirror does not hold (large files left out of a snapshot) are
skipped and counted. Nothing of theirs is kept: the reports go to --out, the table to stdout
(markdown), one row per directory: objects read, ran (exit 0 or 1, report written) or refused,
and the failures by behaviour, each with its first line, for triage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
LIST = HERE / "field_trial.yaml"
TIMEOUT_S = 600


def export(gitdir: Path, commit: str, dest: Path) -> int:
    """The tree at `commit` into `dest`; returns how many blobs the mirror lacks (skipped)."""
    listing = subprocess.run(["git", "-C", str(gitdir), "ls-tree", "-r", "-z", commit], capture_output=True,
                             check=True).stdout.decode().split("\0")
    blobs = [(entry.split("\t", 1)[0].split()[2], entry.split("\t", 1)[1]) for entry in listing
             if entry and entry.split()[1] == "blob"]
    check = subprocess.run(["git", "-C", str(gitdir), "cat-file", "--batch-check"], capture_output=True, check=True,
                           input="\n".join(o for o, _ in blobs).encode()).stdout.decode().splitlines()
    missing = [path for (_, path), line in zip(blobs, check) if line.endswith("missing")]
    excludes = [f":(exclude,literal){path}" for path in missing]
    archive = subprocess.run(["git", "-C", str(gitdir), "archive", commit, "--", ".", *excludes],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return len(missing)


def run_static(root: Path, directory: str, report: Path) -> tuple[int, float, str]:
    command = [sys.executable, "-m", "serving_conformance.cli", "-m", "static", f"--manifests-dir={directory}",
               f"--conformance-report={report}", "-q", "--no-header", "-rN"]
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - started, f"no end within {TIMEOUT_S}s"
    return result.returncode, time.monotonic() - started, (result.stdout + result.stderr)[-2000:]


def failures(report: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for profile in report.get("profiles") or []:
        for behaviour in profile.get("behaviours") or []:
            for test in behaviour.get("tests") or []:
                if test.get("outcome") == "fail":
                    ident = test["id"].rsplit("[", 1)[-1].rstrip("]")
                    first = str(test.get("reason") or "").splitlines()
                    found.setdefault(behaviour["id"], []).append(f"{ident}: {first[1].strip() if len(first) > 1 else first[0] if first else ''}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "sc-field-trial")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = yaml.safe_load(LIST.read_text())
    print("| repository | commit | directory | objects | files | result | s | failures |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in entries:
        if args.only and entry["repo"] not in args.only:
            continue
        gitdir = args.mirrors / entry["repo"].replace("/", "+") / "repo"
        with tempfile.TemporaryDirectory(prefix="sc-trial-") as tmp:
            root = Path(tmp)
            skipped = export(gitdir, entry["commit"], root)
            for directory in entry["dirs"]:
                name = f"{entry['repo'].replace('/', '+')}+{directory.strip('./').replace('/', '+') or 'root'}"
                report_path = args.out / f"{name}.yaml"
                report_path.unlink(missing_ok=True)
                code, seconds, tail = run_static(root, directory, report_path)
                (args.out / f"{name}.log").write_text(tail)
                ran = code in (0, 1) and report_path.is_file()
                report = yaml.safe_load(report_path.read_text()) if report_path.is_file() else {}
                reading = report.get("manifests") or {}
                failed = failures(report)
                summary = "; ".join(f"{b} ×{len(v)}" for b, v in sorted(failed.items())) or "-"
                result = f"ran, {report.get('result')}" if ran else f"REFUSED (exit {code})"
                note = f" ({skipped} blobs not in the mirror)" if skipped and directory == "." else ""
                print(f"| {entry['repo']}{note} | {entry['commit'][:10]} | {directory} | {reading.get('objects', '-')} | "
                      f"{reading.get('files', '-')} | {result} | {seconds:.1f} | {summary} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
