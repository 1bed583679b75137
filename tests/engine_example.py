"""The contract's example definition, shared by tests."""

from __future__ import annotations

import yaml

from procengine.engine.definitions import ProcessDefinition

ORDER_FULFILMENT_YAML = """
key: order-fulfilment
name: Order fulfilment
threads:
  - key: main
    start: fetch_order
    elements:
      - {key: fetch_order, type: task, handler: echo, input: {id: "order_id"}, output: order, next: verify,
         retry: {maxAttempts: 3, backoffMs: 100, backoffMultiplier: 2.0}, timeoutMs: 30000}
      - {key: verify, type: if-condition, condition: "order_total > 500.0", then: premium, else: standard}
      - {key: premium, type: set-variable, set: {is_premium: "true"}, next: approve}
      - {key: standard, type: set-variable, set: {is_premium: "false"}, next: approve}
      - {key: approve, type: wait-signal, signal: approval, into: approval, next: cool_off}
      - {key: cool_off, type: delay, durationMs: 100, next: done}
      - {key: done, type: end}
"""

ORDER_FULFILMENT = ProcessDefinition.model_validate(yaml.safe_load(ORDER_FULFILMENT_YAML))
