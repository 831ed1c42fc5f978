"""Shared fixtures: the shipped line definitions, loaded once."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.lines import FLOW5


@pytest.fixture(scope="session")
def flow5_definition() -> dict[str, Any]:
    """The default line's definition as plain data."""
    return yaml.safe_load(FLOW5.read_text())
