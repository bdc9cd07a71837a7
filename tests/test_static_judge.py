"""How a static test judges a rule (a crash is a failure of its own kind, never a finding) and how a
negative control is judged against its fault's declaration."""

from pathlib import Path

import pytest

from serving_conformance.base.settings import Expectations
from serving_conformance.checks.static import CRASHED, Failure, assert_rule_holds, control_problems
from serving_conformance.manifests.faults import Fault
from serving_conformance.manifests.model import ManifestSet, Resource
from serving_conformance.rules.findings import CannotCheck, Finding, Rule, RuleContext

ISVC = Resource({"kind": "InferenceService", "metadata": {"name": "qwen-cpu"}}, Path("isvc.yaml"), 1)
CONTEXT = RuleContext(ManifestSet((Path("."),), resources=[ISVC]),
                      Expectations("qwen2.5-0.5b", "0.23.0", "0.19.0", "1.34.3", 1), None)


def rule(check) -> Rule:
    return Rule("some-rule", "a title", lambda r: True, check, "nothing")


def outcome(check) -> tuple[str, str]:
    try:
        assert_rule_holds(rule(check), ISVC, CONTEXT)
    except pytest.fail.Exception as exc:
        return "failed", str(exc.msg)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc.msg)
    return "passed", ""


def test_nothing_found_passes():
    assert outcome(lambda r, c: []) == ("passed", "")


def test_findings_fail_with_their_words():
    verdict, message = outcome(lambda r, c: [Finding("limits.cpu is missing", "rejected", "set it")])
    assert verdict == "failed" and "limits.cpu is missing" in message and not message.startswith(CRASHED)


def test_cannot_check_skips_with_the_reason():
    def check(resource, context):
        raise CannotCheck("no schema here")

    verdict, message = outcome(check)
    assert verdict == "skipped" and "no schema here" in message


def test_a_crash_fails_as_a_crash():
    def check(resource, context):
        return [Finding(found=context.nowhere, effect="", fix="")]

    verdict, message = outcome(check)
    assert verdict == "failed" and message.startswith(f"{CRASHED} some-rule raised AttributeError")
    assert "kserve/qwen-cpu" in message and "test_static_judge.py" in message


def test_a_crash_rendering_the_message_fails_as_a_crash():
    verdict, message = outcome(lambda r, c: ["not a finding"])
    assert verdict == "failed" and message.startswith(CRASHED)


FAULT = Fault("f", "a fault", "some-rule", "InferenceService", "qwen-cpu", expect=("limits.cpu", "rejected"))


def test_the_control_holds_when_its_rule_fails_on_its_target_saying_what_it_expects():
    assert control_problems(FAULT, [Failure("some-rule", "kserve/ns/qwen-cpu", "limits.cpu ... rejected")]) == []


@pytest.mark.parametrize(
    ("failures", "problem"),
    [
        ([], "failed behaviours [], expected ['some-rule']"),
        ([Failure("some-rule", "kserve/qwen-cpu", "limits.cpu rejected"), Failure("other", "kserve/qwen-cpu", "x")],
         "expected ['some-rule']"),
        ([Failure("some-rule", "kserve/qwen-oci", "limits.cpu rejected")], "fails on kserve/qwen-oci"),
        ([Failure("some-rule", "kserve/qwen-cpu", "limits.cpu")], "does not say ['rejected']"),
        ([Failure("some-rule", "kserve/qwen-cpu", f"{CRASHED} some-rule raised KeyError: 'limits.cpu' rejected")],
         "raised KeyError"),
    ],
    ids=["not-caught", "another-rule-too", "wrong-object", "wrong-diagnosis", "crash"],
)
def test_the_control_fails(failures, problem):
    problems = control_problems(FAULT, failures)
    assert any(problem in p for p in problems), problems


def test_a_fault_naming_several_objects_fails_on_each():
    fault = Fault("f", "d", "some-rule", fails_on=(("InferenceService", "a"), ("InferenceService", "b")), expect=("x",))
    assert control_problems(fault, [Failure("some-rule", "kserve/a", "x"), Failure("some-rule", "kserve/b#2", "x")]) == []
    assert "does not fail on kserve/b" in control_problems(fault, [Failure("some-rule", "kserve/a", "x")])[0]


def test_a_fault_naming_no_object_fails_on_one():
    fault = Fault("f", "d", "some-rule", expect=("x",))
    assert control_problems(fault, [Failure("some-rule", "a.yaml", "x")]) == []
    assert "expected one" in control_problems(fault, [Failure("some-rule", "a", "x"), Failure("some-rule", "b", "x")])[0]


def test_a_fault_that_breaks_nothing_leaves_every_test_passing():
    fault = Fault("f", "d", "none")
    assert control_problems(fault, []) == []
    assert control_problems(fault, [Failure("some-rule", "kserve/a", "x")])


def test_other_rules_a_fault_also_breaks_must_fail_too_but_need_not_say_its_words():
    fault = Fault("f", "d", "some-rule", "InferenceService", "a", expect=("x",), also_breaks=("other",))
    both = [Failure("some-rule", "kserve/a", "x"), Failure("other", "kserve/a", "y")]
    assert control_problems(fault, both) == []
    assert control_problems(fault, both[:1])
    assert control_problems(fault, both[1:], only={"other"}) == []
    assert control_problems(fault, [], only={"third"}) == []
