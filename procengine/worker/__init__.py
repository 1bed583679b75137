"""`procengine worker`: the same `@task` handlers, run outside the engine for task elements with a `queue`
(docs/workers.md). It speaks to the engine over REST only, through the client.

    from procengine.worker import Worker

    async with AsyncClient(url, token, timeout=40) as client:
        await Worker(client, ["payments"], handlers, concurrency=16).run(stop)
"""

from procengine.worker.runner import Worker

__all__ = ["Worker"]
