"""The negative controls, in process and rule by rule: every seeded fault (fixtures/faults against
the shipped manifests, fixtures/platform-repo-faults against the platform repository) judged by
each static rule as the suite judges it (the plugin's selection, `assert_rule_holds`, settings from
the suite's own options), and held to what the fault declares (`control_problems`).

test_static_negative_controls.py and test_platform_repo.py prove the same through a whole pytest
run of the shipped suite; this module proves it in milliseconds per rule, which is what mutation
testing of the rules needs (each mutant runs the tests of the rule it changes; see
benchmarks/RESULTS.md). Each faulty variant is written and loaded once per process.
"""

from __future__ import annotations

import ast
import atexit
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
from _pytest.config.argparsing import Parser

from serving_conformance import behaviours
from serving_conformance.base.data import DEFAULT_MANIFESTS
from serving_conformance.checks.static import Failure, assert_rule_holds, control_problems
from serving_conformance.manifests.faults import Fault, load_faults, materialize
from serving_conformance.manifests.load import load_manifests
from serving_conformance.options import add_options, settings_from
from serving_conformance.rules.context import rule_context
from serving_conformance.rules.findings import Finding, Rule, RuleContext

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SOURCES = {"faults": DEFAULT_MANIFESTS, "platform-repo-faults": FIXTURES / "platform-repo"}
FAULTS = [(directory, fault) for directory in SOURCES for fault in load_faults(FIXTURES / directory)]
RULES = behaviours.static_rules()
PARSE = behaviours.MANIFESTS_PARSE.id


@cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="sc-controls-"))
    owner = os.getpid()  # forked test processes share it and must not remove it
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))
    return path


def _context(manifests_dir: Path, options: tuple[str, ...]) -> RuleContext:
    """The rule context the plugin builds for `pytest --manifests-dir DIR *options`."""
    parser = Parser(_ispytest=True)
    add_options(parser)
    option = parser.parse(["--manifests-dir", str(manifests_dir), *options])
    config = SimpleNamespace(option=option, invocation_params=SimpleNamespace(dir=Path.cwd()))
    manifests = load_manifests(manifests_dir)
    return rule_context(manifests, settings_from(config, manifests.pins).expect)


@cache
def clean(source: str) -> RuleContext:
    return _context(SOURCES[source], ())


@cache
def variant(source: str, name: str) -> RuleContext:
    fault = next(f for d, f in FAULTS if d == source and f.name == name)
    return _context(materialize(fault, SOURCES[source], _workdir() / source / name), fault.options)


def judge(rule: Rule, context: RuleContext) -> tuple[list[Failure], list[str]]:
    """(failures, skip reasons) of the rule's tests on these manifests, as the suite runs them."""
    failures, skipped = [], []
    chosen = rule.select(context)
    if not chosen:
        skipped.append(rule.nothing_to_check)
    for resource in chosen:
        try:
            assert_rule_holds(rule, resource, context)
        except pytest.fail.Exception as outcome:
            failures.append(Failure(rule.id, resource.ident, str(outcome.msg)))
        except pytest.skip.Exception as outcome:
            skipped.append(f"{resource.ident}: {outcome.msg}")
    return failures, skipped


def parse_failures(context: RuleContext) -> list[Failure]:
    manifests = context.manifests
    return [Failure(PARSE, manifests.relative(p.path), f"{p.where}: {p.message}") for p in manifests.problems]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_clean_manifests_pass_every_rule(source, rule):
    failures, skipped = judge(rule, clean(source))
    assert not failures, [f.message for f in failures]
    assert not skipped, skipped


@pytest.mark.parametrize("source", SOURCES)
def test_clean_manifests_parse(source):
    assert not parse_failures(clean(source))


@pytest.mark.parametrize(("source", "fault"), FAULTS, ids=[f"{d}/{f.name}" for d, f in FAULTS])
@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_fault_breaks_exactly_what_it_declares(source, fault: Fault, rule):
    failures, skipped = judge(rule, variant(source, fault.name))
    assert not control_problems(fault, failures, only={rule.id}), control_problems(fault, failures, only={rule.id})
    assert not skipped, skipped


@pytest.mark.parametrize(("source", "fault"), FAULTS, ids=[f"{d}/{f.name}" for d, f in FAULTS])
def test_fault_parses_as_it_declares(source, fault: Fault):
    failures = parse_failures(variant(source, fault.name))
    assert not control_problems(fault, failures, only={PARSE}), control_problems(fault, failures, only={PARSE})


@pytest.mark.parametrize(("source", "fault"), FAULTS, ids=[f"{d}/{f.name}" for d, f in FAULTS])
def test_fault_is_declared_completely(source, fault: Fault):
    """Every fault says what it does on a cluster, which rule it breaks (a registered one), and, unless
    it is a control that breaks nothing, words its diagnosis must say."""
    static = {b.id for b in behaviours.REGISTRY.values() if b.layer == behaviours.Layer.STATIC}
    assert fault.description
    assert fault.broken <= static, fault.broken - static
    assert fault.breaks_nothing or fault.expect, "no `expect` words"


# --- every place a rule reports a finding has a fault that makes it report that alone ----------------

RULE_MODULES = sorted((REPO / "serving_conformance" / "rules").glob("*.py"))
# Sites no fault can hit alone, and why.
ALWAYS_WITH_ANOTHER = {
    ("schema.py", "_check_object", "... and"): "the count of errors beyond MAX_ERRORS comes after MAX_ERRORS findings",
}


def finding_sites() -> dict[tuple[str, int], str]:
    """(file, line) of every `Finding(...)` in the rules, with its function and the start of its `found`."""
    sites = {}
    for path in RULE_MODULES:
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Finding":
                    found = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "found")
                    text = ast.unparse(found)
                    sites[(path.name, node.lineno)] = f"{path.name}:{node.lineno} {function.name} {text[:70]}"
    return sites


def _site_key(site: str) -> tuple[str, str, str]:
    file, function, found = site.split(" ", 2)
    return file.split(":")[0], function, found.strip("f'\"(")


def sites_hit(rule: Rule, context: RuleContext) -> set[tuple[str, int]]:
    """The Finding sites the rule reaches on these manifests."""
    calls = {(path.name, node.lineno): node for path in RULE_MODULES for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Finding"}
    hit = set()

    def recording(*args, **kwargs):
        frame = sys._getframe(1)
        file, line = Path(frame.f_code.co_filename).name, frame.f_lineno
        # the call's first line (a multi-line call may report the line of its last argument)
        site = max(((f, n) for (f, n), node in calls.items() if f == file and n <= line <= node.end_lineno),
                   key=lambda s: s[1])
        hit.add(site)
        return Finding(*args, **kwargs)

    modules = [m for m in sys.modules.values()
               if getattr(m, "__name__", "").startswith("serving_conformance.rules.") and hasattr(m, "Finding")]
    saved = {m: m.Finding for m in modules}
    try:
        for module in modules:
            module.Finding = recording
        judge(rule, context)
    finally:
        for module, original in saved.items():
            module.Finding = original
    return hit


def test_every_finding_site_has_a_fault_that_reaches_it_alone():
    """Each place a rule reports a finding is reached, alone among its rule's, by some fault: no
    sub-check goes without a control."""
    sites = finding_sites()
    by_id = {r.id: r for r in RULES}
    alone: dict[tuple[str, int], str] = {}
    for source, fault in FAULTS:
        if fault.breaks in by_id:
            hit = sites_hit(by_id[fault.breaks], variant(source, fault.name))
            if len(hit) == 1:
                alone.setdefault(next(iter(hit)), fault.name)
    exempt = {s for s, text in sites.items()
              if any(_site_key(text)[:2] == k[:2] and _site_key(text)[2].startswith(k[2]) for k in ALWAYS_WITH_ANOTHER)}
    missing = [sites[s] for s in sorted(sites) if s not in alone and s not in exempt]
    assert not missing, "\n".join(missing)


# --- every diagnosis, word for word -----------------------------------------------------------------

MESSAGES = FIXTURES / "fault-messages.yaml"


def _messages(source: str, name: str) -> list[str]:
    """Every failure message of every rule on a faulty variant, the variant's location replaced."""
    root = str(_workdir() / source / name)
    context = variant(source, name)
    found = [f"{f.behaviour} {f.ident}: {f.message}" for f in parse_failures(context)]
    for rule in RULES:
        found += [f"{f.behaviour} {f.ident}: {f.message}" for f in judge(rule, context)[0]]
    return [m.replace(root, "<variant>") for m in found]


@cache
def _committed() -> dict[str, list[str]]:
    import yaml

    if os.environ.get("SERVING_CONFORMANCE_WRITE_MESSAGES"):
        current = {f"{source}/{fault.name}": _messages(source, fault.name) for source, fault in FAULTS}
        MESSAGES.write_text("# What each seeded fault makes the rules say, word for word (tests/test_rules_controls.py).\n"
                            + yaml.safe_dump(current, sort_keys=True, width=100, allow_unicode=True))
    return yaml.safe_load(MESSAGES.read_text())


@pytest.mark.parametrize(("source", "fault"), FAULTS, ids=[f"{d}/{f.name}" for d, f in FAULTS])
def test_every_diagnosis_says_exactly_what_it_said_when_it_was_reviewed(source, fault):
    """What each fault makes each rule say (found, effect and fix) is committed in
    fixtures/fault-messages.yaml, reviewed once: a change of a single word of a diagnosis fails here
    until the file is written again (SERVING_CONFORMANCE_WRITE_MESSAGES=1) and reviewed."""
    assert _messages(source, fault.name) == _committed()[f"{source}/{fault.name}"]
