"""Real processes for the tests: redis-server, `presence serve`, python-socketio node servers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
CLIENT_SRC = HERE.parent / "src"


def presence_binary() -> str:
    """The `presence` binary from $PRESENCE_BIN; fails the test clearly when it is missing."""
    path = os.environ.get("PRESENCE_BIN")
    if not path:
        raise RuntimeError("PRESENCE_BIN is not set: point it at a built `presence` binary "
                           "(scripts/test sets it to $(swift build --show-bin-path)/presence)")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"PRESENCE_BIN={path} is not an executable file")
    return path


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if not path:
        raise RuntimeError("redis-server is not installed (Debian package redis-server; scripts/install-deps installs it)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class RedisServer:
    """A private redis-server on a loopback port, without persistence; restartable empty on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it answers PING; on any failure the process is killed before raising."""
        log_path = self.workdir / f"redis-{self.port}.log"
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {_tail(log_path)}")
                try:
                    if self.command("PING") == b"+PONG":
                        return
                except OSError:
                    time.sleep(0.02)
            raise RuntimeError("redis-server did not answer within 10 s")
        except BaseException:
            self.kill()
            raise

    def command(self, *args: str) -> bytes:
        """One command over RESP; returns the first line of the reply (e.g. `:1`, `+OK`)."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(request.encode())
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class PresenceServer:
    """`presence serve` on a loopback port against a given Redis; restartable on the same port."""

    def __init__(self, workdir: Path, redis_url: str, heartbeat: float, node_ttl: float) -> None:
        self.binary = presence_binary()
        self.workdir = workdir
        self.redis_url = redis_url
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "presence.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait for its listening line; on any failure the process is killed before raising."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--redis", self.redis_url, "--host", "127.0.0.1", "--port", str(self.port),
                 "--heartbeat", str(self.heartbeat), "--node-ttl", str(self.node_ttl), "--log-level", "notice"],
                stdout=log, stderr=subprocess.STDOUT, env={k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")})
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"presence serve exited: {_tail(self.log)}")
                text = self.log.read_bytes()[offset:].decode(errors="replace")
                found = re.search(r"address=\S*127\.0\.0\.1:(\d+)", text)
                if found:
                    self.port = int(found.group(1))
                    return
                time.sleep(0.02)
            raise RuntimeError(f"presence serve did not start within 20 s: {_tail(self.log)}")
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NodeServer:
    """tests/socketio_node.py: a socketio.AsyncServer on aiohttp reporting with presence_client."""

    def __init__(self, workdir: Path, presence_url: str, node_id: str) -> None:
        self.node_id = node_id
        self.log = workdir / f"{node_id}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(CLIENT_SRC), os.environ.get("PYTHONPATH")])))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "socketio_node.py"), "--presence", presence_url, "--node-id", node_id],
                stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            line = self._first_line(timeout=30)
            if not line.startswith("listening "):
                raise RuntimeError(f"{node_id} did not start: {line!r} {_tail(self.log)}")
            self.port = int(line.split()[1])
        except BaseException:
            self.kill()
            raise

    def _first_line(self, timeout: float) -> str:
        """The first line the node prints, or what it printed before exiting or `timeout` passed."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.node_id} printed no line within {timeout:.0f} s: {data!r} {_tail(self.log)}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:  # exited
                    break
                data += chunk
        return data.split(b"\n", 1)[0].decode(errors="replace")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class LoopThread:
    """An asyncio event loop in a thread, so module-scoped fixtures can keep clients open between tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll `condition` until it holds; returns the seconds it took, fails after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await condition():
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"not within {timeout:.1f} s: {what}")
        await asyncio.sleep(interval)


@dataclass
class Forward:
    """Pass the request on once `hold` is set (if given); pass its answer back once `answer_hold`
    is set (if given) and `answer_delay` seconds have passed."""

    hold: asyncio.Event | None = None
    answer_hold: asyncio.Event | None = None
    answer_delay: float = 0.0


@dataclass
class Answer:
    """Answer the request in the proxy's name (a WAF, a misrouted ingress) without passing it on,
    once `hold` is set (if given)."""

    status: int
    body: str = ""
    content_type: str = "application/json"
    hold: asyncio.Event | None = None


class FaultProxy:
    """An HTTP/1.1 proxy on loopback in front of presence that applies `rule(method, path)` to each
    request: forward it (held back, or its answer delayed) or answer it itself. One request per
    connection (it adds `Connection: close`). `arrivals` records (loop time, method, path) as
    requests come in, `answered` (loop time, method, path, status) as the server answers them.

    A held request that the client gave up on is still passed on once released, as a slow
    network or server would: the server applies it, and its answer goes nowhere."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rule: Callable[[str, str], Forward | Answer] = lambda method, path: Forward()
        self.arrivals: list[tuple[float, str, str]] = []
        self.answered: list[tuple[float, str, str, int]] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for _, m, path in self.arrivals if m == method and path.split("?")[0].endswith(suffix))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head, body = await _read_message(reader)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            self.arrivals.append((asyncio.get_running_loop().time(), method, path))
            action = self.rule(method, path)
            if isinstance(action, Answer):
                if action.hold is not None:
                    await action.hold.wait()
                payload = action.body.encode()
                writer.write((f"HTTP/1.1 {action.status} Fault\r\nContent-Type: {action.content_type}\r\n"
                              f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload)
                await writer.drain()
                return
            if action.hold is not None:
                await action.hold.wait()
            kept = [line for line in lines[1:] if line and not line.lower().startswith("connection:")]
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            try:
                up_writer.write("\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1") + body)
                await up_writer.drain()
                answer_head, answer_body = await _read_message(up_reader)
            finally:
                up_writer.close()
            status = int(answer_head.split(b" ", 2)[1])
            self.answered.append((asyncio.get_running_loop().time(), method, path, status))
            if action.answer_hold is not None:
                await action.answer_hold.wait()
            if action.answer_delay:
                await asyncio.sleep(action.answer_delay)
            writer.write(answer_head + answer_body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up; the server had the request if it was passed on
        finally:
            writer.close()
            self._tasks.discard(task)


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """An HTTP/1.1 head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    body = await reader.readexactly(int(found.group(1))) if found else b""
    return head, body


class Api:
    """Raw HTTP calls to presence, independent of the client under test."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, self.base + path, json=body) as response:
            raw = await response.read()
            return response.status, (json.loads(raw) if raw else None)

    async def lookup(self, socket_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """socket id -> its answer (`alive`, `nodeId`, `userId`, ...); 1,000 per request."""
        ids = list(dict.fromkeys(socket_ids))
        answers: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            status, body = await self.call("POST", "/v1/sockets/lookup", {"socketIds": ids[start:start + 1000]})
            assert status == 200, (status, body)
            for item in body["sockets"]:
                answers[item["socketId"]] = item
        return answers

    async def events_requests(self) -> int:
        """POST /v1/nodes/{id}/events requests the server has answered (any status), from /metrics."""
        assert self.session is not None
        async with self.session.get(self.base + "/metrics") as response:
            text = await response.text()
        total = 0
        for line in text.splitlines():
            if line.startswith("hb_requests{") and 'http_route="/v1/nodes/{nodeId}/events"' in line \
                    and 'http_request_method="POST"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    async def ready(self) -> bool:
        try:
            status, _ = await self.call("GET", "/readyz")
            return status == 200
        except aiohttp.ClientError:
            return False


def registry_matches(answers: dict[str, dict[str, Any]], expected: dict[str, tuple[str, str | None] | None]) -> list[str]:
    """Differences between lookups and the expected state: socket -> (node id, user id), or None for dead."""
    problems = []
    for socket_id, want in expected.items():
        got = answers.get(socket_id)
        if got is None:
            problems.append(f"{socket_id}: no answer")
        elif want is None:
            if got["alive"]:
                problems.append(f"{socket_id}: alive on {got['nodeId']}, expected dead")
        elif not got["alive"]:
            problems.append(f"{socket_id}: dead, expected alive on {want[0]}")
        elif (got["nodeId"], got["userId"]) != want:
            problems.append(f"{socket_id}: on {got['nodeId']} as {got['userId']}, expected {want}")
    return problems
