"""Fixtures for the policy tests: fresh compliant resources and a compliant stack."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from policy_harness import COMPLIANT, compliant_stack


@pytest.fixture
def compliant() -> Callable[[str], tuple[str, dict[str, Any]]]:
    """A fresh (type, props) of one compliant fixture kind."""

    def build(kind: str) -> tuple[str, dict[str, Any]]:
        resource_type, builder = COMPLIANT[kind]
        return resource_type, copy.deepcopy(builder())

    return build


@pytest.fixture
def stack() -> list[tuple[str, str, dict[str, Any]]]:
    return compliant_stack()
