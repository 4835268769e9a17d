"""The presence HTTP client: reports a node's sockets and queries the registry."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, TypedDict
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._ids import check_id, check_meta

__all__ = ["Presence", "PresenceError", "PresenceUnavailable", "SocketInfo", "ClientStats"]

MAX_EVENTS_PER_REQUEST = 1000
"""The API's limit on events in one `POST /v1/nodes/{id}/events`."""
MAX_BODY_BYTES = 1_000_000
"""Bodies stay below the API's 1 MiB limit even with large meta maps."""
_FIRST_BACKOFF = 0.05
_EVENT_INDEX = re.compile(r"events\[(\d+)\]")

UserIdFunction = Callable[[str, Mapping[str, Any], Any], "str | None | Awaitable[str | None]"]


class PresenceError(Exception):
    """An answer of presence that is an error: `status` (0 for a network error), `code`, `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PresenceUnavailable(PresenceError):
    """Not answered or not recorded (503, 408, 429, another 5xx, a timeout or a network error): try again.

    Never read it as "the socket is gone".
    """


@dataclass(frozen=True)
class Change:
    """One change of the registry: `id` its position (pass it as `since` to resume after it),
    `type` (`socket.connected`, `socket.disconnected`, `user.online`, `user.offline`, `node.up`,
    `node.down`, `node.left`), `data` its fields (`socketId`, `nodeId`, `userId`, `reason`, `at`, ...)."""

    id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class SocketInfo:
    """A live socket as the registry answers it."""

    socket_id: str
    node_id: str
    node_address: str
    user_id: str | None
    connected_at: datetime
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SocketInfo:
        """Build from a `LiveSocket` object of the API."""
        return cls(
            socket_id=data["socketId"],
            node_id=data["nodeId"],
            node_address=data.get("nodeAddress", ""),
            user_id=data.get("userId"),
            connected_at=_timestamp(data["connectedAt"]),
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class Departure:
    """How a socket that is no longer connected went, while the registry keeps it (its socket
    history retention, with the change stream on)."""

    socket_id: str
    disconnected_at: datetime
    #: `disconnected`, `node_down`, `node_left` or `moved`.
    reason: str


class ClientStats(TypedDict):
    """Counters and sizes of one `Presence` (see `Presence.stats`)."""

    sockets: int
    users: int
    pending: int
    in_flight: int
    registered: int
    node_registered: bool
    requests: int
    events_sent: int
    heartbeats: int
    heartbeat_failures: int
    resyncs: int
    retries: int
    dropped: int
    superseded: int


class _Done:
    """An awaitable that is already complete: `connected()` may be awaited or not."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # makes this a generator


_DONE = _Done()

_Sent = tuple[str, bool, bool]
"""An event of a batch: socket id, whether it is a connect, whether the registry held the socket before."""


class Presence:
    """Reports one node's sockets to presence over HTTP, and queries the registry.

    `connected()` and `disconnected()` change local state only and wake a background sender, which
    coalesces the changes per socket and posts them in batches of at most 1,000 events, one request
    in flight at a time. A heartbeat task registers the node, sends its incarnation (new for every
    `Presence`) and distinct user count, and resends every local socket when the registry asks for
    it (`resyncRequired`). Requests answered 503, 408, 429, another 5xx or not at all are retried
    with exponential backoff and jitter; the pending changes are never more than one entry per
    socket touched. `close()` leaves the registry: every socket of the node reads dead at once.

    The tasks start at `start()` or at the first `connected()`/`disconnected()` made inside a
    running event loop. A `Presence` used only for queries never registers the node. Use it from
    one event loop thread.

    Args:
        url: Base URL of `presence serve`, e.g. `http://presence:8080`.
        token: A write token (a read token is enough for queries), or None when the server has none.
        node_id: This node's stable id (a pod name).
        address: The address other nodes reach this node at (e.g. `10.0.0.5:3000`), or None.
        heartbeat: Seconds between heartbeats; None follows the server's advice (`heartbeatIntervalMs`).
        incarnation: The process's incarnation; None picks a fresh random one (the normal case).
        meta: The node's meta map, sent with every heartbeat.
        user_id: For `attach()`: `user_id(sid, environ, auth)` returns the socket's user id (or None);
            it may be a coroutine function.
        session: An `aiohttp.ClientSession` to send with; None creates one (closed by `close()`).
        request_timeout: Seconds one request may take before it counts as failed and is retried
            (a heartbeat: at most one interval).
        logger: Where warnings go; default `logging.getLogger("presence_client")`.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        node_id: str,
        address: str | None = None,
        *,
        heartbeat: float | None = None,
        incarnation: str | None = None,
        meta: Mapping[str, str] | None = None,
        user_id: UserIdFunction | None = None,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError("heartbeat must be positive seconds")
        self.node_id = check_id(node_id, "node_id")
        self.address = check_id(address, "address") if address is not None else None
        self.incarnation = check_id(incarnation, "incarnation") if incarnation else secrets.token_hex(16)
        self._node_meta = check_meta(meta, "meta")
        self._base = url.rstrip("/")
        self._node_path = "/v1/nodes/" + quote(self.node_id, safe="")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._fixed_interval = heartbeat
        self._interval = heartbeat if heartbeat is not None else 2.0
        self._user_id = user_id
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._log = logger or logging.getLogger("presence_client")

        # The local truth: socket id -> (user id, meta). It bounds everything below.
        self._local: dict[str, tuple[str | None, dict[str, str] | None]] = {}
        # When each local socket connected (RFC 3339, µs): sent with its connect, so that a connect
        # arriving late at presence loses to a newer connection of the socket on another node.
        self._connected_at: dict[str, str] = {}
        self._users: dict[str, int] = {}
        # Sockets whose state changed since last sent; the state itself is read from _local at send time.
        self._pending: OrderedDict[str, None] = OrderedDict()
        # Sockets the registry may hold for this node (a connect was sent, no disconnect confirmed).
        self._registered: set[str] = set()
        # Local sockets the server refused (invalid id or meta): not sent again until changed.
        self._rejected: set[str] = set()
        # The batch in flight: (socket id, is a connect, was in _registered before this batch).
        self._in_flight: list[_Sent] = []

        self._started = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._heartbeat_now: asyncio.Event | None = None
        self._node_ready: asyncio.Event | None = None
        self._retry_now: asyncio.Event | None = None
        self._resync_delay = 0.0
        self._node_generation = 0  # +1 whenever a request learns that the node is not registered
        self._recovered = False  # a heartbeat was answered again after failures
        self._replaced_in_a_row = 0  # heartbeats answered `replaced` (another incarnation was registered)
        self._ok_since_replaced = 0
        # When to list the node's records and disconnect those this process does not hold (loop time).
        self._prune_at: float | None = None
        self._heartbeat_ok_once = False

        self._requests = 0
        self._events_sent = 0
        self._heartbeats = 0
        self._heartbeat_failures = 0
        self._resyncs = 0
        self._retries = 0
        self._dropped = 0
        self._superseded = 0

    # MARK: reporting

    def connected(self, socket_id: str, user_id: str | None = None, meta: Mapping[str, str] | None = None) -> Awaitable[None]:
        """Record that this node holds `socket_id` (again: the newest state wins).

        Changes local state only and wakes the sender; the returned awaitable is already complete,
        so awaiting it is optional. Raises ValueError/TypeError for an id or meta the API refuses.
        """
        check_id(socket_id, "socket_id")
        if user_id is not None:
            check_id(user_id, "user_id")
        copy = check_meta(meta)
        if self._closed:
            return _DONE
        old = self._local.get(socket_id)
        if old is not None:
            self._forget_user(old[0])
        self._local[socket_id] = (user_id, copy or None)
        self._connected_at[socket_id] = _now_rfc3339()
        if user_id is not None:
            self._users[user_id] = self._users.get(user_id, 0) + 1
        self._rejected.discard(socket_id)
        self._mark(socket_id)
        return _DONE

    def disconnected(self, socket_id: str) -> Awaitable[None]:
        """Record that `socket_id` left this node. Nothing is sent for a socket never reported.

        Changes local state only; the returned awaitable is already complete.
        """
        if self._closed:
            return _DONE
        old = self._local.pop(socket_id, None)
        self._connected_at.pop(socket_id, None)
        if old is not None:
            self._forget_user(old[0])
        self._rejected.discard(socket_id)
        if socket_id in self._registered:
            self._mark(socket_id)
        else:
            # No connect was ever sent (nor is one in flight): there is nothing to take back.
            self._pending.pop(socket_id, None)
        return _DONE

    def stats(self) -> ClientStats:
        """Sizes and counters of this client.

        Sizes: `sockets` held, distinct `users`, `pending` changes (at most one per socket
        touched), events `in_flight`, sockets the registry may hold (`registered`), whether the
        node is registered (`node_registered`). Counters: events `requests`, `events_sent`,
        `heartbeats` answered, `heartbeat_failures`, `resyncs`, `retries` of events requests,
        events `dropped` because the server refused them, connects `superseded` by another node.
        """
        return ClientStats(
            sockets=len(self._local),
            users=len(self._users),
            pending=len(self._pending),
            in_flight=len(self._in_flight),
            registered=len(self._registered),
            node_registered=bool(self._node_ready and self._node_ready.is_set()),
            requests=self._requests,
            events_sent=self._events_sent,
            heartbeats=self._heartbeats,
            heartbeat_failures=self._heartbeat_failures,
            resyncs=self._resyncs,
            retries=self._retries,
            dropped=self._dropped,
            superseded=self._superseded,
        )

    @property
    def sockets(self) -> Mapping[str, tuple[str | None, dict[str, str] | None]]:
        """The local truth: socket id -> (user id, meta). A read-only live view."""
        return MappingProxyType(self._local)

    def _forget_user(self, user_id: str | None) -> None:
        if user_id is None:
            return
        left = self._users.get(user_id, 0) - 1
        if left > 0:
            self._users[user_id] = left
        else:
            self._users.pop(user_id, None)

    def _mark(self, socket_id: str) -> None:
        if socket_id not in self._pending:
            self._pending[socket_id] = None
        self._ensure_started()
        if self._wake is not None:
            self._wake.set()

    # MARK: lifecycle

    async def start(self) -> None:
        """Start heartbeats and the sender (idempotent). Returns at once, even if presence is down."""
        self._ensure_started()

    async def __aenter__(self) -> Presence:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first call inside a loop
        self._started = True
        self._wake = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self._node_ready = asyncio.Event()
        self._retry_now = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._tasks = [
            loop.create_task(self._heartbeat_loop(), name=f"presence-heartbeat-{self.node_id}"),
            loop.create_task(self._send_loop(), name=f"presence-sender-{self.node_id}"),
        ]

    async def close(self, timeout: float = 5.0) -> None:
        """Stop reporting and leave the registry (`DELETE /v1/nodes/{id}`): the node's sockets read
        dead at once. Retries a 503 or network error; returns within `timeout` seconds whatever
        presence does (then the node's sockets read dead when its TTL runs out). Idempotent; queries
        afterwards raise PresenceError (code `closed`)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._in_flight = []
        try:
            if self._started:
                await self._leave(timeout)
        finally:
            if self._own_session and self._session is not None:
                await self._session.close()

    async def _leave(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        failures = 0
        while True:
            left = deadline - loop.time()
            if left <= 0:
                self._log.warning("presence: node %s could not leave within %g s", self.node_id, timeout)
                return
            try:
                # The time left is this request's timeout: one slow DELETE cannot outlast `timeout`.
                await self._request("DELETE", self._node_path, timeout=min(self._timeout.total or left, left))
                self._log.info("presence: node %s left the registry", self.node_id)
                return
            except PresenceUnavailable as error:
                failures += 1
                pause = _backoff(failures, 1.0)
                if loop.time() + pause >= deadline:
                    self._log.warning("presence: node %s could not leave: %s", self.node_id, error)
                    return
                await asyncio.sleep(pause)
            except PresenceError as error:
                if error.status != 404:  # 404: already gone
                    self._log.warning("presence: node %s could not leave: %s", self.node_id, error)
                return

    # MARK: heartbeat

    async def _heartbeat_loop(self) -> None:
        assert self._heartbeat_now is not None and self._retry_now is not None
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            # Cleared before the request: a wish for a heartbeat made while it runs is kept.
            self._heartbeat_now.clear()
            started = loop.time()
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except PresenceUnavailable as error:
                failures += 1
                self._heartbeat_failures += 1
                (self._log.warning if failures == 1 else self._log.debug)(
                    "presence: heartbeat of %s failed (%s); retrying", self.node_id, error)
                delay = _backoff(failures, self._interval)
            except Exception as error:  # noqa: BLE001 - a refused heartbeat must not stop the loop
                failures += 1
                self._heartbeat_failures += 1
                self._log.error("presence: heartbeat of %s refused: %s", self.node_id, error)
                delay = self._interval
            else:
                if failures:
                    self._log.info("presence: heartbeat of %s answered again", self.node_id)
                    self._recovered = True
                    self._retry_now.set()  # presence is back: a sender waiting to retry goes now
                failures = 0
                # A fixed rate: one interval from the start of the last heartbeat, not from its end.
                delay = started + self._interval - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._heartbeat_now.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def _heartbeat(self) -> None:
        assert self._node_ready is not None and self._wake is not None
        body: dict[str, Any] = {"incarnation": self.incarnation, "userCount": len(self._users)}
        if self.address is not None:
            body["address"] = self.address
        if self._node_meta is not None:
            body["meta"] = self._node_meta
        generation = self._node_generation
        # Never longer than an interval: a heartbeat waiting out request_timeout (10 s) would let
        # the node expire (node TTL 6 s) before the next one is even sent.
        _, answer = await self._request("PUT", self._node_path, json.dumps(body),
                                        timeout=min(self._timeout.total or self._interval, self._interval))
        self._heartbeats += 1
        advised = answer.get("heartbeatIntervalMs")
        if self._fixed_interval is None and isinstance(advised, int) and advised > 0:
            self._interval = advised / 1000
        first = not self._heartbeat_ok_once
        self._heartbeat_ok_once = True
        status = str(answer.get("status"))
        if status == "replaced" and not first:
            self._replaced_in_a_row += 1
            self._ok_since_replaced = 0
        elif status == "ok":
            self._ok_since_replaced += 1
            if self._ok_since_replaced >= 4:  # a few in a row: two near-simultaneous heartbeats can both see ok
                self._replaced_in_a_row = 0
        if answer.get("resyncRequired"):
            self._resync(status, first)
        if generation == self._node_generation:
            self._node_ready.set()
            if self._prune_at is not None:
                self._wake.set()  # a prune waits for the node to be registered
        # else: a request learned during this heartbeat that the node is not registered; the answer
        # may predate that, so the next heartbeat (at once: _heartbeat_now is set) decides.

    def _resync(self, status: str, first: bool) -> None:
        """Queue every local socket again: the registry lost them, or they read dead."""
        assert self._wake is not None and self._retry_now is not None
        if not first:
            repeated = self._replaced_in_a_row
            if status == "replaced" and repeated >= 2:
                # Another process heartbeats with this node id: each heartbeat flips the incarnation
                # back. Resending everything every time would only load Redis: back off, resending
                # on the 2nd, 4th, 8th, ... replacement in a row (and every 64th).
                if repeated & (repeated - 1) and repeated % 64:
                    return
                self._log.error("presence: node id %s is registered by another process too (replaced %d times "
                                "in a row): node ids must be unique per process; resending less often",
                                self.node_id, repeated)
            self._resyncs += 1
            self._log.warning("presence: node %s must resend its %d sockets (status %s)",
                              self.node_id, len(self._local), status)
            # Spread a fleet that learns of a restart at once over a quarter interval.
            self._resync_delay = random.uniform(0, self._interval / 4)
            if status == "replaced" and repeated < 2:
                self._log.warning("presence: another process registered node id %s: ids must be unique", self.node_id)
            # new, revived and replaced alike: write every socket again, then prune. The registry may
            # still hold records this process no longer does (a disconnect it gave up on, one lost
            # with the node's registration): list them once the resend is done.
            self._prune_after(0.0)
        for socket_id in self._local:
            if socket_id not in self._rejected and socket_id not in self._pending:
                self._pending[socket_id] = None
        self._wake.set()
        self._retry_now.set()

    # MARK: sender

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            try:
                failures = await self._send_once(failures)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a surprise must never stop the sender
                failures += 1
                self._log.exception("presence: the sender of %s failed", self.node_id)
                await self._pause_before_retry(failures)

    def _prune_after(self, delay: float) -> None:
        """Prune `delay` seconds from now (or later, when one is already due later)."""
        when = asyncio.get_running_loop().time() + delay
        self._prune_at = when if self._prune_at is None else max(self._prune_at, when)

    async def _send_once(self, failures: int) -> int:
        """Send one batch, prune, or wait for work; returns the count of consecutive failures."""
        assert self._wake is not None and self._node_ready is not None
        loop = asyncio.get_running_loop()
        ready = self._node_ready.is_set()
        if ready and self._prune_at is not None:
            now = loop.time()
            # Due: once the queue is empty, or under continuous changes an interval later at the latest.
            if now >= self._prune_at and (not self._pending or now >= self._prune_at + self._interval):
                self._prune_at = None
                if not await self._prune():
                    self._prune_after(self._interval)
                return failures
        if not self._pending:
            self._wake.clear()
            # Not ready: a heartbeat answered wakes the sender when a prune is due.
            until = self._prune_at - loop.time() if ready and self._prune_at is not None else None
            try:
                await asyncio.wait_for(self._wake.wait(), until)
            except asyncio.TimeoutError:
                pass
            return failures
        if not ready:
            await self._node_ready.wait()
            return failures
        if self._resync_delay:
            delay, self._resync_delay = self._resync_delay, 0.0
            await asyncio.sleep(delay)
        batch, body = self._take_batch()
        if not batch:
            return failures
        started = loop.time()
        self._in_flight = batch
        self._requests += 1
        assert self._retry_now is not None
        self._retry_now.clear()  # a recovery or resync from now on cuts the pause after a failure short
        try:
            _, answer = await self._request("POST", self._node_path + "/events", body)
        except PresenceUnavailable as error:
            self._in_flight = []
            self._retries += 1
            self._requeue(batch)
            if error.status != 503 and error.code != "connect":
                # Maybe applied and not answered (a timeout, a connection lost after sending, a 502 or
                # 504 of a proxy): the server may apply it after its retry, bringing back a socket
                # that has left since. List the node's records once it must have landed.
                self._prune_after(self._timeout.total or self._interval)
            (self._log.warning if failures == 0 else self._log.debug)(
                "presence: %d events of %s not recorded (%s); retrying", len(batch), self.node_id, error)
            await self._pause_before_retry(failures + 1)
            return failures + 1
        except PresenceError as error:
            self._in_flight = []
            if self._refused(batch, error):
                return failures
            # Nothing of it was written and no event is to blame (401, 403, a route or proxy 404, 413,
            # 415, 421, a WAF's answer): the batch stays, to be sent again once the cause is fixed.
            self._retries += 1
            self._requeue(batch)
            (self._log.error if failures == 0 else self._log.debug)(
                "presence: %d events of %s refused (%s); retrying", len(batch), self.node_id, error)
            await self._pause_before_retry(failures + 1)
            return failures + 1
        except BaseException:
            self._in_flight = []
            self._requeue(batch)
            raise
        self._in_flight = []
        self._events_sent += len(batch)
        self._applied(batch, answer)
        # When the server is slow, pause as long as the request took: at most half the time writing.
        elapsed = loop.time() - started
        if self._pending and elapsed > self._interval / 20:
            await asyncio.sleep(elapsed)
        return 0

    async def _pause_before_retry(self, failures: int) -> None:
        """Back off, but go early when a heartbeat is answered again or asks for a resync.

        `_retry_now` is cleared before each events request, not here: a recovery signalled while
        the failing request ran is not lost. On a recovery every node of a fleet learns at once, so
        the early go waits a random part of a quarter interval (a resync has its own such delay)."""
        assert self._retry_now is not None
        try:
            await asyncio.wait_for(self._retry_now.wait(), _backoff(failures, self._interval))
        except asyncio.TimeoutError:
            return
        self._retry_now.clear()  # delivered: a failure that involved no request must not find it set again
        if self._recovered and not self._resync_delay:
            await asyncio.sleep(random.uniform(0, self._interval / 4))
        self._recovered = False

    def _take_batch(self) -> tuple[list[_Sent], str]:
        """Pop up to 1,000 pending sockets (and under 1 MB) and encode their current state."""
        batch: list[_Sent] = []
        parts: list[str] = []
        size = len('{"events":[]}')
        pending = self._pending
        while pending and len(batch) < MAX_EVENTS_PER_REQUEST:
            socket_id = next(iter(pending))
            state = self._local.get(socket_id)
            if socket_id in self._rejected:
                part = None
            elif state is not None:
                event: dict[str, Any] = {"type": "connect", "socketId": socket_id}
                if socket_id in self._connected_at:
                    event["connectedAt"] = self._connected_at[socket_id]
                if state[0] is not None:
                    event["userId"] = state[0]
                if state[1]:
                    event["meta"] = state[1]
                part = json.dumps(event)
            elif socket_id in self._registered:
                part = json.dumps({"type": "disconnect", "socketId": socket_id})
            else:
                part = None  # connected and disconnected before anything was sent: nothing to say
            if part is not None and batch and size + len(part) + 1 > MAX_BODY_BYTES:
                break
            pending.popitem(last=False)
            if part is None:
                continue
            is_connect = state is not None
            was_registered = socket_id in self._registered
            if is_connect:
                self._registered.add(socket_id)
            batch.append((socket_id, is_connect, was_registered))
            parts.append(part)
            size += len(part) + 1
        return batch, '{"events":[' + ",".join(parts) + "]}"

    def _requeue(self, batch: list[_Sent]) -> None:
        """Put a batch that was not recorded back at the front; a newer change already pending wins."""
        for socket_id, _, _ in reversed(batch):
            self._pending[socket_id] = None
            self._pending.move_to_end(socket_id, last=False)

    def _applied(self, batch: list[_Sent], answer: Mapping[str, Any]) -> None:
        results = answer.get("results") if isinstance(answer, Mapping) else None
        if not isinstance(results, list) or len(results) != len(batch):
            self._log.error("presence: events answer of %s does not match its %d events", self.node_id, len(batch))
            return
        for (socket_id, is_connect, _), item in zip(batch, results):
            result = item.get("result") if isinstance(item, Mapping) else None
            if not is_connect:
                self._registered.discard(socket_id)  # removed, or not held: either way not ours now
            elif result == "superseded":
                # A later connection of this socket on another node stands; nothing of ours to remove.
                self._registered.discard(socket_id)
                self._superseded += 1

    def _refused(self, batch: list[_Sent], error: PresenceError) -> bool:
        """A 4xx: nothing of the batch was written. True when it was handled here: the node is
        registered again (404 `node_not_found`), or the one event the server names as invalid (400
        `invalid_*` naming `events[i]`) is dropped and the rest queued again. False for any other
        answer: then no event is to blame and the caller retries the batch."""
        assert self._node_ready is not None and self._heartbeat_now is not None
        if error.status == 404 and error.code == "node_not_found":
            # The node expired or Redis lost it: heartbeat now; its answer asks for a resync. An
            # answer to a heartbeat sent before this one must not mark the node ready again.
            self._requeue(batch)
            self._node_generation += 1
            self._node_ready.clear()
            self._heartbeat_now.set()
            self._log.warning("presence: node %s is not registered; registering again", self.node_id)
            return True
        if error.status != 400 or not error.code.startswith("invalid_"):
            return False
        match = _EVENT_INDEX.search(error.message)
        index = int(match.group(1)) if match else -1
        if not 0 <= index < len(batch):
            return False
        self._drop(batch[index])
        self._log.error("presence: dropped event for socket %r of %s: %s", batch[index][0], self.node_id, error)
        self._requeue(batch[:index] + batch[index + 1:])
        return True

    def _drop(self, sent: _Sent) -> None:
        socket_id, is_connect, was_registered = sent
        self._dropped += 1
        if is_connect:
            if socket_id in self._local:
                self._rejected.add(socket_id)  # not sent again until it changes
            if not was_registered:
                self._registered.discard(socket_id)  # nothing written: a disconnect has nothing to remove
        else:
            self._registered.discard(socket_id)

    async def _prune(self) -> bool:
        """Disconnect the records the registry holds for this node that this process does not.
        False when the records could not be listed."""
        cursor: str | None = "0"
        found = 0
        try:
            while cursor is not None:
                query = "?limit=1000" + ("" if cursor == "0" else "&cursor=" + cursor)
                _, page = await self._request("GET", self._node_path + "/sockets" + query)
                for item in page.get("sockets", []):
                    socket_id = item.get("socketId")
                    if isinstance(socket_id, str) and socket_id not in self._local and item.get("nodeId") == self.node_id:
                        found += 1
                        self._registered.add(socket_id)
                        self._mark(socket_id)
                cursor = page.get("nextCursor")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the next resync tries again
            self._log.warning("presence: could not list the sockets of %s: %s", self.node_id, error)
            return False
        if found:
            self._log.warning("presence: node %s disconnects %d records it no longer holds", self.node_id, found)
        return True

    # MARK: queries

    async def socket(self, socket_id: str) -> SocketInfo | None:
        """The socket if it is connected right now (on any node), else None.

        Raises PresenceUnavailable when the registry cannot answer: never read that as "gone".
        """
        status, data = await self._request("GET", "/v1/sockets/" + quote(socket_id, safe=""), ok_404=True)
        return SocketInfo.from_json(data) if status == 200 else None

    async def lookup(self, socket_ids: Iterable[str]) -> list[SocketInfo | None]:
        """Look sockets up in order (None for each one not connected), 1,000 per request."""
        ids = list(socket_ids)
        found: list[SocketInfo | None] = []
        for start in range(0, len(ids), MAX_EVENTS_PER_REQUEST):
            chunk = ids[start:start + MAX_EVENTS_PER_REQUEST]
            _, data = await self._request("POST", "/v1/sockets/lookup", json.dumps({"socketIds": chunk}))
            found.extend(SocketInfo.from_json(item) if item.get("alive") else None for item in data["sockets"])
        return found

    async def user(self, user_id: str) -> list[SocketInfo]:
        """The user's live sockets on every node (empty when the user is offline)."""
        _, data = await self._request("GET", "/v1/users/" + quote(user_id, safe=""))
        return [SocketInfo.from_json(item) for item in data.get("sockets", [])]

    async def last_seen(self, user_id: str) -> datetime | None:
        """When the user's last socket went, while the user is offline and the registry keeps it
        (its last-seen retention, 30 days by default); None while online or unknown."""
        _, data = await self._request("GET", "/v1/users/" + quote(user_id, safe=""))
        seen = data.get("lastSeenAt")
        return _timestamp(seen) if isinstance(seen, str) else None

    async def departure(self, socket_id: str) -> Departure | None:
        """How the socket went, when it is not connected and the registry still keeps that (its
        socket history retention); None while it is connected or when nothing is known."""
        status, data = await self._request("GET", "/v1/sockets/" + quote(socket_id, safe=""), ok_404=True)
        if status != 404 or not isinstance(data.get("disconnectedAt"), str):
            return None
        return Departure(socket_id=socket_id, disconnected_at=_timestamp(data["disconnectedAt"]), reason=str(data.get("reason", "")))

    async def changes(self, types: Iterable[str] | None = None, user_id: str | Iterable[str] | None = None,
                      node_id: str | None = None, since: str | None = None) -> AsyncIterator[Change]:
        """The registry's changes as they happen (`GET /v1/changes`, server-sent events), the
        recorded ones after `since` (a change's `id`; "" is the start of the retention) first.

            async for change in presence.changes(types=["user.offline"]):
                notify(change.data["userId"])

        A dropped connection (network, a 503, presence restarting, a cut-off for reading too slowly)
        reconnects with backoff from the last change, so nothing is missed or repeated. A position
        older than the retention raises PresenceError with code `position_trimmed`; other refusals
        (400, 401, 403) raise at once. The request ends with the iterator (`await changes.aclose()`,
        or when it is released).
        """
        query: list[tuple[str, str]] = []
        if types:
            query.append(("types", ",".join(types)))
        for user in [user_id] if isinstance(user_id, str) else (user_id or []):
            query.append(("userId", user))
        if node_id is not None:
            query.append(("nodeId", node_id))
        url = URL(self._base + "/v1/changes").with_query(query)
        position = since
        failures = 0
        while True:
            if self._session is None or self._session.closed:
                if (self._closed and self._own_session) or self._session is not None:
                    raise PresenceError(0, "closed", "GET /v1/changes: this Presence (or its session) is closed")
                self._session = aiohttp.ClientSession()
            headers = dict(self._headers, Accept="text/event-stream")
            if position is not None:
                headers["Last-Event-ID"] = position
            try:
                async with self._session.get(url, headers=headers, raise_for_status=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)) as response:
                    if response.status != 200:
                        raw = await response.read()
                        try:
                            detail = json.loads(raw).get("error", {})
                        except (ValueError, AttributeError):
                            detail = {}
                        code, message = str(detail.get("code", "http_error")), str(detail.get("message", ""))
                        if response.status in (408, 429) or response.status >= 500:
                            failures += 1
                            self._log.warning("presence: the change feed answered %s %s; trying again", response.status, code)
                            await asyncio.sleep(_backoff(failures, self._interval))
                            continue
                        raise PresenceError(response.status, code, message)
                    failures = 0
                    event_id: str | None = None
                    kind = "message"
                    data: list[str] = []
                    async for raw_line in response.content:
                        line = raw_line.decode("utf-8").rstrip("\r\n")
                        if line == "":
                            if data:
                                payload = json.loads("\n".join(data))
                                if kind == "stream-error":
                                    self._log.warning("presence: the change feed ended (%s); resuming",
                                                      payload.get("error", {}).get("code", "error"))
                                else:
                                    if event_id is not None:
                                        position = event_id
                                    yield Change(id=event_id or "", type=kind, data=payload)
                            elif event_id is not None:
                                # A keep-alive's position (past changes this filter dropped): resume from it.
                                position = event_id
                            event_id, kind, data = None, "message", []
                        elif not line.startswith(":"):
                            name, _, value = line.partition(":")
                            value = value[1:] if value.startswith(" ") else value
                            if name == "id":
                                event_id = value
                            elif name == "event":
                                kind = value
                            elif name == "data":
                                data.append(value)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
                self._log.warning("presence: the change feed connection broke (%r); resuming", error)
            failures += 1
            await asyncio.sleep(_backoff(failures, self._interval))

    # MARK: python-socketio

    def attach(self, sio: Any, app: Any = None, namespace: str = "/") -> None:
        """Report the sockets of a `socketio.AsyncServer` namespace.

        Wraps the namespace's `connect` and `disconnect` handlers registered so far (function or
        class-based): a socket is reported once your handler accepted it, with the user id from the
        `user_id(sid, environ, auth)` option. Register your own handlers before calling `attach`.
        With an aiohttp `app`, the client starts with the app and leaves the registry on shutdown
        (aiohttp's `run_app` turns SIGTERM into a shutdown); elsewhere (ASGI) call `start()` and
        `close()` yourself. A socket that leaves before its connect completed is not reported; a
        `user_id` answer that is not a valid id reports the socket without a user (logged).
        """
        handlers = getattr(sio, "handlers", {}).get(namespace, {})
        class_handler = getattr(sio, "namespace_handlers", {}).get(namespace)
        previous_connect = handlers.get("connect")
        previous_disconnect = handlers.get("disconnect")

        async def on_connect(sid: str, environ: Mapping[str, Any], auth: Any = None) -> Any:
            if previous_connect is not None:
                result = await _call(previous_connect, sid, environ, auth)
            elif class_handler is not None:
                result = await _trigger_connect(class_handler, sid, environ, auth)
            else:
                result = None
            if result is False:
                return False
            user: Any = None
            if self._user_id is not None:
                try:
                    answer = self._user_id(sid, environ, auth)
                    user = await answer if inspect.isawaitable(answer) else answer
                except Exception:  # noqa: BLE001 - report the socket even without its user
                    self._log.exception("presence: user_id(%s) failed", sid)
                    user = None
            if not _session_alive(sio, sid, namespace):
                # It left while the handlers ran: python-socketio calls no disconnect handler for a
                # socket still connecting, so reporting it now would leave a ghost.
                self._log.info("presence: socket %s left before its connect completed; not reported", sid)
                return result
            if user is not None:
                try:
                    check_id(user, "user_id")
                except (TypeError, ValueError) as error:
                    self._log.error("presence: socket %s reported without a user: user_id() returned %r (%s)",
                                    sid, user, error)
                    user = None
            self.connected(sid, user_id=user)
            return result

        async def on_disconnect(sid: str, reason: Any = None) -> Any:
            try:
                if previous_disconnect is not None:
                    return await _call(previous_disconnect, sid, reason)
                if class_handler is not None:
                    return await class_handler.trigger_event("disconnect", sid, reason)
                return None
            finally:
                self.disconnected(sid)

        sio.on("connect", on_connect, namespace=namespace)
        sio.on("disconnect", on_disconnect, namespace=namespace)
        if app is not None:
            async def on_startup(_: Any) -> None:
                await self.start()

            async def on_shutdown(_: Any) -> None:
                await self.close()

            app.on_startup.append(on_startup)
            app.on_shutdown.append(on_shutdown)

    # MARK: HTTP

    async def _request(self, method: str, path: str, body: str | None = None, *, ok_404: bool = False,
                       timeout: float | None = None) -> tuple[int, Any]:
        if self._session is None or self._session.closed:
            if (self._closed and self._own_session) or self._session is not None:
                raise PresenceError(0, "closed", f"{method} {path}: this Presence (or its session) is closed")
            self._session = aiohttp.ClientSession()
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        limit = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            # raise_for_status=False whatever the session says: a 4xx must reach the handling below
            # (as a ClientResponseError it would read as a network error and be retried forever).
            async with self._session.request(method, URL(self._base + path, encoded=True), data=body,
                                             headers=headers, timeout=limit, raise_for_status=False) as response:
                status = response.status
                raw = await response.read()
        except asyncio.TimeoutError as error:
            raise PresenceUnavailable(0, "timeout", f"{method} {path}: no answer within {limit.total:g} s") from error
        except aiohttp.ClientConnectorError as error:  # not connected: nothing was sent
            raise PresenceUnavailable(0, "connect", f"{method} {path}: {error!r}") from error
        except (aiohttp.ClientError, OSError) as error:
            raise PresenceUnavailable(0, "network", f"{method} {path}: {error!r}") from error
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if status < 400 or (ok_404 and status == 404 and isinstance(data, dict) and "alive" in data):
            return status, data
        detail = data.get("error", {}) if isinstance(data, dict) else {}
        code = str(detail.get("code", "http_error")) if isinstance(detail, dict) else "http_error"
        message = str(detail.get("message", raw[:200].decode("utf-8", "replace"))) if isinstance(detail, dict) else ""
        if status in (408, 429) or status >= 500:
            raise PresenceUnavailable(status, code, message)
        raise PresenceError(status, code, message)


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    """Call a python-socketio handler as the server would: newest signature first, then without the last argument."""
    try:
        inspect.signature(handler).bind(*args)
    except TypeError:
        args = args[:-1]
    except ValueError:  # no signature (a builtin): call as is
        pass
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _trigger_connect(handler: Any, sid: str, environ: Mapping[str, Any], auth: Any) -> Any:
    """A class-based namespace's connect, called as python-socketio does: without auth sent, the
    newer signature (with auth None) first, then the legacy one (without it) after a TypeError."""
    if auth is not None:
        return await handler.trigger_event("connect", sid, environ, auth)
    try:
        return await handler.trigger_event("connect", sid, environ, None)
    except TypeError as first:
        try:
            return await handler.trigger_event("connect", sid, environ)
        except TypeError:
            raise first from None


def _session_alive(sio: Any, sid: str, namespace: str) -> bool:
    """Whether the engine.io session of `sid` is still open (True when the server cannot tell)."""
    manager = getattr(sio, "manager", None)
    find = getattr(manager, "eio_sid_from_sid", None)
    eio_sid = find(sid, namespace) if callable(find) else None
    if eio_sid is None:
        return not callable(find)
    environ = getattr(sio, "environ", None)
    if isinstance(environ, dict) and eio_sid not in environ:
        return False  # python-socketio forgets it when engine.io reports the disconnect
    sockets = getattr(getattr(sio, "eio", None), "sockets", None)
    if isinstance(sockets, dict):
        socket = sockets.get(eio_sid)
        return socket is not None and not getattr(socket, "closed", False)
    return True


def _backoff(failures: int, cap: float) -> float:
    """Exponential from 50 ms up to `cap`, times 0.5-1 (jitter)."""
    pause = min(cap, _FIRST_BACKOFF * 2.0 ** min(failures - 1, 30))
    return pause * random.uniform(0.5, 1.0)


def _now_rfc3339() -> str:
    """This host's time now, as presence reads a reported connectedAt (UTC, microseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _timestamp(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
