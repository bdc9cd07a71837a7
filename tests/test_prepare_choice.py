"""Which clusters `python -m serving_conformance.prepare` prepares for: repeatable, `auto` resolved
as the provider choice resolves it (providers.choose.auto_choice), each once."""

import pytest

from serving_conformance import prepare
from serving_conformance.providers import choose


@pytest.fixture
def machine(monkeypatch):
    """This machine as auto sees it: kind on PATH, kind built here, a container engine."""
    def set_(on_path=False, built=False, engine=False):
        monkeypatch.setattr(choose.shutil, "which", lambda name: f"/usr/bin/{name}" if on_path else None)
        monkeypatch.setattr(choose, "cached_kind", lambda: "/cache/bin/kind-v0.33.0/kind" if built else None)
        monkeypatch.setattr(choose, "docker_engine_available", lambda: engine)
    return set_


def test_several_clusters_are_prepared_each_once(machine):
    machine()
    assert prepare.clusters_to_prepare(["local", "kind", "local"]) == ["local", "kind"]


@pytest.mark.parametrize(("on_path", "built", "engine", "chosen", "why"), [
    (False, False, True, "local", "kind is neither on PATH nor built here"),
    (True, False, False, "local", "no container engine answers"),
    (False, True, False, "local", "no container engine answers"),
    (True, False, True, "kind", "a container engine answers and kind is here (/usr/bin/kind)"),
    (False, True, True, "kind", "a container engine answers and kind is here (/cache/bin/kind-v0.33.0/kind)"),
])
def test_auto_is_kind_where_an_engine_answers_and_kind_is_here(machine, on_path, built, engine, chosen, why):
    machine(on_path, built, engine)
    assert choose.auto_choice()[0] == chosen and why in choose.auto_choice()[1]
    assert prepare.clusters_to_prepare([]) == [chosen]
    assert prepare.clusters_to_prepare(["auto", "kind"]) == list(dict.fromkeys([chosen, "kind"]))
    assert choose.bounded_capacity("auto") == (chosen == "kind")
    said = []
    assert choose.resolve_choice("auto", said.append) == chosen and why in said[0]


def test_an_image_list_without_kind_is_a_usage_error(machine, capsys):
    machine()
    with pytest.raises(SystemExit) as exited:
        prepare.main(["--for-cluster", "none", "--list-images", "-"])
    assert exited.value.code == 2 and "--list-images lists a kind run's images" in capsys.readouterr().err
