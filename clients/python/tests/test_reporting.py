"""presence_client in this process against a live `presence serve` and redis-server: batching,
coalescing, refused events, Redis restarts, presence outages, queries and a graceful close."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest

from conftest import HEARTBEAT, NODE_TTL
from harness import Answer, Api, FaultProxy, Forward, PresenceServer, RedisServer, registry_matches, wait_until
from presence_client import Presence, PresenceError, PresenceUnavailable, SocketInfo

# Generous: only a broken client takes that long to send what these tests connect.
DELIVERY = 10 * NODE_TTL
# One events request of up to 1,000 events, on a loaded 2-core machine with a debug build.
BATCH_SLACK = HEARTBEAT / 2


def resync_bound(requests: int) -> float:
    """From the moment presence answers again to a complete registry: up to an interval until the
    next heartbeat, another when the one in flight still failed, the resync's random delay (a
    quarter interval), then each request (a batch, or the prune's listing)."""
    return 2 * HEARTBEAT + HEARTBEAT / 4 + requests * BATCH_SLACK


RESYNC_BOUND = resync_bound(2)  # a resend and a prune (a listing and a disconnect)


def batches(sockets: set[str]) -> int:
    return -(-len(sockets) // 1000)


def run(presence: PresenceServer, node_id: str, scenario: Callable[[Api, Presence], Awaitable[None]]) -> None:
    """Run `scenario` with a raw API session and a started client that is closed afterwards."""

    async def main() -> None:
        async with Api(presence.url) as api:
            client = Presence(presence.url, None, node_id, address="127.0.0.1:1")
            try:
                await client.start()
                await wait_until(lambda: node_alive(api, node_id), NODE_TTL, f"{node_id} registered")
                await scenario(api, client)
            finally:
                await client.close()

    asyncio.run(main())


def run_proxied(presence: PresenceServer, node_id: str, scenario: Callable[[Api, Presence, FaultProxy], Awaitable[None]],
                **options: Any) -> None:
    """`run`, with the client talking to presence through a FaultProxy (the raw API goes direct)."""

    async def main() -> None:
        async with Api(presence.url) as api, FaultProxy(presence.port) as proxy:
            client = Presence(proxy.url, None, node_id, address="127.0.0.1:1", **options)
            try:
                await client.start()
                await wait_until(lambda: node_alive(api, node_id), NODE_TTL, f"{node_id} registered")
                await scenario(api, client, proxy)
            finally:
                await client.close()

    asyncio.run(main())


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


async def node_alive(api: Api, node_id: str) -> bool:
    status, body = await api.call("GET", f"/v1/nodes/{node_id}")
    return status == 200 and body["alive"]


class HoldFirstEvents:
    """A FaultProxy rule that holds the first events request before it reaches presence until
    `release` is set; `held` says whether that request came."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = False

    def rule(self, method: str, path: str) -> Forward:
        if path.endswith("/events") and not self.held:
            self.held = True
            return Forward(hold=self.release)
        return Forward()


def settled(client: Presence) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        stats = client.stats()
        return stats["pending"] == 0 and stats["in_flight"] == 0
    return check


async def registry_equals(api: Api, expected: dict[str, tuple[str, str | None] | None], timeout: float, what: str) -> float:
    problems: list[str] = []

    async def matches() -> bool:
        nonlocal problems
        try:
            problems = registry_matches(await api.lookup(expected), expected)
        except AssertionError as error:  # a 503 while Redis restarts: not an answer yet
            problems = [str(error)]
        return not problems

    try:
        return await wait_until(matches, timeout, what, interval=HEARTBEAT / 10)
    except AssertionError as error:
        raise AssertionError(f"{error}; {len(problems)} wrong, e.g. {problems[:5]}") from None


def local_truth(client: Presence, touched: set[str]) -> dict[str, tuple[str, str | None] | None]:
    """What the registry must say about every socket touched: the client's sockets alive, the rest dead."""
    return {s: (client.node_id, client.sockets[s][0]) if s in client.sockets else None for s in touched}


def test_burst_of_10000_connects_arrives_in_at_most_12_requests(presence: PresenceServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        before = await api.events_requests()
        ids = [f"burst-{i}" for i in range(10_000)]
        for index, socket_id in enumerate(ids):
            await client.connected(socket_id, user_id=f"user-{index % 700}")
        assert client.stats()["pending"] == 10_000
        took = await wait_until(settled(client), DELIVERY, "burst sent")
        await registry_equals(api, local_truth(client, set(ids)), 0, "every socket of the burst alive")
        served = await api.events_requests() - before
        stats = client.stats()
        assert served == stats["requests"], (served, stats)  # the server's count, not only the client's
        print(f"10,000 connects: {served} requests, sent in {took:.2f} s")
        assert served <= 12, stats
        assert stats["events_sent"] == 10_000 and stats["retries"] == 0 and stats["dropped"] == 0

    run(presence, "burst", scenario)


def test_changes_are_coalesced_per_socket_and_the_newest_state_wins(presence: PresenceServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        before = await api.events_requests()
        # Connected and disconnected before anything was sent: nothing to send at all.
        client.connected("brief", user_id="u1")
        client.disconnected("brief")
        # A disconnect whose connect was never sent (or never made): nothing either.
        client.disconnected("never-connected")
        assert client.stats()["pending"] == 0
        # The same id again and again: one pending entry, the last state.
        client.connected("again", user_id="u1")
        client.disconnected("again")
        client.connected("again", user_id="u1", meta={"room": "a"})
        assert client.stats()["pending"] == 1
        await registry_equals(api, {"again": ("coalesce", "u1"), "brief": None, "never-connected": None},
                              DELIVERY, "one connect for 'again'")
        # Reconnect with the same id after it was reported: disconnect + connect coalesce to the new state.
        client.disconnected("again")
        client.connected("again", user_id="u2", meta={"room": "b"})
        await registry_equals(api, {"again": ("coalesce", "u2")}, DELIVERY, "'again' as u2")
        status, socket = await api.call("GET", "/v1/sockets/again")
        assert status == 200 and socket["meta"] == {"room": "b"}
        _, user = await api.call("GET", "/v1/users/u1")
        assert user["sockets"] == []
        await wait_until(settled(client), DELIVERY, "sent")
        stats = client.stats()
        assert stats["events_sent"] == 2, stats  # 'again' twice; 'brief' and 'never-connected' never
        assert await api.events_requests() - before == stats["requests"] == 2

    run(presence, "coalesce", scenario)


def test_an_event_the_server_refuses_is_dropped_and_the_rest_goes_through(presence: PresenceServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        # U+0378 is unassigned: the server refuses it (400 naming events[i]); Python does not check that.
        refused = "bad-\u0378"
        good = [f"good-{i}" for i in range(20)]
        for socket_id in good[:10] + [refused] + good[10:]:
            client.connected(socket_id, user_id="u")
        await wait_until(settled(client), DELIVERY, "batch sent")
        await registry_equals(api, {s: ("refusing", "u") for s in good}, 0, "the valid events recorded")
        assert client.stats()["dropped"] == 1
        # The queue is not wedged: later changes go through, the refused socket is not sent again.
        client.connected("later", user_id="u")
        client.disconnected(good[0])
        await registry_equals(api, {"later": ("refusing", "u"), good[0]: None}, DELIVERY, "later changes recorded")
        await wait_until(settled(client), DELIVERY, "later changes answered")
        before = client.stats()
        assert before["events_sent"] == 22 and before["registered"] == 20, before
        # Its connect was refused, so nothing of it was written: its disconnect sends nothing.
        client.disconnected(refused)
        await wait_until(settled(client), DELIVERY, "nothing left to send")
        after = client.stats()
        assert after["dropped"] == 1, after
        assert (after["requests"], after["events_sent"], after["registered"]) == \
            (before["requests"], before["events_sent"], before["registered"]), (before, after)
        assert await api.events_requests() == after["requests"]

    run(presence, "refusing", scenario)


def test_a_batch_refused_without_naming_an_event_is_retried_never_dropped(presence: PresenceServer) -> None:
    """401, 403, a route 404, 413 and a WAF's HTML page write nothing and blame no event: the batch
    is sent again (after a backoff) until it is recorded; nothing is dropped or left as a ghost."""

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        client.connected("early", user_id="u")
        await registry_equals(api, {"early": ("refused-4xx", "u")}, DELIVERY, "'early' recorded")
        await wait_until(settled(client), DELIVERY, "'early' answered")
        refusals = [
            Answer(401, error_body("unauthorized", "a bearer token is required")),
            Answer(403, error_body("forbidden", "the token may not write")),
            Answer(404, error_body("not_found", "no such route")),
            Answer(413, "<html>Request Entity Too Large</html>", "text/html"),
            Answer(403, "<html>Blocked by policy</html>", "text/html"),
        ]
        answers = iter(refusals)
        proxy.rule = lambda method, path: next(answers, Forward()) if path.endswith("/events") else Forward()
        client.connected("new", user_id="u")
        client.disconnected("early")
        await registry_equals(api, {"new": ("refused-4xx", "u"), "early": None}, DELIVERY, "both changes recorded")
        await wait_until(settled(client), DELIVERY, "answered")
        stats = client.stats()
        assert stats["dropped"] == 0 and stats["retries"] == len(refusals), stats
        assert stats["sockets"] == stats["registered"] == 1, stats
        assert proxy.count("POST", "/events") == 1 + len(refusals) + 1

    run_proxied(presence, "refused-4xx", scenario)


def test_heartbeats_keep_a_fixed_rate_and_give_up_after_one_interval(presence: PresenceServer) -> None:
    interval = HEARTBEAT / 2  # the client's own, below the server's advice

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        def heartbeat_times() -> list[float]:
            return [t for t, method, _ in proxy.arrivals if method == "PUT"]

        # Every heartbeat answered half an interval late: still one per interval, start to start.
        proxy.rule = lambda method, path: Forward(answer_delay=interval / 2) if method == "PUT" else Forward()
        first = len(heartbeat_times())
        count = 6
        await wait_until(lambda: _async(len(heartbeat_times()) > first + count), 10 * count * interval,
                         f"{count} more heartbeats", interval=interval / 10)
        times = heartbeat_times()[first:first + count + 1]
        # Scheduled from each start: count intervals (plus one heartbeat's lateness, not count of them).
        # Scheduled from each answer it would be count × 1.5 intervals.
        assert times[-1] - times[0] < count * interval * 1.25, [round(b - a, 3) for a, b in zip(times, times[1:])]

        # A heartbeat left unanswered fails after one interval, not request_timeout (40 s here), and
        # is retried at once: the node never waits out a timeout longer than it lives.
        hold = asyncio.Event()
        proxy.rule = lambda method, path: Forward(hold=hold) if method == "PUT" else Forward()
        failures = client.stats()["heartbeat_failures"]
        try:
            await wait_until(lambda: _async(client.stats()["heartbeat_failures"] > failures), 3 * interval,
                             "a held heartbeat counted as failed", interval=interval / 10)
        finally:
            hold.set()
        assert await node_alive(api, "fixed-rate")

    run_proxied(presence, "fixed-rate", scenario, heartbeat=interval, request_timeout=10 * NODE_TTL)


def test_a_recovery_during_a_failing_request_wakes_the_sender_after_a_jitter(
        presence: PresenceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat answered again while an events request is still failing must cut the sender's
    backoff short (the signal is not cleared when the pause starts), after a random delay of at
    most a quarter interval so that a fleet does not retry at once."""
    interval = NODE_TTL / 2
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # every jitter and backoff at its longest
    unavailable = error_body("unavailable", "Redis is unavailable")

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        events = 0
        heartbeats_down = False
        release = asyncio.Event()

        def rule(method: str, path: str) -> Forward | Answer:
            nonlocal events
            if method == "PUT" and heartbeats_down:
                return Answer(503, unavailable)
            if path.endswith("/events"):
                events += 1
                if events < 6:
                    return Answer(503, unavailable)
                if events == 6:  # backoff(6) = 1.6 s, more than half an interval
                    return Answer(503, unavailable, hold=release)
            return Forward()

        proxy.rule = rule
        client.connected("s", user_id="u")
        await wait_until(lambda: _async(events >= 6), DELIVERY, "six events requests, the last held")
        # While the sixth is held, heartbeats fail and then are answered again.
        heartbeats_down = True
        failures = client.stats()["heartbeat_failures"]
        await wait_until(lambda: _async(client.stats()["heartbeat_failures"] > failures), 2 * interval,
                         "a heartbeat failed", interval=HEARTBEAT / 10)
        heartbeats = client.stats()["heartbeats"]
        heartbeats_down = False
        await wait_until(lambda: _async(client.stats()["heartbeats"] > heartbeats), 2 * interval,
                         "heartbeats answered again", interval=HEARTBEAT / 10)
        released = asyncio.get_running_loop().time()
        release.set()
        await registry_equals(api, {"s": ("recovery", "u")}, DELIVERY, "'s' recorded")
        seventh = [t for t, _, path in proxy.arrivals if path.endswith("/events")][6]
        # The jitter (a quarter interval, at its longest here), not the 1.6 s backoff.
        assert interval / 4 <= seventh - released < interval / 2, seventh - released

    run_proxied(presence, "recovery", scenario, heartbeat=interval)


def test_node_not_found_registers_again_and_an_older_heartbeat_answer_does_not_count(presence: PresenceServer) -> None:
    interval = NODE_TTL / 2

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        client.connected("a", user_id="u")
        await registry_equals(api, {"a": ("reregister", "u")}, DELIVERY, "'a' recorded")
        await wait_until(settled(client), DELIVERY, "'a' answered")

        # A heartbeat is applied ("ok") but its answer is held while the node leaves the registry.
        answer = asyncio.Event()
        proxy.rule = lambda method, path: Forward(answer_hold=answer) if method == "PUT" else Forward()
        answered = len(proxy.answered)
        await wait_until(lambda: _async(any(m == "PUT" for _, m, _, _ in proxy.answered[answered:])), 2 * interval,
                         "a heartbeat applied, its answer held", interval=HEARTBEAT / 10)
        proxy.rule = lambda method, path: Forward()
        status, _ = await api.call("DELETE", "/v1/nodes/reregister")  # as after an expiry, or Redis lost it
        assert status == 204
        client.connected("b", user_id="u")
        await wait_until(lambda: _async(not client.stats()["node_registered"]), DELIVERY,
                         "the events request met node_not_found", interval=HEARTBEAT / 10)
        answer.set()  # "ok", but older than the 404
        await registry_equals(api, {"a": ("reregister", "u"), "b": ("reregister", "u")}, interval,
                              "registered again at once and every socket resent")
        not_found = [a for a in proxy.answered if a[2].endswith("/events") and a[3] == 404]
        assert len(not_found) == 1, not_found  # no events request went out on the older answer
        stats = client.stats()
        assert stats["resyncs"] == 1 and stats["dropped"] == 0, stats

    run_proxied(presence, "reregister", scenario, heartbeat=interval)


def test_a_request_applied_after_its_timeout_and_retry_is_pruned(presence: PresenceServer) -> None:
    """A connect held on the way (a slow network or server) times out; the socket disconnects and
    the retry says so; then the held connect lands and brings the socket back on this node. The
    client lists its node's records request_timeout after the failure and disconnects it."""
    request_timeout = 2 * HEARTBEAT

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        first = HoldFirstEvents()
        proxy.rule = first.rule
        try:
            client.connected("late", user_id="u")
            await wait_until(lambda: _async(first.held), DELIVERY, "the connect held", interval=HEARTBEAT / 10)
            client.disconnected("late")
            # The connect times out; its retry is the disconnect (answered: not held).
            await wait_until(lambda: _async(any(a[2].endswith("/events") for a in proxy.answered)),
                             request_timeout + DELIVERY, "the retry answered", interval=HEARTBEAT / 10)
            assert client.stats()["retries"] == 1
        finally:
            first.release.set()
        await wait_until(lambda: _async(sum(a[2].endswith("/events") for a in proxy.answered) == 2), DELIVERY,
                         "the held connect applied", interval=HEARTBEAT / 10)
        assert (await api.lookup(["late"]))["late"]["alive"], "the late connect made a ghost"

        # Continuous changes, answered slowly: the queue is never empty, and the prune still runs.
        proxy.rule = lambda method, path: Forward(answer_delay=HEARTBEAT / 10) if path.endswith("/events") else Forward()

        async def churn() -> None:
            for index in itertools.count():
                client.connected(f"churn-{index}", user_id="c")
                client.disconnected(f"churn-{index - 1}")
                await asyncio.sleep(HEARTBEAT / 20)

        churning = asyncio.create_task(churn())
        try:
            # Due request_timeout after the failure (which came before the retry); under changes
            # that never stop, an interval after that at the latest.
            await registry_equals(api, {"late": None}, request_timeout + 2 * HEARTBEAT, "the ghost pruned")
            assert client.stats()["pending"] + client.stats()["in_flight"] > 0  # still changing
        finally:
            churning.cancel()

    run_proxied(presence, "timed-out", scenario, request_timeout=request_timeout)


def test_records_left_from_before_a_lost_registration_are_pruned_after_status_new(
        presence: PresenceServer, redis: RedisServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        client.connected("kept", user_id="u")
        await registry_equals(api, {"kept": ("lost-registration", "u")}, DELIVERY, "'kept' recorded")
        # A record this process does not hold (a disconnect lost in a failover, say) ...
        status, _ = await api.call("PUT", "/v1/nodes/lost-registration/sockets/ghost", {"userId": "ghost"})
        assert status == 201
        # ... and the node's registration lost with it: the next heartbeat answers `new`.
        resyncs = client.stats()["resyncs"]
        assert await asyncio.to_thread(redis.command, "HDEL", "presence:{registry}:nodes", "lost-registration") == b":1"
        assert await asyncio.to_thread(redis.command, "DEL", "presence:{registry}:node:lost-registration") == b":1"
        await registry_equals(api, {"kept": ("lost-registration", "u"), "ghost": None}, RESYNC_BOUND,
                              "resent after `new`, the ghost pruned")
        assert client.stats()["resyncs"] == resyncs + 1

    run(presence, "lost-registration", scenario)


def test_two_processes_sharing_a_node_id_back_off_their_resends(
        presence: PresenceServer, caplog: pytest.LogCaptureFixture) -> None:
    """Each heartbeat of one replaces the other's incarnation (`replaced`): without a backoff both
    would resend every socket at every heartbeat."""
    interval = HEARTBEAT / 8

    async def main() -> None:
        twins = [Presence(presence.url, None, "twin", heartbeat=interval) for _ in range(2)]
        try:
            for index, twin in enumerate(twins):
                for number in range(50):
                    twin.connected(f"twin-{index}-{number}", user_id="u")
                await twin.start()
                await asyncio.sleep(interval / 2)  # out of phase, so that the heartbeats alternate
            heartbeats = 24
            await wait_until(lambda: _async(min(t.stats()["heartbeats"] for t in twins) >= heartbeats),
                             DELIVERY, f"{heartbeats} heartbeats each", interval=interval)
            resyncs = [t.stats()["resyncs"] for t in twins]
            # Resent on the 1st, 2nd, 4th, 8th, 16th replacement in a row: 5 of about 24 at most.
            assert max(resyncs) <= 6 and max(resyncs) >= 2, resyncs
            assert any(r.levelno == logging.ERROR and "must be unique per process" in r.getMessage()
                       for r in caplog.records)
        finally:
            for twin in twins:
                await twin.close()

    asyncio.run(main())


def test_a_socket_that_moves_to_another_node_stays_with_the_newest_connection(presence: PresenceServer) -> None:
    async def scenario(api: Api, old: Presence) -> None:
        new = Presence(presence.url, None, "mover-new")
        try:
            old.connected("moving", user_id="u")
            await registry_equals(api, {"moving": ("mover-old", "u")}, DELIVERY, "on the old node")
            new.connected("moving", user_id="u")
            await registry_equals(api, {"moving": ("mover-new", "u")}, DELIVERY, "moved to the new node")
            # The old node's disconnect comes late: it must not remove the new connection.
            old.disconnected("moving")
            await wait_until(settled(old), DELIVERY, "the old node sent its disconnect")
            await registry_equals(api, {"moving": ("mover-new", "u")}, 0, "still on the new node")
            assert old.stats()["registered"] == 0 and old.stats()["events_sent"] == 2
        finally:
            await new.close()

    run(presence, "mover-old", scenario)


def test_an_old_nodes_connect_delayed_past_the_move_does_not_displace_the_newer_connection(presence: PresenceServer) -> None:
    """Each connect carries the node's connectedAt: the old node's connect, held on the way until
    after the new node's, is the earlier one and is superseded; the old node's disconnect then
    removes nothing, and the socket stays on the new node throughout."""

    async def scenario(api: Api, old: Presence, proxy: FaultProxy) -> None:
        new = Presence(presence.url, None, "late-mover-new")
        first = HoldFirstEvents()
        proxy.rule = first.rule
        try:
            old.connected("moving", user_id="u")
            await wait_until(lambda: _async(first.held), DELIVERY, "the old node's connect held", interval=HEARTBEAT / 10)
            new.connected("moving", user_id="u")
            await registry_equals(api, {"moving": ("late-mover-new", "u")}, DELIVERY, "on the new node")
            first.release.set()
            await wait_until(settled(old), DELIVERY, "the old node's connect answered")
            assert old.stats()["superseded"] == 1
            await registry_equals(api, {"moving": ("late-mover-new", "u")}, 0, "still on the new node")
            old.disconnected("moving")
            await wait_until(settled(old), DELIVERY, "the old node's disconnect answered")
            await registry_equals(api, {"moving": ("late-mover-new", "u")}, 0, "still on the new node after the old one's disconnect")
            assert "moving" in new.sockets and new.stats()["superseded"] == 0
        finally:
            first.release.set()
            await new.close()

    run_proxied(presence, "late-mover-old", scenario)


def test_redis_restarted_empty_is_resynced_within_its_bound(presence: PresenceServer, redis: RedisServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        touched = {f"r-{i}" for i in range(1500)}
        for index, socket_id in enumerate(sorted(touched)):
            client.connected(socket_id, user_id=f"user-{index % 300}")
        await registry_equals(api, local_truth(client, touched), DELIVERY, "all alive before the restart")

        await asyncio.to_thread(redis.kill)  # blocking calls never run in the client's event loop
        retries = client.stats()["retries"]
        # Changes while Redis is down fail with 503; newer changes for the same sockets follow.
        olds = sorted(touched)
        for socket_id in olds[:100]:
            client.disconnected(socket_id)
        for socket_id in olds[100:200]:
            client.disconnected(socket_id)
            client.connected(socket_id, user_id="moved")
        await wait_until(lambda: _async(client.stats()["retries"] > retries), 10 * HEARTBEAT, "events failed")
        # Heartbeats fail too (503) and keep being retried.
        await wait_until(lambda: _async(client.stats()["heartbeat_failures"] >= 2), 10 * HEARTBEAT, "heartbeats failed")
        for socket_id in olds[200:300]:
            client.connected(socket_id, user_id="changed-after-503")
        new = {f"r-new-{i}" for i in range(100)}
        for socket_id in sorted(new):
            client.connected(socket_id, user_id="new")
        touched |= new
        assert client.stats()["pending"] + client.stats()["in_flight"] <= 400

        await asyncio.to_thread(redis.start)  # empty, same port
        await wait_until(api.ready, 30, "presence ready again")
        # 1,600 sockets and the changes made meanwhile: two batches, then the prune's listing.
        took = await registry_equals(api, local_truth(client, touched), resync_bound(batches(touched) + 1),
                                     "registry complete again within detection, resync delay and the batches")
        print(f"registry complete {took:.2f} s after presence was ready again")
        assert client.stats()["resyncs"] >= 1

    run(presence, "resync", scenario)


def test_resync_while_a_batch_is_in_flight(presence: PresenceServer, redis: RedisServer) -> None:
    """An events request held in flight (a transport hook) while Redis restarts empty and a
    heartbeat asks for a resync: after its release, every socket is there."""

    async def main() -> None:
        hold = asyncio.Event()
        release = asyncio.Event()

        async def on_request_start(session: Any, context: Any, params: Any) -> None:
            if params.method == "POST" and str(params.url).endswith("/events") and hold.is_set():
                hold.clear()
                await release.wait()

        tracing = aiohttp.TraceConfig()
        tracing.on_request_start.append(on_request_start)
        async with Api(presence.url) as api, aiohttp.ClientSession(trace_configs=[tracing]) as session:
            client = Presence(presence.url, None, "in-flight", session=session)
            try:
                touched = {f"f-{i}" for i in range(500)}
                for socket_id in sorted(touched):
                    client.connected(socket_id, user_id="u")
                await registry_equals(api, local_truth(client, touched), DELIVERY, "all alive")
                hold.set()
                for index in range(100):
                    client.connected(f"f-late-{index}", user_id="late")
                    touched.add(f"f-late-{index}")
                await wait_until(lambda: _async(client.stats()["in_flight"] == 100), DELIVERY, "batch held in flight")
                await asyncio.to_thread(redis.kill)
                await asyncio.to_thread(redis.start)
                await wait_until(lambda: _async(client.stats()["resyncs"] >= 1), 10 * HEARTBEAT,
                                 "a heartbeat asked for a resync while the batch was in flight")
                assert client.stats()["in_flight"] == 100
                release.set()
                await registry_equals(api, local_truth(client, touched), resync_bound(batches(touched) + 1),
                                      "complete after the release")
            finally:
                release.set()
                await client.close()

    asyncio.run(main())


def test_presence_down_for_5_s_loses_nothing_and_buffers_one_entry_per_socket(tmp_path: Any, presence: PresenceServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        touched = {f"d-{i}" for i in range(1000)}
        for socket_id in sorted(touched):
            client.connected(socket_id, user_id=socket_id[-1])
        await registry_equals(api, local_truth(client, touched), DELIVERY, "all alive before the outage")
        # A record this process does not hold (as if its disconnect had been lost): pruned after the outage.
        status, _ = await api.call("PUT", "/v1/nodes/outage/sockets/ghost", {"userId": "ghost"})
        assert status == 201
        touched.add("ghost")

        await asyncio.to_thread(presence.kill)
        loop = asyncio.get_running_loop()
        outage_end = loop.time() + 5
        during: set[str] = set()
        step = 0
        largest = 0
        olds = sorted(touched - {"ghost"})
        while loop.time() < outage_end:
            for socket_id in olds[step * 40:(step + 1) * 40]:
                client.disconnected(socket_id)
                during.add(socket_id)
            for index in range(40):
                socket_id = f"d-new-{step}-{index}"
                client.connected(socket_id, user_id="new")
                during.add(socket_id)
            for socket_id in olds[-(step + 1) * 5:]:  # the same sockets flip again and again
                client.disconnected(socket_id)
                client.connected(socket_id, user_id=f"flip-{step}")
                during.add(socket_id)
            stats = client.stats()
            largest = max(largest, stats["pending"] + stats["in_flight"])
            # The buffer is the set of sockets touched, never a queue of every change.
            assert stats["pending"] + stats["in_flight"] <= len(during), (stats, len(during))
            step += 1
            await asyncio.sleep(0.25)
        touched |= during
        print(f"outage: {len(during)} sockets touched, at most {largest} pending, {client.stats()['retries']} retries")

        await asyncio.to_thread(presence.start)  # same port, same Redis: the node expired meanwhile and is revived
        await wait_until(api.ready, 30, "presence ready again")
        # Noticing takes up to one heartbeat (the retry pause is capped there), then the revived node
        # resends everything and prunes.
        took = await registry_equals(api, local_truth(client, touched), resync_bound(batches(touched) + 1),
                                     "registry equals the local truth again, the ghost dead")
        print(f"registry complete {took:.2f} s after presence was ready again")
        assert client.stats()["resyncs"] >= 1

    run(presence, "outage", scenario)


def test_queries_and_heartbeat_contents(presence: PresenceServer) -> None:
    async def scenario(api: Api, client: Presence) -> None:
        client.connected("q-1", user_id="alice", meta={"room": "lobby"})
        client.connected("q-2", user_id="alice")
        client.connected("q-3", user_id="bob")
        client.connected("q-4")
        await wait_until(settled(client), DELIVERY, "sent")
        # A session of the user's that raises for every 4xx: the client still reads its answers.
        strict = aiohttp.ClientSession(raise_for_status=True)
        reader = Presence(presence.url, None, "reader-never-registered", session=strict)
        try:
            socket = await reader.socket("q-1")
            assert isinstance(socket, SocketInfo)
            assert (socket.socket_id, socket.node_id, socket.node_address, socket.user_id, socket.meta) == \
                ("q-1", "queries", "127.0.0.1:1", "alice", {"room": "lobby"})
            assert await reader.socket("nobody") is None
            found = await reader.lookup(["q-3", "nobody", "q-4"])
            assert [s.socket_id if s else None for s in found] == ["q-3", None, "q-4"]
            assert found[1] is None and found[2] is not None and found[2].user_id is None
            assert sorted(s.socket_id for s in await reader.user("alice")) == ["q-1", "q-2"]
            assert await reader.user("carol") == []
            # Gone: how and when (the change stream is on by default), and the user's last-seen time.
            client.connected("q-5", user_id="dave")
            await wait_until(settled(client), DELIVERY, "q-5 sent")
            assert await reader.departure("q-5") is None and await reader.last_seen("dave") is None
            before = datetime.now(timezone.utc).replace(microsecond=0)
            client.disconnected("q-5")
            await wait_until(settled(client), DELIVERY, "q-5's disconnect sent")
            gone = await reader.departure("q-5")
            assert gone is not None and gone.reason == "disconnected" and gone.disconnected_at >= before, gone
            # The user entry goes in a script call of its own (another key than the record's): its
            # time is the same disconnect's, not necessarily the same millisecond.
            seen = await reader.last_seen("dave")
            assert seen is not None and before <= seen <= datetime.now(timezone.utc), (seen, gone)
            assert await reader.last_seen("alice") is None and await reader.departure("nobody") is None
        finally:
            await reader.close()
            await strict.close()
        status, _ = await api.call("GET", "/v1/nodes/reader-never-registered")
        assert status == 404  # queries alone never register a node

        # Heartbeats carry the incarnation and the distinct user count (alice, bob).
        status, node = await api.call("GET", "/v1/nodes/queries")
        assert status == 200 and node["incarnation"] == client.incarnation and node["address"] == "127.0.0.1:1"

        async def two_users() -> bool:
            _, stats = await api.call("GET", "/v1/stats")
            return stats["users"]["online"] == 2
        await wait_until(two_users, 2 * HEARTBEAT, "userCount 2 in /v1/stats")

    run(presence, "queries", scenario)


def test_close_leaves_the_registry_and_every_socket_reads_dead_at_once(presence: PresenceServer) -> None:
    async def main() -> None:
        async with Api(presence.url) as api:
            client = Presence(presence.url, None, "closing")
            ids = {f"c-{i}" for i in range(50)}
            for socket_id in ids:
                client.connected(socket_id)  # starts the client
            await registry_equals(api, local_truth(client, ids), DELIVERY, "all alive")
            with pytest.raises(TypeError):
                client.sockets["c-0"] = (None, None)  # type: ignore[index]  # a read-only view
            await client.close()
            status, _ = await api.call("GET", "/v1/nodes/closing")
            assert status == 404
            await registry_equals(api, {s: None for s in ids}, 0, "every socket dead right after close()")
            client.connected("after-close")  # ignored, no error
            assert client.stats()["pending"] == 0
            # Queries after close() fail as PresenceError, not a raw RuntimeError, and not as
            # "unavailable, try again"; a client that never queried opens no session after close().
            reader = Presence(presence.url, None, "reader")
            await reader.close()
            for closed in (client, reader):
                with pytest.raises(PresenceError) as raised:
                    await closed.socket("c-0")
                assert raised.value.code == "closed" and not isinstance(raised.value, PresenceUnavailable)

    asyncio.run(main())


def test_close_retries_a_503_and_returns_within_its_timeout(presence: PresenceServer) -> None:
    unavailable = error_body("unavailable", "Redis is unavailable")

    async def scenario(api: Api, client: Presence, proxy: FaultProxy) -> None:
        # Three 503s, then the DELETE goes through: the node leaves, its sockets read dead at once.
        client.connected("s", user_id="u")
        await registry_equals(api, {"s": ("leaving", "u")}, DELIVERY, "'s' recorded")
        deletes = iter([Answer(503, unavailable)] * 3)
        proxy.rule = lambda method, path: next(deletes, Forward()) if method == "DELETE" else Forward()
        await client.close(timeout=NODE_TTL)
        assert proxy.count("DELETE", "/v1/nodes/leaving") == 4
        status, _ = await api.call("GET", "/v1/nodes/leaving")
        assert status == 404

    run_proxied(presence, "leaving", scenario)

    async def unanswered(api: Api, client: Presence, proxy: FaultProxy) -> None:
        # A DELETE that is never answered: close() still returns within its timeout, though one
        # request may take request_timeout (40 s here).
        hold = asyncio.Event()
        proxy.rule = lambda method, path: Forward(hold=hold) if method == "DELETE" else Forward()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await client.close(timeout=HEARTBEAT)
        finally:
            hold.set()
        assert loop.time() - started < HEARTBEAT + BATCH_SLACK
        assert proxy.count("DELETE", "/v1/nodes/stuck") >= 1

    run_proxied(presence, "stuck", unanswered, request_timeout=10 * NODE_TTL)


async def _async(value: bool) -> bool:
    return value


def test_changes_in_order_and_a_resume_replays_exactly_what_followed(presence: PresenceServer) -> None:
    """changes(): a user's socket and online/offline changes in order; resuming from a change's id
    replays what followed (same ids), then goes on live; a trimmed position raises position_trimmed."""

    async def take(changes: Any, count: int) -> list[Any]:
        taken = []
        async for change in changes:
            taken.append(change)
            if len(taken) == count:
                break
        return taken

    async def scenario(api: Api, client: Presence) -> None:
        client.connected("feed-a", user_id="feed-user")
        await wait_until(settled(client), NODE_TTL, "the connect written")
        client.disconnected("feed-a")
        await wait_until(settled(client), NODE_TTL, "the disconnect written")
        # since "": from the start of the retention (the filter keeps this user's changes only).
        history = await asyncio.wait_for(take(client.changes(user_id="feed-user", since=""), 4), NODE_TTL)
        assert [c.type for c in history] == ["socket.connected", "user.online", "socket.disconnected", "user.offline"]
        assert history[0].data["socketId"] == "feed-a" and history[2].data["reason"] == "disconnected"
        resumed = client.changes(user_id="feed-user", since=history[1].id)
        replay = await asyncio.wait_for(take(resumed, 2), NODE_TTL)
        assert [c.id for c in replay] == [c.id for c in history[2:]]
        live = client.changes(user_id="feed-user", since=history[3].id)
        client.connected("feed-b", user_id="feed-user")
        following = await asyncio.wait_for(take(live, 2), NODE_TTL)
        assert [(c.type, c.data.get("socketId")) for c in following] == [("socket.connected", "feed-b"), ("user.online", None)]
        with pytest.raises(PresenceError) as trimmed:
            await asyncio.wait_for(take(client.changes(since="0=1-0"), 1), NODE_TTL)
        assert trimmed.value.code == "position_trimmed" and trimmed.value.status == 410

    run(presence, "feed-node", scenario)
