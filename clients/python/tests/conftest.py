"""Fixtures: a private redis-server and `presence serve` per test (module for the cluster), real processes only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import PresenceServer, RedisServer, presence_binary, redis_binary

# Short intervals keep the suite fast; every deadline in the tests derives from these.
HEARTBEAT = 1.0
NODE_TTL = 4.0


@pytest.fixture(scope="session", autouse=True)
def binaries() -> None:
    """Fail every test with a clear message when a needed binary is missing (never skip)."""
    try:
        presence_binary()
        redis_binary()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def presence(tmp_path: Path, redis: RedisServer) -> Iterator[PresenceServer]:
    server = PresenceServer(tmp_path, redis.url, HEARTBEAT, NODE_TTL)
    server.start()
    yield server
    server.stop()
