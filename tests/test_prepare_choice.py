"""Which clusters `python -m serving_conformance.prepare` prepares for: repeatable, `auto` resolved
as the provider choice resolves it, each once."""

from serving_conformance import prepare


def test_several_clusters_are_prepared_each_once(monkeypatch):
    monkeypatch.setattr(prepare.shutil, "which", lambda name: None)
    assert prepare.clusters_to_prepare(["local", "kind", "local"]) == ["local", "kind"]


def test_auto_is_the_testbed_without_kind_and_kind_with_a_working_engine(monkeypatch):
    monkeypatch.setattr(prepare.shutil, "which", lambda name: None)
    assert prepare.clusters_to_prepare([]) == ["local"]
    monkeypatch.setattr(prepare.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(prepare, "docker_engine_available", lambda: True)
    assert prepare.clusters_to_prepare(["auto", "kind"]) == ["kind"]
