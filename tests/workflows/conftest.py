"""Fixtures for engine tests; the builders they use live in tests/factories.py."""

from __future__ import annotations

import pytest

from tests.factories import make_flow


@pytest.fixture
def flow_factory(db):
    return make_flow
