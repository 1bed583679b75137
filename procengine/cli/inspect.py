"""`procengine inspect`: the operators' view of one execution, or an overview, read straight from Redis.

Read only. Every key name comes from `store.keys.Keys` and every blob goes through `store.codec.decode`;
a blob that does not decode is shown as `{"error": ...}` beside the rest, because the executions an operator
needs to look at are exactly the ones whose state may be broken.

The result is plain data (`inspect_execution`, `list_executions`) that `render_*` turn into a report for a
person or `to_json` into JSON, so what `--json` prints and what the text shows never drift apart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
from redis.asyncio import Redis

from procengine.engine.stored import seed_memory, seed_stack
from procengine.errors import CodecError, NoRedis, NotFound
from procengine.runtime.clock import iso
from procengine.statuses import FINAL_STATUSES
from procengine.store.codec import check_format, decode
from procengine.store.connection import connect
from procengine.store.embedded import running_url
from procengine.store.executions import ExecutionStore, log_time
from procengine.store.history import counters, described
from procengine.store.keys import Keys
from procengine.store.redis_url import RedisTls
from procengine.store.scripts import Scripts
from procengine.store.stored_records import detail_doc, element_doc, thread_doc

__all__ = [
    "embedded_redis_url",
    "inspect_execution",
    "list_executions",
    "open_redis",
    "redact",
    "render_execution",
    "render_list",
    "to_json",
]

LIST_FIELDS = ["status", "processKey", "processVersion", "tenant", "startedAt", "owner"]
_BLOBS = ("stack", "memory")
_DETAIL_WIDTH = 160


# --- reading ----------------------------------------------------------------------------------------


def open_redis(url: str, timeout_s: float, tls: RedisTls | None = None) -> Redis:
    """A client for a one-shot command: bounded socket timeouts and no retries, so that an unreachable
    Redis is reported within `timeout_s` instead of after redis-py's default backoff; `tls`: the private CA and
    client certificate files of a rediss:// URL, as serve takes them."""
    return connect(url, timeout_s=timeout_s, retries=0, tls=tls)


async def inspect_execution(
    redis: Redis, keys: Keys, execution_id: int, log_count: int = 20, tenant: str | None = None
) -> dict[str, Any]:
    """Every key of one execution, decoded; the log as its last `log_count` entries, oldest first. With `tenant`,
    an execution of another tenant is not found (a scope for operators, not a security boundary)."""
    names = keys.execution(execution_id)
    # One MULTI over the execution's keys (one hash slot): commit.lua writes them together, so this is a
    # consistent snapshot even of a running execution. Errors (a key of the wrong type) come back as values.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(names.execution)
        pipe.hgetall(names.state)
        pipe.hgetall(names.threads)
        pipe.hgetall(names.elements)
        pipe.xrevrange(names.log, count=max(log_count, 1))
        pipe.xlen(names.log)
        pipe.lrange(names.history, 0, -1)
        for name in names.all():
            pipe.type(name)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    raw_fields, raw_state, raw_threads, raw_elements, raw_log, log_length, raw_history, *types = replies
    key_types = {name: _text(kind) for name, kind in zip(names.all(), types, strict=True)}
    if all(kind == "none" for kind in key_types.values()):
        raise NotFound(f"execution {execution_id} not found under prefix {keys.prefix!r}")

    fields = {_text(k): _text(v) for k, v in _hash(raw_fields).items()}
    if tenant is not None and fields.get("tenant") != tenant:
        raise NotFound(f"execution {execution_id} not found under prefix {keys.prefix!r}")
    if isinstance(fields.get("error"), str) and fields["error"]:
        with contextlib.suppress(ValueError):  # else shown as stored
            fields["error"] = json.loads(fields["error"])
    indexes = await _indexes(redis, keys, execution_id, fields)
    return {
        "executionID": execution_id,
        "prefix": keys.prefix,
        "execution": fields,
        "state": _state(raw_state),
        "threads": {_text(k): thread_doc(str(_text(k)), _decoded(v)) for k, v in sorted(_hash(raw_threads).items())},
        "elements": {_text(k): element_doc(str(_text(k)), _decoded(v)) for k, v in sorted(_hash(raw_elements).items())},
        "log": _log(raw_log, log_count),
        "logLength": log_length if isinstance(log_length, int) else _error(log_length),
        "history": _history(raw_history),
        "keys": key_types,
        "indexes": indexes,
    }


async def list_executions(
    redis: Redis, keys: Keys, status: str | None = None, limit: int = 50, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Executions of every tenant, or of `tenant` (and of the nodes' `owned` sets), newest first, at most `limit`."""
    store = _store(redis, keys)
    tenants = await tenants_to_read(redis, keys, tenant)
    active = await owned_ids(redis, keys, store)
    rows: list[dict[str, Any]] = []
    batch = min(max(2 * limit, 100), 1000)
    async for ids in _newest_first(store, tenants, active, batch):
        for execution_id, found in zip(ids, await store.many_fields(ids, LIST_FIELDS), strict=True):
            if not found:
                continue  # an index entry whose execution was never written (see docs/redis-keys.md)
            if status is not None and found.get("status") != status:
                continue
            if tenant is not None and found.get("tenant") != tenant:
                continue  # from an owned set, which holds every tenant's
            rows.append(
                {
                    "id": execution_id,
                    "status": found.get("status", ""),
                    "processKey": found.get("processKey", ""),
                    "version": found.get("processVersion", ""),
                    "tenant": found.get("tenant", ""),
                    "startedAt": found.get("startedAt", ""),
                    "owner": found.get("owner", ""),
                }
            )
            if len(rows) >= limit:
                return rows
    return rows


async def owned_ids(redis: Redis, keys: Keys, store: ExecutionStore) -> set[int]:
    """Every execution in a known node's `owned` set: the running and paused ones a node owns (passivated paused
    ones have no owner; the tenants' indexes list them). Before the sets existed, `<prefix>:active` held these."""
    nodes = await redis.smembers(keys.known_nodes)
    found: set[int] = set()
    for node in sorted(_text(n) for n in nodes):
        found.update(await store.owned_ids(str(node)))
    return found


def _store(redis: Redis, keys: Keys) -> ExecutionStore:
    # Only its read methods are used; log_maxlen matters to writes alone.
    return ExecutionStore(redis, keys, Scripts.register(redis), log_maxlen=1)


async def tenants_to_read(redis: Redis, keys: Keys, tenant: str | None) -> list[str]:
    """[tenant] when one is named, else every tenant that has executions."""
    return [tenant] if tenant is not None else await _tenants(redis, keys)


async def _tenants(redis: Redis, keys: Keys) -> list[str]:
    """Tenants that have an executions index: SCAN (never KEYS) for `<prefix>:tenant:{*}:executions`."""
    head, _, tail = keys.executions("\0").partition("\0")
    pattern = Keys(_glob_escape(keys.prefix)).executions("*")
    tenants = set()
    async for name in redis.scan_iter(match=pattern, count=1000, _type="zset"):
        text = _text(name)
        if isinstance(text, str) and text.startswith(head) and text.endswith(tail):
            tenants.add(text[len(head) : len(text) - len(tail)])
    return sorted(tenants)


async def _newest_first(
    store: ExecutionStore, tenants: list[str], extra: set[int], batch: int
) -> AsyncIterator[list[int]]:
    """Yield batches of execution ids, newest first, merged over the tenants' indexes and `extra`.

    Each round reads one page below `before` from every tenant; ids at or above the highest last id of the
    full pages are complete (every tenant has given all of its ids down to there), the rest is read again.
    """
    before: int | None = None
    while True:
        pages = await asyncio.gather(*(store.page(store.keys.executions(t), before, batch) for t in tenants))
        full = [page for page in pages if len(page) == batch]
        cutoff = max(page[-1] for page in full) if full else None
        found = {i for page in pages for i in page if cutoff is None or i >= cutoff}
        found |= {i for i in extra if (before is None or i < before) and (cutoff is None or i >= cutoff)}
        if found:
            yield sorted(found, reverse=True)
        if cutoff is None:
            return
        before = cutoff


async def _indexes(redis: Redis, keys: Keys, execution_id: int, fields: dict[str, Any]) -> dict[str, bool]:
    """Whether the execution is in the keys outside its slot that should hold it: its owner's `owned` set (while it
    has an owner and is not final), the active set (written for nodes of earlier versions) and the tenant's indexes
    of its status and process (on a Redis Cluster written beside its scripts, so a crash can leave them one change
    behind its own keys)."""
    member = str(execution_id)
    wanted = [keys.active]
    tenant, status, process = fields.get("tenant"), fields.get("status"), fields.get("processID")
    owner = fields.get("owner")
    owned = isinstance(owner, str) and owner != "" and status not in FINAL_STATUSES
    if isinstance(tenant, str) and tenant:
        wanted.append(keys.executions(tenant))
        if isinstance(status, str) and status:
            wanted.append(keys.status_index(tenant, status))
        if isinstance(process, str) and process.isdigit():
            wanted.append(keys.process_index(tenant, int(process)))
            if isinstance(status, str) and status:
                wanted.append(keys.process_status_index(tenant, int(process), status))
    sets = [keys.active]
    if owned:
        sets.append(keys.owned(str(owner)))
    async with redis.pipeline(transaction=False) as pipe:
        for key in sets:
            pipe.sismember(key, member)
        for key in wanted[1:]:
            pipe.zscore(key, member)
        replies = await pipe.execute()
    found = {key: bool(reply) for key, reply in zip(sets, replies, strict=False)}
    return found | {key: replies[len(sets) + i] is not None for i, key in enumerate(wanted[1:])}


def _state(raw: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"stack": None, "memory": None, "savedAt": None, "active": None, "format": None}
    for name, value in _hash(raw).items():
        field = _text(name)
        state[str(field)] = _decoded(value) if field in _BLOBS else _text(value)
    # with our fields that are left out at their default (engine/stored.py) shown
    state["stack"] = seed_stack(state["stack"])
    state["memory"] = seed_memory(state["memory"])
    try:
        check_format(state["format"] if isinstance(state["format"], str) else None)
    except CodecError as exc:
        state["formatError"] = exc.message
    return state


def _log(raw: Any, count: int) -> list[dict[str, Any]] | dict[str, str]:
    if isinstance(raw, Exception):
        return _error(raw)
    entries: list[dict[str, Any]] = []
    for entry_id, values in reversed(raw[:count] if count > 0 else []):
        entry: dict[str, Any] = {"id": _text(entry_id), "at": None, "event": None, "elementKey": None, "detail": {}}
        for name, value in values.items():
            field = str(_text(name))
            if field == "detail":
                entry["detail"] = detail_doc(_decoded(value)) if value else {}
            elif field == "at":
                entry["at"] = log_time(str(_text(value))) or None
            else:
                entry[field] = _text(value) or None
        entries.append(entry)
    return entries


def _hash(raw: Any) -> dict[Any, Any]:
    """HGETALL's reply; an error reply (the key has another type) as an empty hash, the type says why."""
    return raw if isinstance(raw, dict) else {}


def _decoded(blob: Any) -> Any:
    try:
        return decode(blob)
    except CodecError as exc:
        shown: dict[str, Any] = {"error": exc.message}
        if isinstance(blob, bytes) and blob:
            shown["raw"] = blob[:64].hex() + ("…" if len(blob) > 64 else "")
        return shown


def _broken(value: Any) -> bool:
    """True for what `_decoded` shows in place of a blob that did not decode."""
    return isinstance(value, dict) and "error" in value and set(value) <= {"error", "raw"}


def _error(reply: Any) -> dict[str, str]:
    return {"error": str(reply)}


def _text(value: Any) -> Any:
    """A Redis string as text; bytes that are not UTF-8 stay bytes (JSON shows them as base64)."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, Exception):
        return _error(value)
    return value


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


# --- where Redis is -----------------------------------------------------------------------------------


def embedded_redis_url(data_dir: Path) -> str:
    """The URL of the embedded redis-server running under `data_dir` (see `redis_server.running_url`)."""
    url = running_url(data_dir)
    if url is None:
        raise NoRedis(
            f"no Redis to inspect: no embedded redis-server is running under {data_dir.resolve()}; give "
            "--redis-url (or set PROCENGINE_REDIS_URL), or the --data-dir of the running `procengine serve`"
        )
    return url


_PASSWORD = re.compile(r"^([A-Za-z0-9+.-]+://[^:/@]*):[^@/]*@")


def redact(url: str) -> str:
    """The URL without its password, for messages (`redis+sentinel://:pw@h1:26379,h2:26379/m` too, which
    urlsplit cannot take apart: its port is two ports)."""
    return _PASSWORD.sub(r"\1:***@", url)


# --- rendering ----------------------------------------------------------------------------------------


def to_json(value: Any) -> str:
    return json.dumps(_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)


def _one_line(value: Any, width: int | None = None) -> str:
    text = json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False)
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def _jsonable(value: Any) -> Any:
    """Decoded msgpack as JSON can hold it: bytes as {"base64": ...}, every map key a string, NaN and the
    infinities as strings (json.dumps would write invalid JSON), msgpack extension types described."""
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, msgpack.ExtType):
        return {"msgpackExt": value.code, "base64": base64.b64encode(value.data).decode()}
    if isinstance(value, msgpack.Timestamp):
        return {"msgpackTimestamp": iso(value.to_unix_nano() // 1_000_000)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode(errors="backslashreplace")
    return json.dumps(_jsonable(key), sort_keys=True)


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        (indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))).rstrip()
        for row in [headers, *rows]
    ]


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return _one_line(value)


def _ms(value: Any) -> str:
    return iso(value) if isinstance(value, int) and not isinstance(value, bool) else _cell(value)


def render_execution(view: dict[str, Any]) -> str:
    execution: dict[str, Any] = view["execution"]
    lines = _header(view, execution)
    lines += _stack(view["state"])
    lines += _memory(view["state"])
    lines += _threads(view["threads"])
    lines += _elements(view["elements"])
    lines += _log_lines(view["log"], view["logLength"])
    return "\n".join(lines) + "\n"


def _header(view: dict[str, Any], execution: dict[str, Any]) -> list[str]:
    def get(name: str) -> str:
        return _cell(execution.get(name))

    def nodes(name: str) -> str:  # the sum of the thread records' (executions written before have it in the hash)
        threads = view.get("threads")
        counts = [t.get(name) for t in threads.values()] if isinstance(threads, dict) and threads else []
        if counts and all(isinstance(count, int) for count in counts):
            return str(sum(counts))
        return get(name)

    lines = [
        f"execution {view['executionID']}  {get('status')}  {get('processKey')} v{get('processVersion')} "
        f"(process {get('processID')})  tenant {get('tenant')}  owner {get('owner')} epoch {get('epoch')}",
        f"  started {get('startedAt')}  stopped {get('stoppedAt')}",
        f"  nodes {nodes('completedNodes')} completed, {nodes('failedNodes')} failed of {get('totalNodes')}",
    ]
    moments = [f"{name} {get(name)}" for name in ("pausedAt", "resumedAt", "cancelledAt") if execution.get(name)]
    if execution.get("pausedDurationMs") not in (None, "", "0"):
        moments.append(f"paused for {get('pausedDurationMs')}ms in all")
    if moments:
        lines.append("  " + "  ".join(moments))
    if execution.get("error"):
        lines.append(f"  error {_one_line(execution['error'])}")
    shown = {"status", "processKey", "processVersion", "processID", "tenant", "owner", "epoch", "startedAt"}
    shown |= {"stoppedAt", "completedNodes", "failedNodes", "totalNodes", "pausedAt", "resumedAt", "cancelledAt"}
    shown |= {"pausedDurationMs", "error"}
    rest = {name: value for name, value in execution.items() if name not in shown and value not in ("", None)}
    if rest:
        lines.append("  " + "  ".join(f"{name} {_cell(value)}" for name, value in sorted(rest.items())))
    base = next(iter(view["keys"]), "")
    shown_keys = []
    for name, kind in view["keys"].items():
        label = name[len(base) :] if name != base and name.startswith(base) else name
        length = f" ({_cell(view['logLength'])} entries)" if kind == "stream" else ""
        if kind == "list" and isinstance(view.get("history"), list):  # the checkpoint history (`--json`: each)
            seqs = [item.get("seq") for item in view["history"]]
            length = f" ({len(seqs)} checkpoints kept, seq {seqs[0]}..{seqs[-1]})" if seqs else ""
        shown_keys.append(f"{label} {_cell(kind)}{length}")
    lines.append(f"  keys {', '.join(shown_keys)}")
    indexes = "  ".join(f"{name} {'yes' if found else 'NO'}" for name, found in view["indexes"].items())
    lines.append(f"  in {indexes}")
    return lines


def _stack(state: dict[str, Any]) -> list[str]:
    stack = state.get("stack")
    saved = f"saved {_cell(state.get('savedAt'))}, active {_cell(state.get('active'))}"
    if state.get("formatError"):
        saved += f", format {_cell(state.get('format'))}: {state['formatError']}"
    if stack is None:
        return ["", f"stack  (none: {saved})"]
    if not isinstance(stack, dict) or not isinstance(stack.get("execution_stack"), list):
        return ["", f"stack  ({saved})", f"  {_one_line(stack)}"]
    entries: list[Any] = stack["execution_stack"]
    about = [f"depth {_cell(stack.get('stack_depth'))}", f"next order {_cell(stack.get('next_order'))}"]
    if stack.get("paused_at_node") is not None:
        about.append(f"paused at node {_cell(stack['paused_at_node'])}")
    lines = ["", f"stack  ({', '.join(about)}; {saved})"]
    known = {"execution_order", "element_key", "element_type", "element_id", "thread_key", "path", "attempt"}
    known |= {"started_at_ms", "due_at_ms", "remaining_ms"}
    rows = []
    for entry in entries:
        if not isinstance(entry, dict):
            rows.append(["?", _one_line(entry), "", "", "", "", ""])
            continue
        timer = ""
        if entry.get("due_at_ms") is not None:
            timer = f"due {_ms(entry['due_at_ms'])}"
        elif entry.get("remaining_ms") is not None:
            timer = f"remaining {_cell(entry['remaining_ms'])}ms"
        rest = {name: value for name, value in entry.items() if name not in known}
        rows.append(
            [
                f"#{_cell(entry.get('execution_order'))}",
                f"{_cell(entry.get('element_key'))} (node {_cell(entry.get('element_id'))})",
                _cell(entry.get("element_type")),
                f"thread {_cell(entry.get('thread_key'))}"
                if entry.get("path", entry.get("thread_key")) == entry.get("thread_key")
                else f"lane {_cell(entry.get('path'))}",
                f"attempt {_cell(entry.get('attempt'))}",
                f"started {_ms(entry.get('started_at_ms'))}",
                (timer + (f"  {_one_line(rest)}" if rest else "")).strip(),
            ]
        )
    if not rows:
        return [*lines, "  (empty)"]
    return lines + _table([""] * 7, rows)[1:]  # no header: each cell says what it is


def _memory(state: dict[str, Any]) -> list[str]:
    memory = state.get("memory")
    if memory is None:
        return []
    if not isinstance(memory, dict) or _broken(memory):
        return ["", "memory", f"  {_one_line(memory)}"]
    lines: list[str] = []
    for title, name in (("variables", "variables"), ("node outputs", "node_outputs"), ("signals", "signals")):
        values = memory.get(name)
        if name == "signals" and not values:
            continue
        if not isinstance(values, dict):
            lines += ["", title, f"  {_one_line(values)}"]
            continue
        lines += ["", f"{title}  ({len(values)})"]
        lines += [f"  {_key(key)} = {_one_line(value)}" for key, value in sorted(values.items(), key=_sort_key)]
    return lines


def _sort_key(item: tuple[Any, Any]) -> str:
    return _key(item[0])


def _threads(threads: dict[str, Any]) -> list[str]:
    lines = ["", f"threads  ({len(threads)})"]
    rows = []
    for key, thread in threads.items():
        if not isinstance(thread, dict) or _broken(thread):
            rows.append([key, _one_line(thread), "", "", ""])
            continue
        rows.append(
            [
                key,
                _cell(thread.get("threadExecutionID")),
                _cell(thread.get("status")),
                f"{_cell(thread.get('completedNodes'))}/{_cell(thread.get('totalNodes'))}",
                _cell(thread.get("failedNodes")),
            ]
        )
    return lines + _table(["KEY", "ID", "STATUS", "DONE", "FAILED"], rows) if rows else lines


def _elements(elements: dict[str, Any]) -> list[str]:
    lines = ["", f"elements  ({len(elements)})"]
    rows = []

    def started(item: tuple[str, Any]) -> str:
        element = item[1]
        return str(element.get("startedAt") or "") if isinstance(element, dict) else ""

    for key, element in sorted(elements.items(), key=started):
        if not isinstance(element, dict) or _broken(element):
            rows.append([key, "", "", "", "", "", "", _one_line(element)])
            continue
        notes = []
        if element.get("error") is not None:
            notes.append(f"error {_one_line(_error_text(element), _DETAIL_WIDTH)}")
        if element.get("retryAt") is not None:
            notes.append(f"retry at {_ms(element['retryAt'])}")
        if element.get("output") is not None:
            notes.append(f"output {_one_line(element['output'], _DETAIL_WIDTH)}")
        rows.append(
            [
                key,
                _cell(element.get("type")),
                _cell(element.get("threadKey")),
                _cell(element.get("status")),
                _cell(element.get("attempts")),
                _cell(element.get("startedAt")),
                _cell(element.get("stoppedAt")),
                "  ".join(notes),
            ]
        )
    headers = ["KEY", "TYPE", "THREAD", "STATUS", "ATT", "STARTED", "STOPPED", "DETAIL"]
    return lines + _table(headers, rows) if rows else lines


def _log_lines(log: Any, length: Any) -> list[str]:
    if not isinstance(log, list):
        return ["", "log", f"  {_one_line(log)}"]
    lines = ["", f"log  (last {len(log)} of {_cell(length)})"]
    rows = [
        [
            _cell(entry.get("at")),
            _cell(entry.get("event")),
            _cell(entry.get("elementKey")),
            _one_line(entry.get("detail"), _DETAIL_WIDTH) if entry.get("detail") else "",
        ]
        for entry in log
    ]
    return lines + _table(["AT", "EVENT", "ELEMENT", "DETAIL"], rows) if rows else lines


def render_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no executions\n"
    headers = ["ID", "STATUS", "PROCESS", "VERSION", "TENANT", "STARTED", "OWNER"]
    cells = [
        [
            str(row["id"]),
            _cell(row["status"]),
            _cell(row["processKey"]),
            _cell(row["version"]),
            _cell(row["tenant"]),
            _cell(row["startedAt"]),
            _cell(row["owner"]),
        ]
        for row in rows
    ]
    return "\n".join(_table(headers, cells, indent="")) + "\n"


def _error_text(element: dict[str, Any]) -> Any:
    """The error with its type once: a handler's error already starts with its class, as Python prints it."""
    error, kind = element["error"], element.get("errorType")
    if not kind or (isinstance(error, str) and error.startswith(f"{kind}:")):
        return error
    return f"{kind}: {error}"


def _history(raw: Any) -> list[dict[str, Any]] | dict[str, str]:
    """The checkpoint history's entries, decoded (its first element, the list's counters, left out)."""
    if not isinstance(raw, list):
        return _error(raw)
    return [described(entry) for entry in (raw[1:] if raw and counters(raw[0]) is not None else raw)]
