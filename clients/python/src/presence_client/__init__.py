"""Report a python-socketio or aiohttp server's sockets to presence over HTTP, and query the registry.

    presence = Presence("http://presence:8080", token, node_id="ws-1", address="10.0.0.5:3000")
    presence.attach(sio, app)                 # socketio.AsyncServer, aiohttp app
    await presence.socket(socket_id)          # SocketInfo, or None when not connected
    await presence.departure(socket_id)       # Departure (disconnected_at, reason) of a socket that went
    await presence.last_seen(user_id)         # when an offline user's last socket went
"""

from ._client import Change, ClientStats, Departure, Presence, PresenceError, PresenceUnavailable, SocketInfo

__all__ = ["Change", "ClientStats", "Departure", "Presence", "PresenceError", "PresenceUnavailable", "SocketInfo"]
__version__ = "0.1.0"
