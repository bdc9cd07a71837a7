"""--image-map: the images (and oci:// model URIs) the manifests name, deployed as others; the
static layer still judges what the manifests say; every replacement is a stand-in in the report."""

import pytest

from serving_conformance.base.data import DEFAULT_MANIFESTS, SUITE
from serving_conformance.manifests.images import ImageMap, ImageMapError
from serving_conformance.manifests.load import load_manifests

VLLM = "vllm/vllm-openai:v0.23.0@sha256:6d8429e38e3747723ca07ee1b17972e09bb9c51c4032b266f24fb1cc3b22ed8f"
MODEL = ("oci://registry.example.com/models/qwen2.5-0.5b-instruct@sha256:"
         "cbed3ef73d3ed4e6e764f868ba92e68b341ba527567d307f17dc8aa8cdf45dad")


def qwen_oci():
    return next(r for r in load_manifests(DEFAULT_MANIFESTS).resources if r.name == "qwen-oci")


def test_images_and_the_modelcar_uri_are_replaced_in_a_copy(tmp_path):
    mirror = tmp_path / "mirror.txt"
    mirror.write_text(f"# the platform's mirror\n{MODEL}=oci://mirror.local/models/qwen@sha256:{'1' * 64}\n")
    image_map = ImageMap.parse([f"{VLLM}=mirror.local/vllm@sha256:{'2' * 64}", f"@{mirror}"])
    resource = qwen_oci()
    deployed = image_map.apply(resource.body)
    container = deployed["spec"]["predictor"]["containers"][0]
    assert container["image"] == f"mirror.local/vllm@sha256:{'2' * 64}"
    assert {e["name"]: e.get("value") for e in container["env"]}["STORAGE_URI"] == f"oci://mirror.local/models/qwen@sha256:{'1' * 64}"
    assert resource.body["spec"]["predictor"]["containers"][0]["image"] == VLLM  # the manifest is untouched
    assert set(image_map.used) == {VLLM, MODEL}


def test_a_pair_without_an_equals_sign_is_refused():
    with pytest.raises(ImageMapError, match="FROM=TO"):
        ImageMap.parse(["just-an-image:1"])


def test_a_bad_map_is_a_usage_error(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--image-map", "nope", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*--image-map 'nope': write FROM=TO*"])


def test_the_static_layer_judges_what_the_manifests_say(pytester):
    suite = SUITE / "static" / "test_images_digest_pinned.py"
    result = pytester.runpytest(str(suite), "--image-map", f"{VLLM}=untagged-local-image", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes["passed"] > 0 and "failed" not in outcomes
