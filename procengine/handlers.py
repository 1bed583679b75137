"""The import the README showed first: `from procengine.handlers import TaskContext, task` (see procengine.tasks).

Register with the decorator in a module that `procengine serve --handlers pkg.module` imports:

    from procengine.tasks import task

    @task("charge-card")
    async def charge(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        ...  # ctx.idempotency_key is stable across re-runs of the same attempt
"""

from procengine.tasks import HandlerRegistry, TaskContext, TaskFailed, builtin_handlers, default_registry, task

__all__ = ["HandlerRegistry", "TaskContext", "TaskFailed", "builtin_handlers", "default_registry", "task"]
