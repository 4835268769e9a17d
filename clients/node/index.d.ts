// Type declarations of presence-client (index.js), self-contained (no @types/node needed). The
// HTTP contract is presence's openapi.yaml.

/** String values; at most 16 entries, keys up to 64 bytes, values up to 1,024 bytes. */
export type Meta = Record<string, string>;

export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

export interface PresenceOptions {
  /** Base URL of `presence serve`, without `/v1` (for example `http://presence:8080`). */
  url: string;
  /** One token for everything: a write token (reports need one; queries take it too). */
  token?: string;
  /** Token for queries (socket, lookup, user); default `token`, else `writeToken`. */
  readToken?: string;
  /** Token for reports (heartbeat, events, leave); default `token`. */
  writeToken?: string;
  /**
   * This node's id, stable across restarts of the same server (for example the host name), and
   * unique among the processes running at once (two under one id take the registration from each
   * other: logged as an error, heartbeats back off).
   */
  nodeId: string;
  /** Where other nodes reach this one (for example `10.0.0.5:3000`); optional. */
  address?: string;
  /** The node's meta map, sent with every heartbeat. */
  meta?: Meta;
  /** Heartbeat interval; default: what the server advises (`heartbeatIntervalMs`, 2 s by default). */
  heartbeatMs?: number;
  /**
   * Events requests under way at once, 1–4 (default 2). Each socket is in at most one of them, so
   * its events apply in order; a second request overlaps the server's work on the first.
   */
  maxInFlight?: number;
  /** Per-request timeout, reading the answer's body included (default 10,000 ms). */
  timeoutMs?: number;
  /** How long a change waits for others to join its batch when fewer than 1,000 are pending (default 10 ms). */
  batchDelayMs?: number;
  /** How long close() may take in all, retrying the leave meanwhile (default 5,000 ms). */
  closeTimeoutMs?: number;
  /**
   * Signals on which the node leaves the registry, then exits as the signal would have made it
   * once every client in the process has left (unless the application listens for the signal
   * itself: its handler then decides, never cut short). Default `["SIGTERM", "SIGINT"]`; `false`
   * or `[]` installs none (then call close() yourself).
   */
  signals?: string[] | false;
  /** Where failures and recoveries are logged, once per streak (default `console`). */
  logger?: Logger;
  /** A fetch to use instead of the global one (instrumentation, proxies); called as fetch(url, init). */
  fetch?: (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal: unknown }) => Promise<any>;
}

export interface LiveSocket {
  socketId: string;
  alive: true;
  nodeId: string;
  nodeAddress: string;
  userId: string | null;
  /** RFC 3339, UTC, milliseconds. */
  connectedAt: string;
  meta: Meta;
}

export interface DeadSocket {
  socketId: string;
  alive: false;
  /** When its record went (RFC 3339, UTC, ms), if that was within the server's socket-history retention. */
  disconnectedAt?: string;
  /** Why, given with `disconnectedAt`. */
  reason?: "disconnected" | "node_down" | "node_left" | "moved";
}

export type Socket = LiveSocket | DeadSocket;

export interface User {
  userId: string;
  online: boolean;
  sockets: LiveSocket[];
  /** When its last socket went (RFC 3339, UTC, ms), while offline, within the server's last-seen retention. */
  lastSeenAt?: string;
}

export interface PresenceStats {
  nodeId: string;
  incarnation: string;
  /** Whether the registry has this incarnation registered (events are sent only then). */
  registered: boolean;
  /** Sockets held now (the local truth). */
  sockets: number;
  /** Distinct users among them (the heartbeat's `userCount`). */
  users: number;
  /** Sockets with a change to send: at most the sockets touched since the last answer. */
  pending: number;
  /** Sockets of a resync still to send. */
  resyncLeft: number;
  /** Sockets the registry may hold for this node (sent, no disconnect answered since). */
  inRegistry: number;
  /** Sockets the server refused (400), not sent again until they change. */
  rejected: number;
  /** Events in the requests under way. */
  inFlight: number;
  /**
   * Sockets of requests that may have been applied without an answer (a timeout, a reset
   * connection, a 502/504), whose state is sent once more when such a request can no longer arrive.
   */
  rechecks: number;
  eventRequests: number;
  heartbeats: number;
  failedRequests: number;
  eventsSent: number;
  /** Events in 200 answers. */
  eventsAccepted: number;
  /** Events refused by the server (a 400 naming the event's socket id) and dropped. */
  eventsDropped: number;
  /** Connects the registry ignored because the socket connected later on another node. */
  superseded: number;
  resyncs: number;
  /** Sockets the registry held for this node that it no longer held, found by a prune after a resync and disconnected. */
  pruned: number;
  /** Heartbeats answered `replaced` although this incarnation was registered: another process under this node id. */
  conflicts: number;
  /** Incarnations used (a new one after an outage longer than the node TTL). */
  incarnations: number;
}

/** Anything with Socket.IO's server (or namespace) interface. */
export interface SocketIOServerLike {
  on(event: "connection", listener: (socket: SocketIOSocketLike) => void): unknown;
  /** Socket.IO 4: `io.sockets` is the main namespace, whose `sockets` is a Map; a namespace has the Map itself. */
  sockets?: Map<string, SocketIOSocketLike> | { sockets?: Map<string, SocketIOSocketLike> };
}

export interface SocketIOSocketLike {
  id: string;
  data?: any;
  /** Socket.IO's flag; a socket found disconnected is not reported. */
  connected?: boolean;
  on(event: "disconnect", listener: (...args: any[]) => void): unknown;
}

export interface AttachOptions {
  /**
   * The socket's user; default `socket.data.userId`. Numbers are sent as strings. May be async:
   * the socket is reported once it resolves, not at all if it disconnected meanwhile. One that
   * throws, rejects or is refused is logged and the socket reported without a user.
   */
  userId?: (socket: any) => string | number | null | undefined | Promise<string | number | null | undefined>;
  /** The socket's meta map; default none. One that throws or is refused is logged and left out. */
  meta?: (socket: any) => Meta | undefined;
}

export declare class PresenceError extends Error {
  /** HTTP status, or undefined when no answer came. */
  status?: number;
  /** The API's error code (`redis_unavailable`, `node_not_found`, …). */
  code?: string;
}

export declare class Presence {
  /** Use createPresence(). */
  constructor(options: PresenceOptions);
  readonly nodeId: string;
  /** Random per process; a new one after an outage longer than the node TTL. */
  readonly incarnation: string;
  /** Registered, nothing pending, no resync, prune or recheck left and no request in flight. */
  readonly settled: boolean;
  /** Reports a Socket.IO server's (or namespace's) connections and disconnects, those already connected too. */
  attach(io: SocketIOServerLike, options?: AttachOptions): this;
  /** The process accepted a socket (or the same id again). Throws TypeError for ids or meta presence refuses. */
  connected(socketId: string, details?: { userId?: string | number | null; meta?: Meta }): void;
  /** The socket is gone. */
  disconnected(socketId: string): void;
  stats(): PresenceStats;
  /** Is this socket connected right now, and where? Throws PresenceError (503) when the registry cannot say. */
  socket(socketId: string): Promise<Socket>;
  /** One answer per id, in order (1,000 per request). */
  lookup(socketIds: string[]): Promise<Socket[]>;
  user(userId: string): Promise<User>;
  /**
   * The registry's changes as they happen (GET /v1/changes, server-sent events), the recorded ones
   * after `since` first. Reconnects from the last position after a dropped connection; throws
   * PresenceError (code `position_trimmed`) for a position older than the retention.
   */
  changes(filter?: ChangeFilter): AsyncIterable<Change>;
  /**
   * Leaves the registry (DELETE /v1/nodes/{id}): every socket of the node reads dead at once.
   * Resolves within closeTimeoutMs, true when confirmed; never rejects.
   */
  close(): Promise<boolean>;
}

/** What `changes()` streams: every change unless narrowed. */
export interface ChangeFilter {
  /** e.g. ["user.online", "user.offline"]; all types when absent. */
  types?: string[];
  /** Only changes of these users. */
  userId?: string | string[];
  /** Only changes of this node. */
  nodeId?: string;
  /** Resume after this position (a change's `id`). */
  since?: string;
}

/** One change of the registry. */
export interface Change {
  /** Its position: pass it as `since` to resume after it. */
  id: string;
  /** `socket.connected`, `socket.disconnected`, `user.online`, `user.offline`, `node.up`, `node.down`, `node.left`. */
  type: string;
  /** Its fields (`socketId`, `nodeId`, `userId`, `reason`, `incarnation`, `connectedAt`, `at`, …). */
  data: Record<string, unknown>;
}

/** Creates the reporter of one node and starts heartbeating at once. */
export declare function createPresence(options: PresenceOptions): Presence;
