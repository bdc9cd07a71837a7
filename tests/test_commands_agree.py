"""The README's two commands are what CI runs (the example workflows for platform repositories are
checked in test_example_workflows)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("./run conformance", "./run tests")


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]


def test_the_readme_names_the_two_commands():
    assert readme_commands() == list(COMMANDS)


def test_ci_runs_the_readme_test_command_then_the_main_job():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "./run tests" in lines
    assert any(line.startswith("./run conformance") for line in lines)
