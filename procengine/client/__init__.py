"""A client of procengine's REST API: `AsyncClient` (asyncio) and `Client` (blocking), typed with the models the
server answers with, raising one exception per error code of the contract.

    from procengine.client import Client, InvalidTransition

    with Client("http://127.0.0.1:8080", token="tok") as engine:
        started = engine.start("order-fulfilment", variables={"order_id": "A-1001"})
        try:
            engine.pause(started.executionID, reason="stock check")
        except InvalidTransition as exc:
            print("already", exc.current_status)
        for entry in engine.events(started.executionID):
            print(entry.event, entry.elementKey)
"""

from procengine.client.async_client import FINAL_EVENTS, AsyncClient
from procengine.client.connection import DEFAULT_URL, TOKEN_ENV, URL_ENV
from procengine.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    InternalError,
    InvalidTransition,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProcEngineClientError,
    RateLimited,
    StateCorrupted,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    ValidationError,
)
from procengine.client.streams import EventStream
from procengine.client.sync_client import BlockingEventStream, Client

__all__ = [
    "DEFAULT_URL",
    "FINAL_EVENTS",
    "TOKEN_ENV",
    "URL_ENV",
    "AsyncClient",
    "BadRequest",
    "BlockingEventStream",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "EventStream",
    "InternalError",
    "InvalidTransition",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ProcEngineClientError",
    "RateLimited",
    "StateCorrupted",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "ValidationError",
]
