"""Task handlers for the examples: `procengine serve --handlers examples.handlers` from the repository root.

Stand-ins for the services the examples call: a payment gateway that declines the test card 4000-0000-0000-0002,
as real gateways' test modes do, with its own exception class, which a definition's `catch` names
(order-approval.yaml); a warehouse import whose batch 007 has bad rows (data-pipeline.yaml); identity and
sanctions checks (kyc-check.yaml).
"""

from __future__ import annotations

import asyncio
from typing import Any

from procengine.tasks import TaskContext, task

DECLINED_CARD = "4000-0000-0000-0002"


class CardDeclined(Exception):
    """The gateway said no."""


@task("charge-card")
async def charge_card(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    if input.get("card") == DECLINED_CARD:
        raise CardDeclined(f"card {input['card']} declined: insufficient funds")
    # a real gateway takes ctx.idempotency_key, so that a task run again after a crash charges once
    return {"charged": input.get("amount"), "reference": f"ch_{ctx.idempotency_key}"}


# --- data-pipeline.yaml: a stand-in for a warehouse import ------------------------------------------------------


class BadRows(Exception):
    """A batch whose rows do not parse: set aside, not retried for ever."""


@task("list-batches")
async def list_batches(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    count = int(input["count"])
    return {"batches": [{"id": f"{input['day']}-{n:03d}", "rows": 100 + n} for n in range(count)]}


@task("transform-batch")
async def transform_batch(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    batch = input["batch"]
    await asyncio.sleep(float(batch.get("work_s", TRANSFORM_S)))  # the I/O a real transform waits for
    if batch["id"].endswith("-007"):
        raise BadRows(f"batch {batch['id']}: row 17 has 3 columns, expected 5")
    return {"rows": batch["rows"]}


@task("load-batch")
async def load_batch(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    await asyncio.sleep(TRANSFORM_S / 2)
    return {"batch": input["batch"], "rows": input["rows"]}


@task("summarise-import")
async def summarise_import(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    imported = input["imported"]
    return {
        "day": input["day"],
        "batches": len(imported),
        "rows": sum(item["loaded"]["rows"] for item in imported),
        "set_aside": [item["batch"] for item in imported if "set_aside" in item["loaded"]],
    }


TRANSFORM_S = 0.3
"""How long a transform takes: long enough to pause an import in the middle of its fan-out by hand."""


# --- account-opening.yaml and kyc-check.yaml: a shared child process --------------------------------------------


@task("verify-identity")
async def verify_identity(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    return {"verified": bool(input.get("document")), "document": input.get("document")}


@task("screen-sanctions")
async def screen_sanctions(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    return {"listed": str(input.get("name", "")).lower() in SANCTIONED}


SANCTIONED = {"ivan sanctioned"}
