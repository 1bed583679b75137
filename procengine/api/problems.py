"""pydantic's validation errors as the problem lists users read: "threads.0.elements.1.handler: Field required".

One formatter for every 422 (request bodies, query strings, definitions), so problems read the same
wherever they come from.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from procengine.errors import ValidationFailed

__all__ = ["problems", "refusal", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], value: Any, what: str = "request body") -> M:
    """`value` as a `model`, or ValidationFailed listing every problem."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise refusal(f"{what} is invalid", problems(exc, value)) from None


def refusal(what: str, listed: list[str]) -> ValidationFailed:
    """The 422 for `listed` problems: "<what>: 3 problems"."""
    noun = "problem" if len(listed) == 1 else "problems"
    return ValidationFailed(f"{what}: {len(listed)} {noun}", listed)


def problems(exc: ValidationError, value: Any = None, at: str = "") -> list[str]:
    """Every error as "threads.0.elements.1.handler: Field required" (the bare message at the root).

    With the validated `value`, locations are paths into that document: pydantic puts the tag of a
    discriminated union into `loc` ("elements.1.task.handler"), which names no key the user wrote.
    `at` is the path of `value` inside a larger document, put in front of every location.
    """
    listed = []
    for error in exc.errors(include_url=False, include_input=False):
        path = [at] * bool(at) + _document_path(error["loc"], value)
        message = error["msg"].removeprefix("Value error, ")  # a rule of ours: its message is the whole story
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # name the field that is wrong: "elements.0.type: 'frobnicate' is not one of 'task', ..."
            context = error.get("ctx", {})
            path.append(str(context.get("discriminator", "")).strip("'"))
            if error["type"] == "union_tag_invalid":
                message = f"{context.get('tag')!r} is not one of {context.get('expected_tags')}"
            else:
                message = "Field required"
        where = ".".join(path)
        listed.append(f"{where}: {message}" if where else message)
    return listed


def _document_path(loc: tuple[int | str, ...], value: Any) -> list[str]:
    path: list[str] = []
    current = value
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (not last and _is_tag(current, part)) or (
            last and isinstance(current, dict) and current.get("type") == part
        ):
            # the union's tag (last: a rule over the whole element, such as onTimeout needing timeoutMs)
            continue
        current = _child(current, part)
        path.append(str(part))
    return path


def _is_tag(value: Any, part: int | str) -> bool:
    """A loc part that is no key of `value` but one of its string values: the discriminator's tag."""
    return (
        isinstance(value, dict) and part not in value and any(v == part for v in value.values() if isinstance(v, str))
    )


def _child(value: Any, part: int | str) -> Any:
    if isinstance(value, dict):
        return value.get(part)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None
