"""Task handlers for the examples: `procengine serve --handlers examples.handlers` from the repository root.

A stand-in for a payment gateway: it declines the test card 4000-0000-0000-0002, as real gateways' test
modes do, with its own exception class, which a definition's `catch` names.
"""

from __future__ import annotations

from typing import Any

from procengine.handlers import TaskContext, task

DECLINED_CARD = "4000-0000-0000-0002"


class CardDeclined(Exception):
    """The gateway said no."""


@task("charge-card")
async def charge_card(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    if input.get("card") == DECLINED_CARD:
        raise CardDeclined(f"card {input['card']} declined: insufficient funds")
    # a real gateway takes ctx.idempotency_key, so that a task run again after a crash charges once
    return {"charged": input.get("amount"), "reference": f"ch_{ctx.idempotency_key}"}
