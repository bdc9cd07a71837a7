"""The OCI modelcar is a digest-pinned STORAGE_URI on kserve-container, read by vLLM at /mnt/models.

The URI goes in env STORAGE_URI of kserve-container (an annotation injects nothing;
`model.storageUri` is rejected next to `containers`). vLLM reads `--model=/mnt/models` offline,
and runs with USER and HOME set because the injected uid has no passwd entry.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_rule_holds


@pytest.mark.behaviour(B.MODELCAR)
def test_modelcar_is_pinned_and_read_from_mnt_models(manifest, rule_context):
    assert_rule_holds(B.MODELCAR.rule, manifest, rule_context)
