"""The tenant's search indexes: an execution's attributes, its start time and its error type, and how a write moves
them.

Beside the status indexes (`indexes.py`), in the tenant's slot, an execution is in:

- `started` (every execution): scored by its start time (epoch ms), for `startedAfter` / `startedBefore`;
- per keyword or bool attribute, the sorted set of its (name, value), scored by the execution id;
- per number or time attribute, the one sorted set of its name, scored by the value;
- per text attribute, the sorted set of each (name, lowercased word) of its value, scored by the execution id;
- while failed, the sorted set of its error type, scored by the execution id;
- `search` (a hash): the execution id -> what of the above it is in beyond `started` (its attributes and error type,
  `SearchEntry.to_field`), which the sweeper reads to take those entries out once the execution's own keys expired.

The edits are `IndexOp`s that go in the same write as the status indexes' (`ExecutionStore.commit`). The stored
form of the attributes is {name: [type, value]} (a time as epoch ms): the index needs the type, and the execution
hash's `attributes` field holds the same JSON, so anything that has the hash can say where its entries are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from procengine.store.indexes import IndexOp
from procengine.store.keys import Keys

AttributeType = Literal["keyword", "text", "number", "bool", "time"]
ATTRIBUTE_TYPES: Final[tuple[AttributeType, ...]] = get_args(AttributeType)
BY_ID: Final = frozenset({"keyword", "bool", "text"})
"""Types whose index is scored by the execution id (a page of them is read newest first, like a status index)."""
BY_VALUE: Final = frozenset({"number", "time"})
"""Types whose one index per name is scored by the value (range filters)."""
ATTRIBUTES_FIELD: Final = "attributes"
"""Execution hash field: the execution's attributes, JSON {name: [type, value]}; absent when it has none."""
MOVED_BY: Final = frozenset({ATTRIBUTES_FIELD, "status", "error"})
"""Execution hash fields whose change may move the execution in the search indexes."""
MAX_WORDS: Final = 64
"""The most distinct words of one text attribute that are indexed (the first ones)."""
_WORD: Final = re.compile(r"\w+")

Stored = dict[str, list[Any]]
"""Attributes as stored: {name: [type, value]}."""


def words(text: str) -> list[str]:
    """The indexed words of a text value: lowercased, distinct, in order, at most MAX_WORDS."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))[:MAX_WORDS]


def member_value(kind: str, value: Any) -> str:
    """A keyword's or bool's value as its index key names it."""
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def encode_attributes(attributes: Stored) -> str:
    """The `attributes` field ("" for none: the field is deleted)."""
    return json.dumps(attributes, separators=(",", ":"), sort_keys=True) if attributes else ""


def decode_attributes(field: str | None) -> Stored:
    """The `attributes` field read back; {} for none, or for one edited by hand into something else."""
    if not field:
        return {}
    try:
        doc = json.loads(field)
    except ValueError:
        return {}
    return _attributes_of(doc)


def _attributes_of(doc: Any) -> Stored:
    if not isinstance(doc, dict):
        return {}
    return {
        name: [pair[0], pair[1]]
        for name, pair in doc.items()
        if isinstance(pair, list) and len(pair) == 2 and pair[0] in ATTRIBUTE_TYPES
    }


def error_type(fields: Mapping[str, str]) -> str | None:
    """The error type of a failed execution, from its hash (None: not failed, or no error recorded)."""
    if fields.get("status") != "failed" or not fields.get("error"):
        return None
    try:
        doc = json.loads(fields["error"])
    except ValueError:
        return None
    kind = doc.get("type") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) and kind else None


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """What places an execution in the search indexes beyond `started`."""

    attributes: Stored
    error_type: str | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> SearchEntry:
        return cls(decode_attributes(fields.get(ATTRIBUTES_FIELD)), error_type(fields))

    def to_field(self) -> str:
        """The `search` hash's value ("": none, the field is deleted)."""
        if not self.attributes and self.error_type is None:
            return ""
        doc: dict[str, Any] = {"a": self.attributes} if self.attributes else {}
        if self.error_type is not None:
            doc["e"] = self.error_type
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_field(cls, field: str | None) -> SearchEntry:
        if not field:
            return cls({})
        try:
            doc = json.loads(field)
        except ValueError:
            return cls({})
        if not isinstance(doc, dict):
            return cls({})
        kind = doc.get("e")
        return cls(_attributes_of(doc.get("a")), kind if isinstance(kind, str) else None)


def _entries(keys: Keys, tenant: str, execution_id: int, entry: SearchEntry) -> dict[str, str]:
    """Index key -> score of every entry `entry` puts the execution in."""
    member = str(execution_id)
    found: dict[str, str] = {}
    for name, (kind, value) in entry.attributes.items():
        if kind in BY_VALUE:
            found[keys.attribute_range(tenant, name)] = repr(float(value)) if isinstance(value, float) else str(value)
        elif kind == "text":
            for word in words(str(value)):
                found[keys.attribute_word(tenant, name, word)] = member
        else:
            found[keys.attribute_value(tenant, name, member_value(kind, value))] = member
    if entry.error_type is not None:
        found[keys.error_index(tenant, entry.error_type)] = member
    return found


def changed(keys: Keys, tenant: str, execution_id: int, before: SearchEntry, after: SearchEntry) -> list[IndexOp]:
    """The edits that move the execution from `before`'s entries to `after`'s, its `search` note with them."""
    if before == after:
        return []
    member = str(execution_id)
    old, new = _entries(keys, tenant, execution_id, before), _entries(keys, tenant, execution_id, after)
    ops = [IndexOp("ZREM", key, (member,)) for key in old if key not in new]
    ops += [IndexOp("ZADD", key, (score, member)) for key, score in new.items() if old.get(key) != score]
    note = after.to_field()
    if note:
        ops.append(IndexOp("HSET", keys.search(tenant), (member, note)))
    elif before.to_field():
        ops.append(IndexOp("HDEL", keys.search(tenant), (member,)))
    return ops


def created(keys: Keys, tenant: str, execution_id: int, started_ms: int, attributes: Stored) -> list[IndexOp]:
    """A new execution: into `started`, and its attributes' indexes."""
    member = str(execution_id)
    start = IndexOp("ZADD", keys.started(tenant), (str(started_ms), member))
    return [start, *changed(keys, tenant, execution_id, SearchEntry({}), SearchEntry(attributes))]


def removed(keys: Keys, tenant: str, execution_id: int, entry: SearchEntry) -> list[IndexOp]:
    """Out of every search index (a start undone, or an execution whose retention is over)."""
    member = str(execution_id)
    ops = [IndexOp("ZREM", keys.started(tenant), (member,))]
    ops += [IndexOp("ZREM", key, (member,)) for key in _entries(keys, tenant, execution_id, entry)]
    ops.append(IndexOp("HDEL", keys.search(tenant), (member,)))
    return ops


def _status_only(before: Mapping[str, str], update: Mapping[str, str]) -> bool:
    """The write changes the status alone of the fields that place an execution, between two statuses that are not
    failed (`error_type` reads the error of a failed execution only)."""
    return (
        update.keys() & MOVED_BY == {"status"} and before.get("status") != "failed" and update.get("status") != "failed"
    )


def written(keys: Keys, execution_id: int, before: Mapping[str, str], update: Mapping[str, str]) -> list[IndexOp]:
    """The edits a write of the execution hash fields `update` makes to the search indexes, the hash having been
    `before` (its attributes changed, it failed, or it is failed no more). [] when the hash names no tenant."""
    if update.keys().isdisjoint(MOVED_BY):
        return []
    if _status_only(before, update):  # a pause, a resume: no entry moves (only a failure has an error type)
        return []
    tenant = before.get("tenant") or update.get("tenant")
    if not tenant:
        return []
    after = {**before, **update}
    return changed(keys, tenant, execution_id, SearchEntry.of(before), SearchEntry.of(after))
