"""The contract's example definition (shipped verbatim as examples/order-fulfilment.yaml), shared by tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ORDER_FULFILMENT_YAML = (Path(__file__).resolve().parent.parent / "examples" / "order-fulfilment.yaml").read_text()

ORDER_FULFILMENT_FAST_YAML = ORDER_FULFILMENT_YAML.replace("durationMs: 1000", "durationMs: 100")
"""The same with a 100 ms cool-off, for tests that run it to the end."""

ORDER_FULFILMENT: dict[str, Any] = yaml.safe_load(ORDER_FULFILMENT_FAST_YAML)
"""As a document, the way a client sends it."""
