"""What the API commands read from their command line and from files: variables, payloads, definitions.

A value that cannot be used is an `InputError`, a usage error (exit 2) that names the flag or file, so
nothing is sent to the server that the user did not mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DocumentError",
    "InputError",
    "load_document",
    "parse_batch",
    "parse_json",
    "parse_mapping",
    "parse_variables",
    "positive_int",
    "read_file",
]

_START_FIELDS: Final = frozenset({"processKey", "processID", "variables", "idempotencyKey"})

_JSON_SUFFIXES: Final = frozenset({".json"})


class InputError(Exception):
    """A flag, argument or file that cannot be used; the message names it."""


class DocumentError(Exception):
    """A file that was read but does not parse as JSON or YAML; the message says where."""


def positive_int(text: str) -> int:
    """argparse type of ids and limits: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_json(text: str, where: str) -> Any:
    """A JSON value given on the command line."""
    try:
        return json.loads(text)
    except ValueError as exc:
        hint = f"; a string is quoted: '\"{text}\"'" if text and not text.startswith(("{", "[", '"')) else ""
        raise InputError(f"{where}: not JSON ({exc}){hint}") from None


def parse_variables(assignments: list[str], vars_file: Path | None) -> dict[str, Any]:
    """The start variables: the object of `--vars-file`, then each `--var NAME=JSON` over it."""
    variables: dict[str, Any] = {}
    if vars_file is not None:
        loaded = _document_or_input_error(vars_file, "--vars-file")
        if not isinstance(loaded, dict):
            raise InputError(f"--vars-file {vars_file}: must hold an object of variables, not {_kind(loaded)}")
        variables.update(loaded)
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise InputError(f"--var {assignment!r}: must look like NAME=JSON, e.g. amount=42 or who='\"dana\"'")
        variables[name.strip()] = parse_json(value, f"--var {name.strip()}")
    return variables


def parse_attribute_filters(assignments: list[str]) -> dict[str, Any]:
    """`list --attr`: NAME=VALUE (equal; a word of a text), or NAME.gte=VALUE, .gt, .lte, .lt (a number's or an
    ISO-8601 time's range); VALUE as text, the server reads it by the attribute's type."""
    found: dict[str, Any] = {}
    for assignment in assignments:
        target, equals, value = assignment.partition("=")
        name, _, op = target.strip().partition(".")
        if not equals or not name or not value or (op and op not in ("gte", "gt", "lte", "lt")):
            raise InputError(
                f"--attr {assignment!r}: must look like NAME=VALUE or NAME.gte=VALUE (also .gt, .lte, .lt), "
                "e.g. customer=acme or amount.gte=100"
            )
        if op:
            ranges = found.setdefault(name, {})
            if not isinstance(ranges, dict):
                raise InputError(f"--attr {assignment!r}: {name} is also given a value to equal")
            ranges[op] = value
        elif name in found:
            raise InputError(f"--attr {assignment!r}: {name} is given twice")
        else:
            found[name] = value
    return found


def parse_attributes(assignments: list[str]) -> dict[str, Any]:
    """`start --attr NAME=JSON`: the start's attributes (a time as a JSON string, ISO-8601)."""
    found: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise InputError(f"--attr {assignment!r}: must look like NAME=JSON, e.g. amount=42 or customer='\"acme\"'")
        found[name.strip()] = parse_json(value, f"--attr {name.strip()}")
    return found


def parse_batch(text: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    """The starts of `start --batch`: JSON Lines, an object a line with any of processKey, processID, variables
    and idempotencyKey (blank lines skipped); (line number, start) each."""
    starts: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        start = parse_json(line, f"{where} line {number}")
        if not isinstance(start, dict):
            raise InputError(f"{where} line {number}: must be an object of start fields, not {_kind(start)}")
        unknown = sorted(set(start) - _START_FIELDS)
        if unknown:
            raise InputError(f"{where} line {number}: unknown fields {unknown}; a start has {sorted(_START_FIELDS)}")
        if not isinstance(start.get("variables", {}), dict):
            raise InputError(f"{where} line {number}: variables must be an object")
        starts.append((number, start))
    return starts


def read_file(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{flag} {path}: {exc.strerror or exc}") from None


def load_document(path: Path, raw: bytes) -> Any:
    """A file's content as the value it holds: JSON for a .json file, else YAML (which JSON is a part of).
    DocumentError if it does not parse."""
    import yaml  # here: only the commands that read a file need it

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where built
    try:
        if path.suffix.lower() in _JSON_SUFFIXES:
            return json.loads(raw)
        return yaml.load(raw, Loader=loader)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() in _JSON_SUFFIXES else "YAML"
        raise DocumentError(f"{path}: malformed {kind}: {' '.join(str(exc).split())}") from None


def _document_or_input_error(path: Path, flag: str) -> Any:
    try:
        return load_document(path, read_file(path, flag))
    except DocumentError as exc:
        raise InputError(f"{flag} {exc}") from None


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def parse_mapping(given: list[str], command: str) -> dict[str, str]:
    """`--map OLD=NEW` (repeatable): the elements a migration renames."""
    mapping: dict[str, str] = {}
    for pair in given:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise InputError(f"{command}: --map takes OLD=NEW, not {pair!r}")
        mapping[old] = new
    return mapping
