"""Presence.attach on a python-socketio AsyncServer served in this process (aiohttp, loopback):
class-based namespaces, sockets that leave while their connect handler runs, user ids that are
not valid ids."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from conftest import HEARTBEAT, NODE_TTL
from harness import Api, PresenceServer, registry_matches, wait_until
from presence_client import Presence

DELIVERY = 10 * NODE_TTL
POLL = HEARTBEAT / 10


@asynccontextmanager
async def served(presence: PresenceServer, node_id: str, sio: socketio.AsyncServer,
                 user_id: Callable[[str, Mapping[str, Any], Any], Any] | None = None) -> AsyncIterator[tuple[str, Presence, Api]]:
    """`sio` on a loopback port with a Presence attached (started, closed afterwards)."""
    client = Presence(presence.url, None, node_id, address="127.0.0.1:1", user_id=user_id)
    client.attach(sio)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with Api(presence.url) as api:
            await client.start()
            yield f"http://127.0.0.1:{port}", client, api
    finally:
        await client.close()
        await runner.cleanup()


async def registry_is(api: Api, expected: dict[str, tuple[str, str | None] | None], what: str) -> None:
    async def matches() -> bool:
        return not registry_matches(await api.lookup(expected), expected)
    await wait_until(matches, DELIVERY, what, interval=POLL)


def test_a_class_based_namespace_whose_connect_takes_no_auth(presence: PresenceServer) -> None:
    events: list[str] = []

    class Legacy(socketio.AsyncNamespace):  # type: ignore[misc]
        def on_connect(self, sid: str, environ: Mapping[str, Any]) -> None:  # no auth argument
            events.append("connect")

        def on_disconnect(self, sid: str) -> None:
            events.append("disconnect")

    async def main() -> None:
        sio = socketio.AsyncServer(async_mode="aiohttp")
        sio.register_namespace(Legacy("/"))
        async with served(presence, "legacy-namespace", sio, user_id=lambda sid, environ, auth: "alice") as (url, client, api):
            sock = socketio.AsyncClient(reconnection=False)
            await sock.connect(url, transports=["websocket"], wait_timeout=10)  # no auth
            sid = sock.get_sid("/")
            await registry_is(api, {sid: ("legacy-namespace", "alice")}, "reported with its user")
            await sock.disconnect()
            await registry_is(api, {sid: None}, "its disconnect reported")
            assert events == ["connect", "disconnect"]

    asyncio.run(main())


def test_a_socket_that_leaves_while_its_connect_handler_runs_is_never_reported(presence: PresenceServer) -> None:
    async def main() -> None:
        entered = asyncio.Event()
        gate = asyncio.Event()
        sids: list[str] = []

        async def slow_user_id(sid: str, environ: Mapping[str, Any], auth: Any) -> str:
            sids.append(sid)
            entered.set()
            await gate.wait()
            return "slow"

        sio = socketio.AsyncServer(async_mode="aiohttp")
        async with served(presence, "leaves-early", sio, user_id=slow_user_id) as (url, client, api):
            # Long-polling (python-socketio reads a websocket's next message only after the connect
            # handler returned; a poll's close packet comes on a request of its own).
            base = url + "/socket.io/?EIO=4&transport=polling"
            async with aiohttp.ClientSession() as session:
                async with session.get(base) as response:
                    opening = await response.text()
                assert opening.startswith("0"), opening  # engine.io open
                poll = base + "&sid=" + json.loads(opening[1:])["sid"]
                connecting = asyncio.create_task(session.post(poll, data="40"))  # socket.io connect to "/"
                try:
                    await asyncio.wait_for(entered.wait(), DELIVERY)
                    async with session.post(poll, data="1") as response:  # engine.io close, while user_id() is awaited
                        assert response.status == 200
                    await wait_until(lambda: _async(not sio.environ), DELIVERY, "engine.io saw the close", interval=POLL)
                    gate.set()
                    (await connecting).release()
                finally:
                    gate.set()
                    connecting.cancel()
            await wait_until(lambda: _async(sids[0] not in sio.manager.pending_connect.get("/", [])), DELIVERY,
                             "the connect handler finished", interval=POLL)
            assert sids[0] not in client.sockets and client.stats()["pending"] == 0, client.stats()
            assert (await api.lookup(sids))[sids[0]]["alive"] is False

    asyncio.run(main())


def test_a_user_id_that_is_not_a_valid_id_reports_the_socket_without_a_user(
        presence: PresenceServer, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        sio = socketio.AsyncServer(async_mode="aiohttp")

        @sio.event  # type: ignore[untyped-decorator]
        async def connect(sid: str, environ: Mapping[str, Any], auth: Any) -> None:
            pass

        def user_id(sid: str, environ: Mapping[str, Any], auth: Any) -> Any:
            return auth["user"]  # whatever the client sent: not always a valid id

        async with served(presence, "odd-users", sio, user_id=user_id) as (url, client, api):
            socks = [socketio.AsyncClient(reconnection=False) for _ in range(3)]
            try:
                for sock, user in zip(socks, [42, "has%percent", "fine"]):
                    await sock.connect(url, transports=["websocket"], auth={"user": user}, wait_timeout=10)
                sids = [sock.get_sid("/") for sock in socks]
                await registry_is(api, {sids[0]: ("odd-users", None), sids[1]: ("odd-users", None),
                                        sids[2]: ("odd-users", "fine")}, "all three reported")
            finally:
                for sock in socks:
                    await sock.disconnect()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and "without a user" in r.getMessage()]
        assert len(errors) == 2, [r.getMessage() for r in caplog.records]

    asyncio.run(main())


async def _async(value: bool) -> bool:
    return value

