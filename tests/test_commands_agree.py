"""The README's two commands are what CI and the CI definitions for real clusters run."""

import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("./run conformance", "./run tests")


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]


def ci_commands() -> list[str]:
    commands = []
    for path in sorted((REPO / "examples" / "workflows").glob("*.yaml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                commands += [line.strip() for line in step.get("run", "").splitlines() if line.strip().startswith("./run")]
    return commands


def test_the_readme_names_the_two_commands():
    assert readme_commands() == list(COMMANDS)


def test_ci_runs_the_readme_test_command_then_the_main_job():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "./run tests" in lines
    assert any(line.startswith("./run conformance") for line in lines)


def test_ci_definitions_use_the_readme_commands_with_real_options(pytester):
    commands = ci_commands()
    assert len(commands) == 2
    help_text = pytester.runpytest("--help").stdout.str()
    for command in commands:
        assert command.startswith(COMMANDS[0]), command
        for token in shlex.split(command):
            if token.startswith("--"):
                assert token in help_text, f"{command}: {token} is not an option of the suite"
