"""Fixtures the conformance tests use; everything reaches tests through here."""

from __future__ import annotations

import pytest

from .manifests import ManifestSet
from .options import Settings
from .static.findings import RuleContext


@pytest.fixture(scope="session")
def conformance_settings(pytestconfig: pytest.Config) -> Settings:
    from .plugin import SETTINGS

    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def manifests(pytestconfig: pytest.Config) -> ManifestSet:
    from .plugin import MANIFESTS

    return pytestconfig.stash[MANIFESTS]


@pytest.fixture(scope="session")
def rule_context(pytestconfig: pytest.Config) -> RuleContext:
    from .plugin import RULE_CONTEXT

    return pytestconfig.stash[RULE_CONTEXT]
