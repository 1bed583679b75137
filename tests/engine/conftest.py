"""Fixtures of the engine tests: the contract's example definition."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from procengine.engine.definitions import ProcessDefinition
from tests.support.processes import ORDER_FULFILMENT_YAML


@pytest.fixture
def order_body() -> dict[str, Any]:
    """The contract's order-fulfilment definition as the YAML loader gives it (a fresh copy per test)."""
    body: dict[str, Any] = yaml.safe_load(ORDER_FULFILMENT_YAML)
    return body


@pytest.fixture
def order_definition(order_body: dict[str, Any]) -> ProcessDefinition:
    return ProcessDefinition.model_validate(order_body)
