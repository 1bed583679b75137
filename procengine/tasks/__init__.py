"""Task handlers: the registry (`@task`), the built-ins, and what a handler gets (`TaskContext`)."""

from procengine.tasks.builtin import builtin_handlers
from procengine.tasks.registry import HandlerRegistry, TaskContext, TaskFailed, default_registry, task

__all__ = ["HandlerRegistry", "TaskContext", "TaskFailed", "builtin_handlers", "default_registry", "task"]
