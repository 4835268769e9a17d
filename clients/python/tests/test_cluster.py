"""Three python-socketio servers report through presence_client; hundreds of real socket.io clients.

The tests of this module run in order on one cluster: all alive, some disconnect, one server is
SIGKILLed, one is SIGTERMed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import socketio

from conftest import HEARTBEAT, NODE_TTL
from harness import Api, LoopThread, NodeServer, PresenceServer, RedisServer, registry_matches, wait_until

NODES = 3
CLIENTS = 300
USERS = 120


@dataclass
class Client:
    sio: socketio.AsyncClient
    node: int
    user: str
    sid: str = ""


class Cluster:
    def __init__(self, loop: LoopThread, presence: PresenceServer, nodes: list[NodeServer]) -> None:
        self.loop = loop
        self.presence = presence
        self.nodes = nodes
        self.clients: list[Client] = []
        self.created: list[socketio.AsyncClient] = []  # every client made, for close() even after a failure
        self.api = Api(presence.url)

    async def connect_all(self) -> None:
        await self.api.__aenter__()
        gate = asyncio.Semaphore(50)

        async def connect(index: int) -> Client:
            client = Client(socketio.AsyncClient(reconnection=False), index % NODES, f"user-{index % USERS}")
            self.created.append(client.sio)
            async with gate:
                await client.sio.connect(self.nodes[client.node].url, auth={"userId": client.user},
                                         transports=["websocket"], wait_timeout=20)
            client.sid = client.sio.get_sid("/")
            return client

        self.clients = list(await asyncio.gather(*(connect(i) for i in range(CLIENTS))))
        # A connection the application's own handler refuses is never reported.
        for node in self.nodes:
            refused = socketio.AsyncClient(reconnection=False)
            self.created.append(refused)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(node.url, transports=["websocket"], wait_timeout=20)

    async def close(self) -> None:
        await asyncio.gather(*(sio.disconnect() for sio in self.created if sio.connected), return_exceptions=True)
        if self.api.session is not None:
            await self.api.__aexit__()

    def expected(self, clients: list[Client], alive: bool) -> dict[str, tuple[str, str | None] | None]:
        return {c.sid: (self.nodes[c.node].node_id, c.user) if alive else None for c in clients}

    async def assert_registry(self, expected: dict[str, tuple[str, str | None] | None], timeout: float, what: str) -> float:
        problems: list[str] = []

        async def matches() -> bool:
            nonlocal problems
            problems = registry_matches(await self.api.lookup(expected), expected)
            return not problems

        try:
            return await wait_until(matches, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}; {len(problems)} wrong, e.g. {problems[:5]}") from None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(workdir)
    presence = PresenceServer(workdir, redis.url, HEARTBEAT, NODE_TTL)
    nodes: list[NodeServer] = []
    loop = LoopThread()
    try:
        redis.start()  # each start() kills its own process when it fails
        presence.start()
        for index in range(NODES):
            nodes.append(NodeServer(workdir, presence.url, f"sio-{index}"))  # the started ones are killed below
        cluster = Cluster(loop, presence, nodes)
        try:
            loop.run(cluster.connect_all())
            yield cluster
        finally:
            loop.run(cluster.close())
    finally:
        for node in nodes:
            node.kill()
        loop.close()
        presence.stop()
        redis.kill()


def test_every_client_reads_alive_on_its_node_with_its_user(cluster: Cluster) -> None:
    async def check() -> None:
        # The sender posts as soon as the node is registered: within one node TTL at the latest.
        await cluster.assert_registry(cluster.expected(cluster.clients, alive=True), NODE_TTL, "all clients alive")
        assert len({c.sid for c in cluster.clients}) == CLIENTS
        # Heartbeats carry each node's incarnation and distinct user count.
        incarnations = set()
        for index, node in enumerate(cluster.nodes):
            status, info = await cluster.api.call("GET", f"/v1/nodes/{node.node_id}")
            assert status == 200 and info["alive"], info
            async with cluster.api.session.get(node.url + "/presence-stats") as response:  # type: ignore[union-attr]
                local = await response.json()
            assert info["incarnation"] == local["incarnation"]
            # Exactly the accepted clients (not the refused one), and nothing left to send.
            assert sorted(c.sid for c in cluster.clients if c.node == index) == local["sockets"]
            assert local["stats"]["pending"] == 0 and local["stats"]["dropped"] == 0
            incarnations.add(info["incarnation"])
        assert len(incarnations) == NODES
        # Users online are exact with the change stream on (the default): each user once, whatever
        # the number of nodes it is connected to.
        users = len({c.user for c in cluster.clients if c.user is not None})

        async def users_counted() -> bool:
            _, stats = await cluster.api.call("GET", "/v1/stats")
            return stats["users"] == {"online": users, "exact": True} and stats["sockets"]["alive"] == CLIENTS

        await wait_until(users_counted, 2 * HEARTBEAT, f"/v1/stats counts {users} users")

    cluster.loop.run(check())


def test_disconnected_clients_read_dead(cluster: Cluster) -> None:
    leaving = [c for c in cluster.clients if c.sio.connected][: 60]
    staying = [c for c in cluster.clients if c not in leaving]
    cluster.clients = staying  # first: a failure below must not leave the next tests expecting these alive
    assert Counter(c.node for c in leaving) == {0: 20, 1: 20, 2: 20}

    async def check() -> None:
        await asyncio.gather(*(c.sio.disconnect() for c in leaving))
        expected = cluster.expected(leaving, alive=False) | cluster.expected(staying, alive=True)
        await cluster.assert_registry(expected, NODE_TTL, "disconnected clients dead, the others alive")

    cluster.loop.run(check())


def test_sigkilled_server_reads_dead_at_its_last_expiry_and_the_others_stay(cluster: Cluster) -> None:
    victim = cluster.nodes[2]
    on_victim = [c for c in cluster.clients if c.node == 2]
    others = [c for c in cluster.clients if c.node != 2]
    cluster.clients = others  # first: whatever happens below, the victim's clients are gone
    poll = HEARTBEAT / 10
    ids = [c.sid for c in on_victim]

    async def expires_at() -> float:
        status, info = await cluster.api.call("GET", f"/v1/nodes/{victim.node_id}")
        assert status == 200, info
        return datetime.fromisoformat(info["expiresAt"].replace("Z", "+00:00")).timestamp()

    async def check() -> None:
        await cluster.assert_registry(cluster.expected(on_victim, alive=True), NODE_TTL, "victim's clients alive")
        killed = time.time()
        victim.signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        # The guarantee: the node and its sockets read dead at its expiresAt (last heartbeat + node TTL,
        # on the Redis clock, this machine's), with no sweeper. A query asked after that instant (plus
        # the poll interval) must answer dead; one asked before may answer either.
        latest = await expires_at()

        async def dead() -> bool:
            nonlocal latest
            asked = time.time()
            answers = await cluster.api.lookup(ids)
            latest = max(latest, await expires_at())  # a heartbeat still in flight at the kill may land late
            alive = [s for s in ids if answers[s]["alive"]]
            if alive and asked > latest + poll:
                raise AssertionError(f"{len(alive)} sockets alive {asked - latest:.3f} s after expiresAt")
            return not alive

        await wait_until(dead, NODE_TTL + HEARTBEAT, "SIGKILLed server's sockets dead", interval=poll)
        # Its last heartbeat came before the kill: dead within one node TTL of it.
        assert latest <= killed + NODE_TTL + poll, (latest - killed, NODE_TTL)
        status, info = await cluster.api.call("GET", f"/v1/nodes/{victim.node_id}")
        assert status == 200 and info["alive"] is False, info
        # More than a node TTL after the kill, the others are alive only through their heartbeats.
        await asyncio.sleep(max(0.0, killed + NODE_TTL - time.time()))
        await cluster.assert_registry(cluster.expected(others, alive=True), 0, "the other servers' sockets alive")

    cluster.loop.run(check())


def test_sigterm_leaves_the_registry_at_once(cluster: Cluster) -> None:
    leaver = cluster.nodes[1]
    on_leaver = [c for c in cluster.clients if c.node == 1]
    others = [c for c in cluster.clients if c.node == 0]
    cluster.clients = others

    async def check() -> None:
        await cluster.assert_registry(cluster.expected(on_leaver, alive=True), NODE_TTL, "leaver's clients alive")
        leaver.signal(signal.SIGTERM)
        assert await asyncio.to_thread(leaver.wait, 10) == 0
        # Gone before the process exited: no waiting for a TTL.
        status, _ = await cluster.api.call("GET", f"/v1/nodes/{leaver.node_id}")
        assert status == 404
        await cluster.assert_registry(cluster.expected(on_leaver, alive=False) | cluster.expected(others, alive=True),
                                      0, "left server's sockets dead at once, the last server's alive")

    cluster.loop.run(check())
