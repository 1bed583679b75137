"""The client's transport: one server, one tenant's token, a connection pool; a request and its answer's `data`
parsed into a model, errors raised as `procengine.client.errors`, a 503 with Retry-After retried, an event stream
resumed with Last-Event-ID. `AsyncClient` is made of the verb families built on it (client/async_client.py,
repair.py, bulk.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp
import pydantic
from pydantic import BaseModel

from procengine.api.problems import problems as listed_problems
from procengine.client.connection import BASE_PATH, resolve_token, resolve_url
from procengine.client.errors import (
    ConnectionFailed,
    ProcEngineClientError,
    Unavailable,
    UnexpectedAnswer,
    ValidationError,
    error_from_answer,
)
from procengine.client.sse import parse_events
from procengine.client.streams import OPENED, Opened

__all__ = ["JSON", "AsyncTransport", "checked_body", "dump", "execution_path", "page_params", "request_body"]

M = TypeVar("M", bound=BaseModel)

JSON: Final = "application/json"


class AsyncTransport:
    """The plumbing every verb of `AsyncClient` goes through (see `AsyncClient` for the arguments)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        reconnects: int = 3,
        stream_idle_timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.api_url = self.url + BASE_PATH
        self._token = resolve_token(token)
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.reconnects = reconnects
        self.stream_idle_timeout = stream_idle_timeout
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (not a session that was given)."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def _data(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        body: bytes | None = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> M:
        data = await self._call(
            method,
            self.api_url + path,
            body=body,
            content_type=content_type,
            params=params,
            headers=headers,
            retry=retry,
        )
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer(f"{method} {path}: the answer is not a {model.__name__}: {exc}") from None

    async def _call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        enveloped: bool = True,
    ) -> Any:
        """The `data` of a successful answer (the whole document if not `enveloped`); the error it was
        otherwise, after the retries a 503 with Retry-After allows."""
        sent = {**self._headers(), **(headers or {})}
        if body is not None:
            sent["Content-Type"] = content_type
        attempt = 0
        while True:
            try:
                async with self._session_now().request(
                    method, url, data=body, params=params, headers=sent, timeout=self._timeout()
                ) as response:
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _connection_failed(self.url, exc) from exc
            answer = _json_or_none(raw)
            if response.status < 400:
                return _unwrap(answer, method, url) if enveloped else answer
            error = error_from_answer(
                response.status,
                answer,
                retry_after=response.headers.get("Retry-After"),
                request_id=response.headers.get("X-Request-ID"),
            )
            if not (retry and attempt < self.retries and _retryable(error)):
                raise error
            attempt += 1
            await asyncio.sleep(self._wait(error))

    async def _stream(
        self, path: str, after: str | None, model: type[M], *, ends: bool
    ) -> AsyncGenerator[M | Opened, None]:
        """The items of an event stream, resumed after the last one seen when the connection breaks (a reset,
        a 503, or, for a stream that never ends, an end)."""
        last = after
        failures = 0
        while True:
            headers = {**self._headers(), "Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            problem: ProcEngineClientError
            try:
                async with self._session_now().get(
                    self.api_url + path, headers=headers, timeout=self._stream_timeout()
                ) as response:
                    if response.status >= 400:
                        error = error_from_answer(
                            response.status,
                            _json_or_none(await response.read()),
                            retry_after=response.headers.get("Retry-After"),
                            request_id=response.headers.get("X-Request-ID"),
                        )
                        if not _retryable(error):
                            raise error
                        problem = error
                    else:
                        yield OPENED
                        resumed_after = last
                        async for event in parse_events(response.content.iter_any()):
                            if event.id is not None and event.id == resumed_after:
                                continue  # given again: not news, and no progress to reset `failures` for
                            item = _parse_item(model, event.data, path)
                            last = event.id or last
                            failures = 0
                            yield item
                        if ends:
                            return  # the server ended it: the execution has ended
                        problem = ConnectionFailed(f"the event stream {path} ended")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = _connection_failed(self.url, exc)
            failures += 1
            if failures > self.reconnects:
                raise problem
            await asyncio.sleep(self._wait(problem) if isinstance(problem, Unavailable) else 0.2 * failures)

    def _session_now(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use: in the running event loop, which it belongs to."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "procengine-client", "Accept": JSON}, raise_for_status=False
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.timeout)

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=self.stream_idle_timeout)

    def _wait(self, error: ProcEngineClientError) -> float:
        """How long to wait before trying again: the server's Retry-After, within `max_retry_wait`."""
        retry_after = error.retry_after if isinstance(error, Unavailable) else None
        return min(retry_after if retry_after is not None else 1.0, self.max_retry_wait)

    async def _text(self, url: str) -> str:
        """A plain-text answer (metrics), not enveloped; not retried."""
        session = self._session_now()
        try:
            async with session.get(url, timeout=self._timeout()) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _connection_failed(self.url, exc) from exc
        if response.status >= 400:
            raise error_from_answer(response.status, _json_or_none(text.encode()))
        return text


def execution_path(execution_id: int, what: str) -> str:
    """The path of `what` of an execution, under the API's base path."""
    return f"/executions/processes/{int(execution_id)}/{what}"


def request_body(model: type[M], value: dict[str, Any]) -> M:
    """A request body checked here by the model the server checks it with, refused as the server would."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        problems = listed_problems(exc, value)
        noun = "problem" if len(problems) == 1 else "problems"
        raise ValidationError(f"request body is invalid: {len(problems)} {noun}", problems) from None


def dump(value: Any) -> bytes:
    """A value as the compact JSON the API reads; ValidationError for one JSON cannot hold (NaN, a set)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError("the value cannot be sent as JSON", [str(exc)]) from None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _unwrap(answer: Any, method: str, url: str) -> Any:
    if not (isinstance(answer, dict) and answer.get("success") is True and "data" in answer):
        raise UnexpectedAnswer(f"{method} {url}: the answer is not the API's envelope")
    return answer["data"]


def _parse_item(model: type[M], data: str, path: str) -> M:
    try:
        return model.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise UnexpectedAnswer(f"an event of {path} is not a {model.__name__}: {exc}") from None


def _retryable(error: ProcEngineClientError) -> bool:
    return isinstance(error, Unavailable) and error.retry_after is not None


def _connection_failed(url: str, exc: BaseException) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(f"cannot reach the server at {url}: {reason}")


def checked_body(model: type[BaseModel], value: dict[str, Any]) -> bytes:
    """`value` checked here by the model the server checks it with (refused as the server would), sent as given:
    only the fields it has."""
    request_body(model, value)
    return dump(value)


def page_params(limit: int | None, cursor: str | None) -> dict[str, str]:
    """The query of a page: `limit` and the `cursor` an earlier page gave, those given."""
    return {name: str(value) for name, value in {"limit": limit, "cursor": cursor}.items() if value is not None}
