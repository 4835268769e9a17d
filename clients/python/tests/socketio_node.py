"""A python-socketio node for the tests: socketio.AsyncServer on aiohttp, reporting with presence_client.

Prints `listening PORT` once its loopback socket listens; SIGTERM shuts it down gracefully (the
client leaves the registry). `GET /presence-stats` answers the client's stats() and local sockets.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import socketio
from aiohttp import web

from presence_client import Presence


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presence", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def connect(sid: str, environ: dict, auth: dict | None) -> None:
        if not auth or not isinstance(auth.get("userId"), str):
            raise socketio.exceptions.ConnectionRefusedError("auth.userId is required")
        await sio.save_session(sid, {"userId": auth["userId"]})

    async def user_id(sid: str, environ: dict, auth: object) -> str:
        return (await sio.get_session(sid))["userId"]

    presence = Presence(args.presence, args.token, args.node_id, address=f"127.0.0.1:{port}", user_id=user_id)
    presence.attach(sio, app)  # starts with the app; leaves the registry on shutdown (SIGTERM)

    async def disconnect_clients(app: web.Application) -> None:
        await sio.shutdown()  # after the client left: the disconnects need not be reported

    app.on_shutdown.append(disconnect_clients)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"stats": presence.stats(), "sockets": sorted(presence.sockets),
                                  "incarnation": presence.incarnation})

    app.router.add_get("/presence-stats", stats)
    print(f"listening {port}", flush=True)
    web.run_app(app, sock=listener, print=None, shutdown_timeout=2)


if __name__ == "__main__":
    main()
