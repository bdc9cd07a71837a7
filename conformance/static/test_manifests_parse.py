"""Every manifest file under test is readable YAML, and the directory holds some."""

import pytest

from serving_conformance import behaviours as B


@pytest.mark.behaviour(B.MANIFESTS_PARSE)
def test_every_manifest_file_parses(manifest_file):
    path, problems = manifest_file
    if problems:
        pytest.fail("\n".join(f"{p.where}: {p.message}" for p in problems), pytrace=False)
