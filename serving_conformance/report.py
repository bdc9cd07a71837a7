"""The conformance report: the machine-readable verdict an acceptance gate reads.

Every conformance test carries, as user properties, the behaviour it proves and its profile
(STATIC, SERVING-CPU, SERVING-GPU). Properties travel with test reports, so under xdist the
controller alone assembles the report from what the workers send.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving_conformance import __version__
from serving_conformance.options import Settings

PROFILES = ("STATIC", "ENGINE", "SERVING-CPU", "SERVING-GPU")
MARKER_PROFILES = {"static": "STATIC", "engine": "ENGINE", "gpu": "SERVING-GPU", "cpu": "SERVING-CPU"}
BEHAVIOUR = "sc.behaviour"
TITLE = "sc.title"
PROFILE = "sc.profile"
OBSERVED = "sc.observed."
MAX_REASON = 2000


@dataclass
class TestResult:
    nodeid: str
    behaviour: str
    title: str
    profile: str
    outcome: str = "pass"
    reason: str = ""


def tag_item(item: pytest.Item, behaviour: str, title: str) -> None:
    """Give a collected conformance test its report keys."""
    profile = next((MARKER_PROFILES[m] for m in MARKER_PROFILES if item.get_closest_marker(m)), None)
    if profile is None:
        return
    item.user_properties.extend([(BEHAVIOUR, behaviour), (TITLE, title), (PROFILE, profile)])


def observe(item: pytest.Item, key: str, value: str) -> None:
    item.user_properties.append((OBSERVED + key, value))


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text[:MAX_REASON]


def _combine(outcomes: Iterable[str]) -> str:
    outcomes = list(outcomes)
    if not outcomes:
        return "not-run"
    if "fail" in outcomes or "failure" in outcomes:
        return "failure"
    if any(o in ("skip", "partial") for o in outcomes):
        return "partial"
    return "success"


class ConformanceReport:
    """pytest plugin object: collects results, writes the report, gates on required profiles."""

    def __init__(self, settings: Settings, context: dict[str, Any]) -> None:
        self.settings = settings
        self.context = context
        self.results: dict[str, TestResult] = {}
        self.observed: dict[str, str] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        for key, value in properties.items():
            if str(key).startswith(OBSERVED):
                self.observed[str(key)[len(OBSERVED):]] = str(value)
        if BEHAVIOUR not in properties:
            return
        result = self.results.setdefault(
            report.nodeid,
            TestResult(report.nodeid, properties[BEHAVIOUR], properties[TITLE], properties[PROFILE]),
        )
        if report.failed:
            if result.outcome != "fail":  # keep the first failure, not a teardown echo
                result.outcome, result.reason = "fail", _reason(report)
        elif report.skipped and result.outcome == "pass":
            result.outcome, result.reason = "skip", _reason(report)

    def build(self) -> dict[str, Any]:
        profiles = []
        for name in PROFILES:
            behaviours: dict[str, list[TestResult]] = {}
            for result in self.results.values():
                if result.profile == name:
                    behaviours.setdefault(result.behaviour, []).append(result)
            entries = []
            for behaviour, tests in sorted(behaviours.items()):
                entries.append(
                    {
                        "id": behaviour,
                        "title": tests[0].title,
                        "result": {"success": "pass", "partial": "skip", "failure": "fail"}[
                            _combine(t.outcome for t in tests)
                        ],
                        "tests": [
                            {"id": t.nodeid, "outcome": t.outcome, **({"reason": t.reason} if t.reason else {})}
                            for t in tests
                        ],
                    }
                )
            outcomes = [t.outcome for tests in behaviours.values() for t in tests]
            profiles.append(
                {
                    "name": name,
                    "result": _combine(outcomes),
                    "required": name in self.settings.required_profiles,
                    "summary": {o: outcomes.count(o) for o in ("pass", "fail", "skip")},
                    "behaviours": entries,
                }
            )
        overall = _combine(p["result"] for p in profiles if p["result"] != "not-run")
        unmet = [p["name"] for p in profiles if p["required"] and p["result"] != "success"]
        if unmet:
            overall = "failure"
        expect = self.settings.expect
        return {
            "apiVersion": "serving-conformance.dev/v1alpha1",
            "kind": "ConformanceReport",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "suite": {"name": "serving-conformance", "version": __version__},
            "manifestsDir": str(self.settings.manifests_dir),
            "versionsUnderTest": {
                "kserve": expect.kserve_version,
                "vllm": expect.engine_version,
                "kubernetes": expect.kubernetes_version,
                "servedModelName": expect.served_model_name,
            },
            "observed": dict(sorted(self.observed.items())),
            **self.context,
            "result": overall,
            "requiredProfilesUnmet": unmet,
            "profiles": profiles,
            "skipped": [
                {"test": t.nodeid, "reason": t.reason} for t in self.results.values() if t.outcome == "skip"
            ],
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        report = self.build()
        path = self.settings.report_path
        if path is not None:
            write_report(report, path)
        if report["requiredProfilesUnmet"] and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.summary = report

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        report = getattr(self, "summary", None) or self.build()
        if not self.results:
            return
        terminalreporter.section("conformance")
        for profile in report["profiles"]:
            counts = ", ".join(f"{v} {k}" for k, v in profile["summary"].items() if v)
            required = " (required)" if profile["required"] else ""
            terminalreporter.write_line(f"{profile['name']:<12} {profile['result']:<9}{required} {counts}")
        unmet = report["requiredProfilesUnmet"]
        if unmet:
            terminalreporter.write_line(f"required profile(s) not fully passed: {', '.join(unmet)}", red=True)
        terminalreporter.write_line(f"overall: {report['result']}")
        if self.settings.report_path is not None:
            terminalreporter.write_line(f"report: {self.settings.report_path}")


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        text = json.dumps(report, indent=2) + "\n"
    else:
        text = yaml.safe_dump(report, sort_keys=False, width=120)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
