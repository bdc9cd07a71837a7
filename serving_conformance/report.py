"""The conformance report: the machine-readable verdict an acceptance gate reads.

Every conformance test carries, as user properties, its behaviour, title and profile, the
substitutions that qualify its result (what stood in for what the platform runs), and whether its
check was circular. Properties travel with test reports, so under xdist the controller alone
assembles the report. What each word may say is the verdict contract (verdict.py): a report never
says more than was proven. The report path is replaced when the run starts, so no earlier verdict
outlives a run that ends early; a usage error leaves `result: error` with its reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving_conformance import __version__, verdict
from serving_conformance.base.features import Substitution
from serving_conformance.base.redact import redact, redact_text
from serving_conformance.base.settings import PROFILES, Settings
from serving_conformance.manifests import provenance
from serving_conformance.manifests.model import ManifestSet

BEHAVIOUR = "sc.behaviour"
TITLE = "sc.title"
PROFILE = "sc.profile"
SUBSTITUTIONS = "sc.substitutions"
NOTE = "sc.note"
CIRCULAR = "sc.circular"
OBSERVED = "sc.observed."
MAX_REASON = 2000
NOT_FOLLOWED_SHOWN = 12


@dataclass
class TestResult:
    nodeid: str
    behaviour: str
    title: str
    profile: str
    outcome: str = "pass"
    reason: str = ""
    substitutions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.nodeid, "outcome": self.outcome}
        if self.reason:
            data["reason"] = self.reason
        if self.substitutions:
            data["substitutions"] = self.substitutions
        if self.notes:
            data["notes"] = self.notes
        return data


def tag_item(item: pytest.Item, behaviour: str, title: str, profile: str) -> None:
    """Give a collected conformance test its report keys."""
    item.user_properties.extend([(BEHAVIOUR, behaviour), (TITLE, title), (PROFILE, profile)])


def record_substitutions(item: pytest.Item, substitutions: Iterable[Substitution]) -> None:
    subs = [{"subject": s.subject, "platform": s.platform, "here": s.here} for s in substitutions]
    if subs:
        item.user_properties.append((SUBSTITUTIONS, json.dumps(subs)))


def record_circular(item: pytest.Item, why: str) -> None:
    """This test's check compares with an expected value its place made itself."""
    item.user_properties.append((CIRCULAR, why))


def observe(item: pytest.Item, key: str, value: str) -> None:
    item.user_properties.append((OBSERVED + key, value))


def note(item: pytest.Item, text: str) -> None:
    """A qualification of a result (what was, and was not, judged), kept with it in the report."""
    item.user_properties.append((NOTE, text))


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")[:MAX_REASON]
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.removeprefix("Failed: ")[:MAX_REASON]  # pytest.fail's word: the outcome says it already


def _sentence(sub: dict[str, str]) -> str:
    return f"{sub['subject']}: {sub['here']} stands in for {sub['platform']}"


class ConformanceReport:
    """pytest plugin object: collects results, writes the report, gates on required profiles."""

    def __init__(self, settings: Settings, manifests: ManifestSet | None = None) -> None:
        self.settings = settings
        self.manifests = manifests
        self.results: dict[str, TestResult] = {}
        self.observed: dict[str, str] = {}
        # By subject and what it stands in for: several images are each their own stand-in.
        self.substitutions: dict[tuple[str, str], dict[str, str]] = {}
        self.collected = 0
        self.finished: set[str] = set()
        # Every conformance test collected, before any deselection: (behaviour, title, profile).
        self.expected: dict[str, tuple[str, str, str]] = {}
        self.deselected: set[str] = set()
        # Why the run ended early (interrupt, abort, a cluster that could not be provided).
        self.stopped: str | None = None
        self.summary: dict[str, Any] | None = None

    # --- collecting ---------------------------------------------------------------------------

    def expect(self, nodeid: str, behaviour: str, title: str, profile: str) -> None:
        """A conformance test was collected (called before -k, -m and --deselect choose)."""
        self.expected[nodeid] = (behaviour, title, profile)

    @pytest.hookimpl
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.update(item.nodeid for item in items)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        for key, value in report.user_properties:
            if str(key).startswith(OBSERVED):
                self.observed[str(key)[len(OBSERVED):]] = str(value)
        if report.when == "teardown":
            self.finished.add(report.nodeid)
        if BEHAVIOUR not in properties:
            return
        result = self.results.setdefault(
            report.nodeid,
            TestResult(report.nodeid, properties[BEHAVIOUR], properties[TITLE], properties[PROFILE]),
        )
        if SUBSTITUTIONS in properties and not result.substitutions:
            subs = json.loads(properties[SUBSTITUTIONS])
            result.substitutions = [_sentence(s) for s in subs]
            for sub in subs:
                self.substitutions[(sub["subject"], sub["platform"])] = sub
        for key, value in report.user_properties:
            if key == NOTE and value not in result.notes:
                result.notes.append(str(value))
        if report.failed:
            if result.outcome != verdict.FAIL:  # keep the first failure, not a teardown echo
                result.outcome, result.reason = verdict.FAIL, _reason(report)
        elif report.skipped and result.outcome == verdict.PASS:
            result.outcome, result.reason = verdict.SKIP, _reason(report)
        elif report.when == "call" and report.passed and CIRCULAR in properties and result.outcome == verdict.PASS:
            result.outcome = verdict.CIRCULAR
            result.reason = "circular: " + "; ".join(str(v) for k, v in report.user_properties if k == CIRCULAR)

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, pytest.exit.Exception):  # pytest.exit: a stop, said by stop()
            self.stopped = self.stopped or f"stopped: {excinfo.value}"
            return
        self.stopped = f"interrupted: {excinfo.value or type(excinfo.value).__name__}"

    def stop(self, reason: str) -> None:
        """The run stops early for `reason` (said before pytest.exit, which carries no reason here)."""
        self.stopped = self.stopped or reason

    # --- building -----------------------------------------------------------------------------

    def _all_results(self) -> list[TestResult]:
        """Every conformance test: its result, or not-run where it was collected and never ran."""
        results = dict(self.results)
        for nodeid, (behaviour, title, profile) in self.expected.items():
            if nodeid not in results:
                why = ("deselected (-k, -m or --deselect)" if nodeid in self.deselected
                       else "did not run: the run stopped before it")
                results[nodeid] = TestResult(nodeid, behaviour, title, profile, verdict.NOT_RUN, why)
        return list(results.values())

    def profile_entry(self, name: str, results: list[TestResult]) -> dict[str, Any]:
        behaviours: dict[str, list[TestResult]] = {}
        for result in results:
            if result.profile == name:
                behaviours.setdefault(result.behaviour, []).append(result)
        selected = [t for tests in behaviours.values() for t in tests if t.nodeid not in self.deselected]
        interrupted = self.interrupted()
        entries = []
        for behaviour, tests in sorted(behaviours.items()):
            subs = sorted({s for t in tests for s in t.substitutions})
            outcome = verdict.behaviour_result(t.outcome for t in tests)
            entries.append({
                "id": behaviour,
                "title": tests[0].title,
                "result": outcome,
                "provenBy": "stand-ins" if subs else ("nothing: not run" if outcome == verdict.NOT_RUN
                                                      else "real components and the manifests"),
                **({"substitutions": subs} if subs else {}),
                "tests": [t.to_dict() for t in tests],
            })
        # Within a profile that ran, a deselected case is not-run: it makes the profile partial.
        tests = [t for ts in behaviours.values() for t in ts] if selected else []
        outcomes = [t.outcome for t in tests]
        result = verdict.profile_result(outcomes, interrupted)
        requirement = self.requirement(name)
        return {
            "name": name,
            "result": result,
            "required": str(requirement) if requirement else False,
            "summary": {o: sum(1 for t in tests if t.outcome == o) for o in verdict.SEVERITY[::-1]},
            "notRun": [e["id"] for e in entries if e["result"] == verdict.NOT_RUN] if selected else [],
            "circular": [e["id"] for e in entries if e["result"] == verdict.CIRCULAR],
            "behaviours": entries if selected else [],
        }

    def requirement(self, name: str) -> verdict.Requirement | None:
        return next((r for r in self.settings.required_profiles if r.profile == name), None)

    def interrupted(self, exitstatus: int | None = None) -> bool:
        return exitstatus == pytest.ExitCode.INTERRUPTED or (self.stopped or "").startswith("interrupted")

    def build(self, exitstatus: int | None = None) -> dict[str, Any]:
        results = self._all_results()
        if exitstatus == pytest.ExitCode.INTERRUPTED and not self.stopped:
            self.stopped = "interrupted"
        profiles = [self.profile_entry(name, results) for name in PROFILES]
        unmet = []
        for profile in profiles:
            requirement = self.requirement(profile["name"])
            outcomes = [t.outcome for t in results if t.profile == profile["name"] and t.nodeid not in self.deselected]
            outcomes += [verdict.NOT_RUN for t in results if t.profile == profile["name"] and t.nodeid in self.deselected]
            if requirement is not None and not verdict.met(requirement, profile["result"], outcomes):
                unmet.append(str(requirement))
        reasons = []
        unfinished = max(0, self.collected - len(self.finished))
        if self.stopped:
            reasons.append(self.stopped)
        if unfinished and (self.stopped or exitstatus not in (None, 0, 1, 5)):
            reasons.append(f"{unfinished} of {self.collected} selected test(s) did not run")
        for profile in profiles:
            if profile["notRun"] and profile["result"] != verdict.NOT_RUN:
                reasons.append(f"{profile['name']}: behaviour(s) not run: {', '.join(profile['notRun'])}")
        interrupted = self.interrupted(exitstatus)
        overall = verdict.overall([p["result"] for p in profiles], stopped=bool(self.stopped) and not interrupted,
                                  interrupted=interrupted, unmet=bool(unmet))
        expect = self.settings.expect
        report: dict[str, Any] = {
            "apiVersion": "serving-conformance.dev/v1alpha1",
            "kind": "ConformanceReport",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "suite": {"name": "serving-conformance", "version": __version__},
            "manifestsDirs": [str(p) for p in self.settings.manifests_dirs],
            "platformUnderTest": [provenance.describe(p) for p in self.settings.manifests_dirs],
            "versionsUnderTest": {
                "kserve": expect.kserve_version,
                "vllm": expect.engine_version,
                "kubernetes": expect.kubernetes_version,
                "gatewayApi": f"{expect.gateway_api_version} ({expect.gateway_api_channel})",
                "servedModelName": expect.served_model_name,
                **({"paths": [{"match": p.describe(), **({"servedModelName": p.served_model_name}
                                                         if p.served_model_name else {}),
                               **({"vllm": p.engine_version} if p.engine_version else {})}
                              for p in expect.paths]} if expect.paths else {}),
                **({"optionsFile": str(self.settings.options_file)} if self.settings.options_file else {}),
            },
            "forbiddenStandIns": list(self.settings.forbidden_stand_ins),
            "substitutions": [dict(s) for _, s in sorted(self.substitutions.items())],
            **({"manifests": self.reading()} if self.manifests is not None else {}),
            "observed": dict(sorted(self.observed.items())),
            "result": overall,
        }
        if reasons:
            report["reason"] = "; ".join(reasons)
        report.update({
            "requiredProfilesUnmet": unmet,
            "profiles": profiles,
            "skipped": [{"test": t.nodeid, "reason": t.reason} for t in results if t.outcome == verdict.SKIP],
        })
        return redact(report)  # every text through the one redactor: findings quote manifests

    def reading(self) -> dict[str, Any]:
        """How the manifests were read: what was not followed (and why), notices, declared pins."""
        manifests = self.manifests
        assert manifests is not None
        return {
            "objects": len(manifests.resources),
            "files": len(manifests.files),
            "rendered": sorted({manifests.relative(r.via) for r in manifests.resources if r.via is not None}),
            "pins": {k: {"version": v, "channel": c} for k, (v, c) in sorted(manifests.pins.items())},
            "notFollowed": [{"path": manifests.relative(p.path), **({"line": p.line} if p.line else {}),
                             "reason": p.message} for p in manifests.not_followed],
            "notices": list(manifests.notices),
        }

    # --- ending -------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        report = self.build(int(exitstatus))
        self.summary = report
        if self.settings.report_path is not None:
            write_report(report, self.settings.report_path)
        if report["result"] != "success" and "reason" in report:
            _junit_property(session.config, "serving-conformance.result", f"{report['result']}: {report['reason']}")
        if not verdict.passes_gate(report["result"]) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results and not self.expected:
            return  # no conformance test here (a repository's own run with the plugin installed)
        report = self.summary or self.build()
        terminalreporter.section("conformance")
        for profile in report["profiles"]:
            if profile["result"] == verdict.NOT_RUN and not profile["required"]:
                continue
            counts = ", ".join(f"{v} {k}" for k, v in profile["summary"].items() if v)
            required = f" (required: {profile['required']})" if profile["required"] else ""
            terminalreporter.write_line(f"{profile['name']:<12} {profile['result']:<9}{required} {counts}")
            if profile["notRun"]:
                terminalreporter.write_line(f"  not run: {', '.join(profile['notRun'])}", red=True)
            if profile["circular"]:
                terminalreporter.write_line(f"  circular (the place made the expected side): "
                                            f"{', '.join(profile['circular'])}", yellow=True)
        for sub in report["substitutions"]:
            terminalreporter.write_line(f"stand-in    {_sentence(sub)}", yellow=True)
        reading = report.get("manifests") or {}
        if reading.get("notFollowed"):
            shown = reading["notFollowed"][:NOT_FOLLOWED_SHOWN]
            terminalreporter.write_line(f"not followed: {len(reading['notFollowed'])} item(s) of the manifests "
                                        f"(all in the report){':' if shown else ''}")
            for entry in shown:
                where = f"{entry['path']}:{entry['line']}" if "line" in entry else entry["path"]
                terminalreporter.write_line(f"  {where}: {entry['reason']}")
        for notice in reading.get("notices") or []:
            terminalreporter.write_line(f"notice      {notice}", yellow=True)
        unmet = report["requiredProfilesUnmet"]
        if unmet:
            terminalreporter.write_line(f"required profile(s) not fully passed: {', '.join(unmet)}", red=True)
        if "reason" in report:
            label = "stopped early" if self.stopped else "why"
            terminalreporter.write_line(f"{label}: {report['reason']}", red=True)
        terminalreporter.write_line(f"overall: {report['result']}")
        if self.settings.report_path is not None:
            terminalreporter.write_line(f"report: {self.settings.report_path}")


def _junit_property(config: pytest.Config, name: str, value: str) -> None:
    from _pytest.junitxml import xml_key  # the junitxml plugin's own object, when --junitxml is on

    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property(name, value)


def error_report(reason: str) -> dict[str, Any]:
    """What a run that never started leaves at the report path (a usage error, a bad option)."""
    return {
        "apiVersion": "serving-conformance.dev/v1alpha1",
        "kind": "ConformanceReport",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": "serving-conformance", "version": __version__},
        "result": verdict.ERROR,
        "reason": redact_text(reason)[:MAX_REASON],
        "profiles": [],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    if path.suffix == ".json":
        text = json.dumps(report, indent=2) + "\n"
    else:
        text = yaml.safe_dump(report, sort_keys=False, width=120)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
