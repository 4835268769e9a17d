"""Report a python-socketio or aiohttp server's sockets to presence over HTTP, and query the registry.

    presence = Presence("http://presence:8080", token, node_id="ws-1", address="10.0.0.5:3000")
    presence.attach(sio, app)                 # socketio.AsyncServer, aiohttp app
    await presence.socket(socket_id)          # SocketInfo, or None when not connected
"""

from ._client import Change, ClientStats, Presence, PresenceError, PresenceUnavailable, SocketInfo

__all__ = ["Change", "ClientStats", "Presence", "PresenceError", "PresenceUnavailable", "SocketInfo"]
__version__ = "0.1.0"
