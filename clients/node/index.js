// presence-client: reports a websocket server's sockets to `presence serve` over HTTP and asks it
// where sockets are. Zero dependencies; Node.js 18 or later (global fetch).
//
// The local truth (the sockets this process holds) is the only buffer: a change marks its socket
// "dirty", and what is sent for a dirty socket is read from the local truth when its batch is built,
// so any number of changes to one socket cost one event and the newest state wins.

import { randomUUID } from "node:crypto";

const MAX_EVENTS = 1000;
// The server refuses bodies over 1 MiB; a batch of large meta maps stops short of that (and
// shorter once a 413 shows something in between allows less).
const MAX_BODY_BYTES = 1_000_000;
const MIN_BODY_BYTES = 1024;
const ID_MAX_BYTES = 256;
const META_MAX_ENTRIES = 16;
const META_KEY_MAX_BYTES = 64;
const META_VALUE_MAX_BYTES = 1024;
// Characters no id or meta entry may hold (the rest of the server's rules, unassigned code points,
// are left to it: this runtime's Unicode version may differ from the server's).
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}]/u;
const RETRY_BASE_MS = 100;
// A registry of sockets ever sent and not yet known removed: `UNKNOWN` when the user the registry
// holds for it is not known (a connect whose answer was lost), else that user id (or null).
const UNKNOWN = Symbol("unknown user");

/** An error answer of presence (`status` and `code` from its body), or a request that failed. */
export class PresenceError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, cause?: unknown}} [details]
   */
  constructor(message, { status, code, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PresenceError";
    /** HTTP status, or undefined when no answer came. */
    this.status = status;
    /** The API's error code (`redis_unavailable`, `node_not_found`, …), when the answer had one. */
    this.code = code;
  }
}

// Signal listeners of every client in this process, and the leaves they started: a signal heard by
// several clients ends the process once all of them have left.
const OUR_HANDLERS = new Set();
const LEAVING = new Set();

/** This host's time now (milliseconds, the wall clock), as presence reads a connectedAt. */
function nowRFC3339() {
  // Formatted once per millisecond: a burst of connects shares it.
  const now = Date.now();
  if (now !== clock.ms) {
    clock.ms = now;
    clock.text = new Date(now).toISOString();
  }
  return clock.text;
}
const clock = { ms: -1, text: "" };

/**
 * Creates a reporter for one node (this process) and starts heartbeating at once.
 * @param {PresenceOptions} options see index.d.ts
 * @returns {Presence}
 */
export function createPresence(options) {
  return new Presence(options);
}

export class Presence {
  #url;
  #nodeId;
  #nodePath;
  #address;
  #nodeMeta;
  #readToken;
  #writeToken;
  #fetch;
  #logger;
  #configuredHeartbeatMs;
  #heartbeatMs = 2000;
  #timeoutMs;
  #batchDelayMs;
  #closeTimeoutMs;
  #maxInFlight;
  #maxBodyBytes = MAX_BODY_BYTES;
  #incarnation = randomUUID();

  // Local truth.
  #local = new Map(); // socketId → {userId, meta}
  #users = new Map(); // userId → sockets held
  // What the registry may hold for this node: socketId → the user it was sent with (or UNKNOWN).
  #remote = new Map();
  // Sockets whose state must be sent (a Set keeps the order changes came in).
  #dirty = new Set();
  // Sockets the server refused (400 naming the event): not sent again until they change.
  #rejected = new Set();
  // Sockets of requests that may have been applied without an answer (a timeout, a reset
  // connection, a 502/504): socketId → when their state is sent once more, after the stray request
  // can no longer be applied late (it may have overtaken its own retry).
  #recheck = new Map();
  #recheckTimer = null;
  // After the registry lost the node (`new`, `revived`, `replaced`) and every socket was sent again:
  // the node's sockets are listed and those it no longer holds disconnected.
  #pruneWanted = false;
  #pruning = null;
  #pruneRetryAt = 0;
  #pruneFailures = 0;
  // A paced resync: the local set as it stood, sent in batches spread over half an interval.
  #resync = [];
  #resyncNext = 0;
  #resyncNotBefore = 0;
  #resyncPaced = false;

  #registered = false;
  #everRegistered = false;
  #lastBeatSentAt = 0; // monotonic time of the last heartbeat that was answered 200
  #lostAt = -Infinity; // when an events request last found the node unregistered
  #resyncWanted = false;
  #nodeTtlMs = 0;
  #rotatedThisOutage = false;
  #warnedTtl = false;
  #answeredAs = null; // the incarnation the last answered heartbeat registered
  // Another process heartbeating under this node id (each heartbeat answers `replaced`): how many
  // times in a row, and when last. Heartbeats after a conflict back off.
  #conflicts = 0;
  #conflictAt = -Infinity;

  #requests = new Set(); // events requests under way
  #busy = new Set(); // their sockets: each socket is in at most one request, so its events stay in order
  #flushTimer = null;
  #flushAt = 0;
  #eventsFailures = 0;
  #eventsRetryAt = 0;
  #heartbeatTimer = null;
  #heartbeatInFlight = null;
  #heartbeatFailures = 0;
  #closed = false;
  #closing = null;
  #abort = new AbortController();
  #signalHandlers = [];
  #failing = new Set(); // what is failing now, logged once per streak

  #counters = {
    eventRequests: 0,
    heartbeats: 0,
    failedRequests: 0,
    eventsSent: 0,
    eventsAccepted: 0,
    eventsDropped: 0,
    superseded: 0,
    resyncs: 0,
    pruned: 0,
    conflicts: 0,
    incarnations: 1,
  };

  /** @param {PresenceOptions} options */
  constructor(options) {
    const { url, token, readToken, writeToken, nodeId, address, meta, heartbeatMs, timeoutMs = 10_000,
      batchDelayMs = 10, closeTimeoutMs = 5000, maxInFlight = 2, signals = ["SIGTERM", "SIGINT"], logger = console } = options ?? {};
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) throw new TypeError("presence: url must be an http(s) URL");
    checkId(nodeId, "nodeId");
    if (address !== undefined) checkId(address, "address");
    if (meta !== undefined) checkMeta(meta, "meta");
    this.#url = url.replace(/\/+$/, "");
    this.#nodeId = nodeId;
    this.#nodePath = `/v1/nodes/${encodeURIComponent(nodeId)}`;
    this.#address = address;
    this.#nodeMeta = meta === undefined ? undefined : { ...meta }; // the caller's object may change later; checked as it was
    this.#writeToken = writeToken ?? token;
    this.#readToken = readToken ?? token ?? writeToken;
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== "function") throw new TypeError("presence: no fetch (Node.js 18 or later, or pass options.fetch)");
    this.#logger = logger ?? { warn() {}, error() {} };
    if (heartbeatMs !== undefined && !(Number.isFinite(heartbeatMs) && heartbeatMs >= 50)) throw new TypeError("presence: heartbeatMs must be at least 50");
    for (const [name, value, least] of [["timeoutMs", timeoutMs, 1], ["batchDelayMs", batchDelayMs, 0], ["closeTimeoutMs", closeTimeoutMs, 0]]) {
      // NaN or a string would make every timer fire at once (or never).
      if (!(Number.isFinite(value) && value >= least)) throw new TypeError(`presence: ${name} must be a number of at least ${least}`);
    }
    this.#configuredHeartbeatMs = heartbeatMs;
    if (heartbeatMs !== undefined) this.#heartbeatMs = heartbeatMs;
    this.#timeoutMs = timeoutMs;
    this.#batchDelayMs = batchDelayMs;
    this.#closeTimeoutMs = closeTimeoutMs;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 4) throw new TypeError("presence: maxInFlight must be 1 to 4");
    this.#maxInFlight = maxInFlight;
    for (const signal of signals || []) {
      const handler = () => this.#onSignal(signal);
      // First in line: when it runs, the application's own listeners (`once` ones too) are all
      // still registered, so it can tell whether the application handles the signal itself.
      process.prependListener(signal, handler);
      OUR_HANDLERS.add(handler);
      this.#signalHandlers.push([signal, handler]);
    }
    this.#beatIn(0);
  }

  /** This node's id. */
  get nodeId() {
    return this.#nodeId;
  }

  /** This process's incarnation (random; a new one after an outage longer than the node TTL). */
  get incarnation() {
    return this.#incarnation;
  }

  // MARK: reporting

  /**
   * Hooks a Socket.IO server (or one of its namespaces): every connection is reported with its
   * user id, every disconnect too. Sockets already connected are reported at once.
   *
   * `userId(socket)` may return a promise: the socket is reported once it resolves, and not at all
   * if it disconnected meanwhile. A user id that throws, rejects or is one presence would refuse
   * (and a meta map likewise) is logged as an error and the socket reported without it.
   * @param {import("node:events").EventEmitter} io
   * @param {{userId?: (socket: any) => string | number | null | undefined | Promise<string | number | null | undefined>, meta?: (socket: any) => Record<string, string> | undefined}} [options]
   * @returns {Presence} this
   */
  attach(io, { userId, meta } = {}) {
    const report = (socket) => {
      if (this.#closed || socket?.connected === false) return;
      let gone = false;
      try {
        // First: a disconnect while the user id is awaited must be seen.
        socket.on("disconnect", () => {
          gone = true;
          this.disconnected(socket.id);
        });
      } catch (error) {
        this.#log("error", `presence: socket ${socket?.id} not reported: ${error?.message ?? error}`);
        return;
      }
      let user;
      try {
        user = userId ? userId(socket) : socket.data?.userId;
      } catch (error) {
        this.#log("error", `presence: userId(socket) threw for socket ${socket.id}: ${error?.message ?? error}; reported without a user`);
        user = null;
      }
      if (typeof user?.then !== "function") return this.#report(socket, user, meta);
      Promise.resolve(user).then(
        (value) => !gone && socket.connected !== false && this.#report(socket, value, meta),
        (error) => {
          this.#log("error", `presence: userId(socket) failed for socket ${socket.id}: ${error?.message ?? error}; reported without a user`);
          if (!gone && socket.connected !== false) this.#report(socket, null, meta);
        },
      );
    };
    const namespace = io.sockets instanceof Map ? io : io.sockets;
    if (namespace?.sockets instanceof Map) for (const socket of namespace.sockets.values()) report(socket);
    io.on("connection", report);
    return this;
  }

  /** Reports a socket of attach(): a user id or meta map presence would refuse is left out, logged. */
  #report(socket, user, metaOf) {
    user = normalizeUser(user);
    if (user !== null) {
      try {
        checkId(user, "userId");
      } catch (error) {
        this.#log("error", `presence: socket ${socket.id}: ${error.message}; reported without a user`);
        user = null;
      }
    }
    let socketMeta;
    try {
      socketMeta = metaOf?.(socket);
      if (socketMeta !== undefined && socketMeta !== null) checkMeta(socketMeta, "meta");
    } catch (error) {
      this.#log("error", `presence: socket ${socket.id}: ${error?.message ?? error}; reported without meta`);
      socketMeta = undefined;
    }
    try {
      this.connected(socket.id, { userId: user, meta: socketMeta });
    } catch (error) {
      this.#log("error", `presence: socket ${socket.id} not reported: ${error.message}`);
    }
  }

  /**
   * The process accepted a socket (or the same socket id connected again, possibly as another
   * user). Never blocks and never throws for presence being away: the change is sent when it can be.
   * @param {string} socketId
   * @param {{userId?: string | number | null, meta?: Record<string, string>}} [details]
   * @throws {TypeError} for an id or meta map presence would refuse
   */
  connected(socketId, { userId, meta } = {}) {
    if (this.#closed) return;
    checkId(socketId, "socketId");
    userId = normalizeUser(userId);
    if (userId !== null) checkId(userId, "userId");
    if (meta !== undefined && meta !== null) checkMeta(meta, "meta");
    const previous = this.#local.get(socketId);
    if (previous) this.#dropUser(previous.userId);
    // connectedAt goes with the connect: a connect that reaches presence late (retried, held up)
    // then loses to a newer connection of the socket on another node instead of displacing it.
    this.#local.set(socketId, { userId, meta: meta && Object.keys(meta).length ? { ...meta } : undefined, connectedAt: nowRFC3339() });
    if (userId !== null) this.#users.set(userId, (this.#users.get(userId) ?? 0) + 1);
    this.#rejected.delete(socketId);
    this.#dirty.add(socketId);
    this.#kick();
  }

  /**
   * The socket is gone. A socket whose connect was never sent costs nothing.
   * @param {string} socketId
   */
  disconnected(socketId) {
    if (this.#closed) return;
    const socket = this.#local.get(socketId);
    if (!socket) return;
    this.#local.delete(socketId);
    this.#dropUser(socket.userId);
    this.#rejected.delete(socketId);
    if (this.#remote.has(socketId)) {
      this.#dirty.add(socketId);
      this.#kick();
    } else {
      this.#dirty.delete(socketId);
    }
  }

  /**
   * Counters and sizes, for tests and monitoring. `pending` is the number of sockets with a change
   * to send (at most the sockets touched: changes are coalesced per socket).
   */
  stats() {
    return {
      nodeId: this.#nodeId,
      incarnation: this.#incarnation,
      registered: this.#registered,
      sockets: this.#local.size,
      users: this.#users.size,
      pending: this.#dirty.size,
      resyncLeft: this.#resync.length - this.#resyncNext,
      inRegistry: this.#remote.size,
      rejected: this.#rejected.size,
      inFlight: this.#busy.size,
      rechecks: this.#recheck.size,
      ...this.#counters,
    };
  }

  /**
   * Whether everything known locally has been sent and answered: nothing pending, no resync,
   * prune or recheck left, no request in flight, and the node registered.
   */
  get settled() {
    return this.#registered && this.#dirty.size === 0 && this.#resyncNext >= this.#resync.length && this.#requests.size === 0 &&
      this.#recheck.size === 0 && !this.#pruneWanted && !this.#pruning;
  }

  // MARK: queries

  /**
   * Is this socket connected right now, and where? `{socketId, alive: false}` when not.
   * @param {string} socketId
   * @throws {PresenceError} 503 when the registry cannot answer (never conclude "gone" from that)
   */
  async socket(socketId) {
    return this.#query("GET", `/v1/sockets/${encodeURIComponent(socketId)}`);
  }

  /**
   * Looks sockets up, one answer per id in order (any number of ids; 1,000 per request).
   * @param {string[]} socketIds
   */
  async lookup(socketIds) {
    const answers = [];
    for (let i = 0; i < socketIds.length; i += MAX_EVENTS) {
      const { sockets } = await this.#query("POST", "/v1/sockets/lookup", { socketIds: socketIds.slice(i, i + MAX_EVENTS) });
      answers.push(...sockets);
    }
    return answers;
  }

  /**
   * A user's live sockets: `{userId, online, sockets}`.
   * @param {string} userId
   */
  async user(userId) {
    return this.#query("GET", `/v1/users/${encodeURIComponent(userId)}`);
  }

  /**
   * The registry's changes as they happen (`GET /v1/changes`, server-sent events), recorded ones
   * first when `since` names a position: `for await (const change of presence.changes({ types:
   * ["user.offline"] })) …`. Each change is `{ id, type, data }`: `id` is its position (pass it as
   * `since` to resume), `type` e.g. `socket.connected`, `user.online`, `node.down`, `data` its JSON
   * fields (`socketId`, `nodeId`, `userId`, `reason`, `at`, …). A dropped connection (network, a 503,
   * presence restarting, a cut-off for reading too slowly) reconnects with backoff from the last
   * position, so nothing is missed or repeated; a position older than the retention throws
   * `PresenceError` with code `position_trimmed`, other refusals (400, 401, 403) throw at once.
   * Breaking out of the loop (or `close()`) ends the request.
   * @param {{types?: string[], userId?: string | string[], nodeId?: string, since?: string}} [filter]
   * @returns {AsyncIterable<{id: string, type: string, data: Record<string, unknown>}>}
   */
  changes({ types, userId, nodeId, since } = {}) {
    const query = new URLSearchParams();
    if (types?.length) query.set("types", types.join(","));
    for (const user of userId === undefined ? [] : [].concat(userId)) query.append("userId", user);
    if (nodeId !== undefined) query.set("nodeId", nodeId);
    const client = this;
    return {
      [Symbol.asyncIterator]() {
        return client.#changeStream(query, since);
      },
    };
  }

  async *#changeStream(query, since) {
    const abort = new AbortController();
    const onClose = () => abort.abort(new Error("closed"));
    this.#abort.signal.addEventListener("abort", onClose);
    let position = since;
    let failures = 0;
    try {
      while (!abort.signal.aborted) {
        const headers = { accept: "text/event-stream" };
        if (this.#readToken) headers.authorization = `Bearer ${this.#readToken}`;
        if (position !== undefined) headers["last-event-id"] = position;
        let response;
        try {
          response = await this.#fetch(`${this.#url}/v1/changes${query.size ? `?${query}` : ""}`, { headers, signal: abort.signal });
        } catch (error) {
          if (abort.signal.aborted) return;
          this.#log("warn", `presence: the change feed is unreachable (${error.message}); trying again`);
          await pause(backoff(failures++, this.#heartbeatMs), abort.signal);
          continue;
        }
        if (response.status !== 200) {
          const text = await response.text().catch(() => "");
          let answer;
          try { answer = JSON.parse(text); } catch {}
          if (retryable(response.status)) {
            await pause(backoff(failures++, this.#heartbeatMs), abort.signal);
            continue;
          }
          throw answerError(response.status, answer);
        }
        failures = 0;
        // Server-sent events: lines; a blank line ends an event; ":" starts a comment.
        const decoder = new TextDecoder();
        let buffer = "";
        let event = { id: undefined, type: "message", data: [] };
        try {
          for await (const chunk of response.body) {
            buffer += decoder.decode(chunk, { stream: true });
            let end;
            while ((end = buffer.indexOf("\n")) >= 0) {
              const line = buffer.slice(0, end).replace(/\r$/, "");
              buffer = buffer.slice(end + 1);
              if (line === "") {
                if (event.data.length > 0) {
                  const data = JSON.parse(event.data.join("\n"));
                  if (event.type === "stream-error") {
                    // Cut off (too slow) or the feed failed: reconnect from the last position.
                    this.#log("warn", `presence: the change feed ended: ${data?.error?.code ?? "error"}; resuming`);
                  } else {
                    if (event.id !== undefined) position = event.id;
                    yield { id: event.id, type: event.type, data };
                  }
                } else if (event.id !== undefined) {
                  // A keep-alive's position (past changes this filter dropped): resume from it.
                  position = event.id;
                }
                event = { id: undefined, type: "message", data: [] };
                continue;
              }
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "id") event.id = value;
              else if (field === "event") event.type = value;
              else if (field === "data") event.data.push(value);
            }
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          this.#log("warn", `presence: the change feed connection broke (${error.message}); resuming`);
        }
        await pause(backoff(failures++, this.#heartbeatMs), abort.signal);
      }
    } finally {
      this.#abort.signal.removeEventListener("abort", onClose);
      abort.abort(new Error("done"));
    }
  }

  // MARK: leaving

  /**
   * Leaves the registry: stops reporting, then `DELETE /v1/nodes/{id}` (retried on 503 and network
   * errors until `closeTimeoutMs`), after which every socket of the node reads dead. Idempotent.
   * @returns {Promise<boolean>} whether the registry confirmed it (204, or 404: already gone)
   */
  close() {
    this.#closing ??= this.#leave();
    return this.#closing;
  }

  async #leave() {
    // Bounded as a whole: waiting for the requests under way counts against closeTimeoutMs too.
    const deadline = performance.now() + this.#closeTimeoutMs;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#recheckTimer);
    for (const [signal, handler] of this.#signalHandlers) {
      process.removeListener(signal, handler);
      OUR_HANDLERS.delete(handler);
    }
    this.#abort.abort();
    try {
      // Aborted, they end at once (a request is raced against its abort, whatever fetch does).
      let timer;
      await Promise.race([
        Promise.allSettled([...this.#requests, this.#heartbeatInFlight, this.#pruning]),
        new Promise((resolve) => (timer = setTimeout(resolve, this.#closeTimeoutMs))),
      ]);
      clearTimeout(timer);
      for (let attempt = 0; ; attempt++) {
        let status;
        const left = deadline - performance.now();
        if (left > 0) {
          try {
            ({ status } = await this.#request("DELETE", this.#nodePath, undefined, this.#writeToken, { timeoutMs: Math.max(1, Math.min(this.#timeoutMs, left)) }));
            if (status === 204 || status === 404) return true;
          } catch (error) {
            status = error.message;
          }
        }
        const pause = backoff(attempt, 1000);
        if (left <= 0 || !(typeof status !== "number" || retryable(status)) || performance.now() + pause > deadline) {
          this.#log("error", `presence: leaving the registry failed (${status ?? "no time left"}); the node's sockets read dead after its TTL`);
          return false;
        }
        await sleep(pause, true); // referenced: a process awaiting close() does not exit in the pause
      }
    } catch (error) {
      this.#log("error", `presence: leaving the registry failed: ${error?.message ?? error}`);
      return false;
    }
  }

  /**
   * Leaves the registry. If the application listens for the signal itself, it decides what
   * happens next (its handler is not cut short); otherwise, once every client that heard the
   * signal has left, the process ends as the signal would have ended it. Heard once: a second
   * signal meanwhile meets the application's listeners or the default action.
   */
  #onSignal(signal) {
    const applicationListens = () => process.rawListeners(signal).some((listener) => !OUR_HANDLERS.has(listener));
    const handled = applicationListens();
    const leaving = this.close(); // removes this handler
    LEAVING.add(leaving);
    leaving.finally(async () => {
      await Promise.allSettled([...LEAVING]);
      LEAVING.delete(leaving);
      if (!handled && !applicationListens() && process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }

  // MARK: heartbeat

  #beatIn(ms) {
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = later(() => {
      this.#heartbeat().catch((error) => this.#log("error", `presence: heartbeat: ${error?.stack ?? error}`));
    }, Math.max(0, ms));
  }

  /**
   * One heartbeat. Heartbeats go at a fixed rate, each an interval after the previous one was
   * *sent*, and none waits longer than an interval for its answer: a request lost on the way can
   * cost one beat, never the node's TTL (which is a few intervals).
   */
  async #heartbeat() {
    if (this.#closed) return;
    const sentAt = performance.now();
    let delay;
    const beat = (async () => {
      const body = { incarnation: this.#incarnation, userCount: this.#users.size };
      if (this.#address !== undefined) body.address = this.#address;
      if (this.#nodeMeta !== undefined) body.meta = this.#nodeMeta;
      const incarnation = this.#incarnation;
      this.#counters.heartbeats++;
      try {
        const { status, body: answer } = await this.#request("PUT", this.#nodePath, body, this.#writeToken,
          { signal: this.#abort.signal, timeoutMs: Math.min(this.#timeoutMs, this.#heartbeatMs) });
        if (status !== 200) throw answerError(status, answer);
        if (typeof answer !== "object" || answer === null) throw new PresenceError("the heartbeat's answer is not JSON", { status });
        const conflict = this.#heartbeatAnswered(answer, sentAt, incarnation);
        // Not registered yet (answered for an older incarnation, or sent before the registry was
        // found to have lost the node): again at once.
        delay = conflict ?? (this.#registered ? this.#heartbeatMs : 0);
      } catch (error) {
        if (this.#closed) return;
        this.#counters.failedRequests++;
        // Any other 4xx refuses this node's id, address or meta: as wrong as a bad token.
        const refused = isRefusal(error);
        this.#heartbeatFailed(error, refused);
        delay = refused ? jittered(this.#heartbeatMs) : backoff(this.#heartbeatFailures++, this.#heartbeatMs);
      }
    })();
    this.#heartbeatInFlight = beat;
    await beat;
    this.#heartbeatInFlight = null;
    // From when this one was sent: one that timed out after an interval is followed at once.
    if (!this.#closed) this.#beatIn(delay - (performance.now() - sentAt));
  }

  /** Returns the delay before the next heartbeat when it must back off (another process under this id). */
  #heartbeatAnswered(answer, sentAt, incarnation) {
    if (incarnation !== this.#incarnation) return; // rotated meanwhile: the next heartbeat registers it
    this.#recovered("heartbeat");
    const conflict = this.#conflict(answer, incarnation);
    this.#heartbeatFailures = 0;
    this.#rotatedThisOutage = false;
    this.#lastBeatSentAt = sentAt;
    const ttl = Date.parse(answer.expiresAt) - Date.parse(answer.lastHeartbeatAt);
    if (ttl > 0) this.#nodeTtlMs = ttl;
    if (this.#configuredHeartbeatMs === undefined && answer.heartbeatIntervalMs > 0) this.#heartbeatMs = answer.heartbeatIntervalMs;
    if (ttl > 0 && this.#heartbeatMs >= ttl && !this.#warnedTtl) {
      this.#warnedTtl = true;
      this.#log("error", `presence: heartbeatMs ${this.#heartbeatMs} is not shorter than the node TTL (${ttl} ms): the node expires between heartbeats; use the server's advice (leave heartbeatMs unset) or a third of the TTL`);
    }
    if (answer.resyncRequired) this.#resyncWanted = true;
    // Sent before an events request found the node gone: a later answer registers it.
    if (sentAt < this.#lostAt) return conflict;
    if (this.#resyncWanted) {
      this.#resyncWanted = false;
      if (this.#everRegistered) {
        this.#log("warn", `presence: the registry lost this node (status ${answer.status}); resending ${this.#local.size} sockets`);
        // What it still holds, or holds again, may include sockets gone since (a lost
        // disconnect, a request applied late): listed and removed once the resync is sent. Not
        // while another process reports under this id: the listing would name its sockets.
        if (this.#conflicts === 0) this.#pruneWanted = true;
      }
      this.#startResync(this.#everRegistered);
    }
    this.#everRegistered = true;
    this.#registered = true;
    // Presence answers: events waiting out a backoff go now (spread over a tenth of an interval,
    // so that a fleet recovering at once does not send at once), not up to an interval later.
    const now = performance.now();
    if (this.#eventsRetryAt > now) this.#eventsRetryAt = now + Math.random() * Math.min(this.#eventsRetryAt - now, this.#heartbeatMs / 10);
    this.#kick();
    return conflict;
  }

  /**
   * `replaced` although this incarnation was registered by the previous answer: another process
   * heartbeats under this node id, and each heartbeat of either takes the registration from the
   * other (every socket of the other reads dead, and it resends them all). Logged as an error;
   * the heartbeat after each such answer waits 1, 2, 4 … up to 16 intervals (jittered), so the
   * two flip at most every few intervals instead of every heartbeat. Returns that delay.
   */
  #conflict(answer, incarnation) {
    const previous = this.#answeredAs;
    this.#answeredAs = incarnation;
    const now = performance.now();
    if (answer.status !== "replaced" || previous !== incarnation) {
      if (this.#conflicts > 0 && now - this.#conflictAt > 32 * this.#heartbeatMs) {
        this.#conflicts = 0;
        this.#recovered("node id");
      }
      return undefined;
    }
    this.#conflicts++;
    this.#conflictAt = now;
    this.#counters.conflicts++;
    if (!this.#failing.has("node id")) {
      this.#failing.add("node id");
      this.#log("error", `presence: another process reports as node ${JSON.stringify(this.#nodeId)} (the registry had another incarnation than this process's registered): node ids must be unique per process; backing off`);
    }
    return this.#heartbeatMs * Math.min(2 ** this.#conflicts, 16) * (0.5 + Math.random() / 2);
  }

  #heartbeatFailed(error, refused) {
    this.#failed("heartbeat", error, refused);
    // Unanswered for longer than the node TTL: the registry holds this incarnation dead. Another
    // incarnation makes whatever it still holds dead for good, so pending disconnects can go and
    // the buffer shrinks to the local truth; the next heartbeat registers it and resyncs.
    if (this.#nodeTtlMs > 0 && !this.#rotatedThisOutage && performance.now() - this.#lastBeatSentAt > this.#nodeTtlMs) {
      this.#rotatedThisOutage = true;
      this.#incarnation = randomUUID();
      this.#counters.incarnations++;
      this.#registered = false;
      for (const id of this.#remote.keys()) if (!this.#busy.has(id)) this.#remote.delete(id);
      for (const id of this.#dirty) if (!this.#local.has(id) && !this.#remote.has(id)) this.#dirty.delete(id);
      this.#log("warn", `presence: no heartbeat answered for longer than the node TTL; registering again as a new incarnation`);
    }
  }

  #startResync(paced) {
    this.#counters.resyncs++;
    this.#resync = [...this.#local.keys()];
    this.#resyncNext = 0;
    // A fleet that learns of a lost registry at once starts spread over a quarter interval.
    this.#resyncNotBefore = paced ? performance.now() + Math.random() * this.#heartbeatMs / 4 : 0;
    this.#resyncPaced = paced;
  }

  // MARK: events

  /**
   * Sends now, or arms the timer for when the next batch is due. A timer already armed for later
   * (a paced resync's next batch, a backoff that a success or a heartbeat has since cut short) is
   * armed again for the earlier time: a change never waits behind it.
   */
  #kick() {
    this.#maybePrune();
    if (this.#closed || this.#requests.size >= this.#maxInFlight || !this.#registered) return;
    const now = performance.now();
    let at;
    if (this.#dirty.size > 0) {
      at = this.#dirty.size >= MAX_EVENTS ? now : now + this.#batchDelayMs;
    } else if (this.#resyncNext < this.#resync.length) {
      at = Math.max(now, this.#resyncNotBefore);
    } else {
      return;
    }
    at = Math.max(at, this.#eventsRetryAt);
    if (this.#flushTimer) {
      if (this.#flushAt <= at) return;
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    if (at <= now) {
      this.#send(); // a timer would cost a millisecond per batch
      return;
    }
    this.#flushAt = at;
    this.#flushTimer = later(() => {
      this.#flushTimer = null;
      // A timer may fire a little before performance.now() reaches `at` (the event loop's clock
      // is cached): a resync batch not yet due is then scheduled again.
      if (!this.#send() && this.#resyncNext < this.#resync.length) this.#kick();
    }, at - now);
  }

  /** Starts the prune when one is wanted, the node registered and the resync's last batch sent. */
  #maybePrune() {
    if (!this.#pruneWanted || this.#pruning || this.#closed || !this.#registered || this.#resyncNext < this.#resync.length) return;
    if (performance.now() < this.#pruneRetryAt) return; // a timer kicks again then
    this.#pruneWanted = false;
    this.#pruning = this.#prune().catch((error) => {
      if (this.#closed) return;
      this.#pruneWanted = true;
      this.#failed("prune", error);
      const delay = isRefusal(error) ? jittered(this.#heartbeatMs) : backoff(this.#pruneFailures++, this.#heartbeatMs);
      this.#pruneRetryAt = performance.now() + delay;
      later(() => this.#kick(), delay);
    }).finally(() => {
      this.#pruning = null;
      this.#kick();
    });
  }

  /**
   * Lists the node's live sockets (`GET /v1/nodes/{id}/sockets`, 1,000 a page) and sends a
   * disconnect for each one this process does not hold: the prune that data-model.md asks of a
   * node after `new`, `revived` or `replaced`. A disconnect removes only this incarnation's record,
   * so a socket that moved to another node is left alone.
   */
  async #prune() {
    let cursor = "0";
    let found = 0;
    do {
      const { status, body } = await this.#request("GET", `${this.#nodePath}/sockets?limit=${MAX_EVENTS}&cursor=${cursor}`, undefined,
        this.#writeToken, { signal: this.#abort.signal });
      if (this.#closed) return;
      // Lost again: the next registration resyncs and prunes again.
      if (status === 404 && body?.error?.code === "node_not_found") return;
      if (status !== 200 || !Array.isArray(body?.sockets)) throw answerError(status, body);
      for (const socket of body.sockets) {
        const id = socket?.socketId;
        if (typeof id !== "string" || this.#local.has(id)) continue;
        if (!this.#remote.has(id)) this.#remote.set(id, typeof socket.userId === "string" ? socket.userId : null);
        this.#dirty.add(id);
        found++;
      }
      this.#kick();
      cursor = body.nextCursor;
    } while (typeof cursor === "string");
    this.#recovered("prune");
    this.#pruneFailures = 0;
    this.#counters.pruned += found;
    if (found > 0) this.#log("warn", `presence: the registry held ${found} sockets for this node that it no longer holds; removing them`);
  }

  /** Takes up to 1,000 events (and under 1 MB): changes first, then resync entries when due. */
  #takeBatch() {
    const parts = [];
    const ids = [];
    const connects = [];
    let bytes = 16;
    const add = (id, socket) => {
      // A user id or meta map the server refused is left out (the socket is reported without it).
      const user = socket ? (socket.userRefused ? null : socket.userId) : this.#remote.get(id);
      let text = socket ? `{"type":"connect","socketId":${JSON.stringify(id)}` : `{"type":"disconnect","socketId":${JSON.stringify(id)}`;
      if (user !== null && user !== UNKNOWN && user !== undefined) text += `,"userId":${JSON.stringify(user)}`;
      if (socket?.meta && !socket.metaRefused) text += `,"meta":${JSON.stringify(socket.meta)}`;
      if (socket?.connectedAt) text += `,"connectedAt":"${socket.connectedAt}"`;
      text += "}";
      // 1,000 events of up to 300 characters stay under the limit even at 3 bytes a character.
      const size = (text.length <= 300 ? text.length * 3 : Buffer.byteLength(text)) + 1;
      if (ids.length > 0 && bytes + size > this.#maxBodyBytes) return false;
      bytes += size;
      parts.push(text);
      ids.push(id);
      connects.push(socket);
      return true;
    };
    for (const id of this.#dirty) {
      if (ids.length >= MAX_EVENTS) break;
      if (this.#busy.has(id)) continue; // after its request answers
      const socket = this.#local.get(id);
      // Refused until it changes, or gone before the registry ever heard of it.
      if (socket ? !this.#rejected.has(id) : this.#remote.has(id)) {
        if (!add(id, socket)) break;
      }
      this.#dirty.delete(id);
    }
    const now = performance.now();
    if (ids.length < MAX_EVENTS && this.#resyncNext < this.#resync.length && now >= this.#resyncNotBefore) {
      const changes = new Set(ids);
      const first = ids.length;
      while (ids.length < MAX_EVENTS && this.#resyncNext < this.#resync.length) {
        const id = this.#resync[this.#resyncNext];
        const socket = this.#local.get(id);
        // Gone, refused, or sent (or to be sent) as a change anyway.
        if (socket && this.#busy.has(id)) this.#dirty.add(id); // again once its request answers
        else if (socket && !this.#rejected.has(id) && !this.#dirty.has(id) && !changes.has(id) && !add(id, socket)) break;
        this.#resyncNext++;
      }
      if (this.#resyncPaced) {
        // Each batch takes its share of half an interval: the whole set is spread over it.
        const share = (ids.length - first) / Math.max(1, this.#resync.length);
        this.#resyncNotBefore = now + (this.#heartbeatMs / 2) * share;
      }
      if (this.#resyncNext >= this.#resync.length) {
        this.#resync = [];
        this.#resyncNext = 0;
      }
    }
    if (ids.length === 0) return null;
    return { ids, connects, body: `{"events":[${parts.join(",")}]}` };
  }

  /** Sends a batch if one can go; returns whether one went. */
  #send() {
    if (this.#closed || this.#requests.size >= this.#maxInFlight || !this.#registered) return false;
    const batch = this.#takeBatch();
    if (!batch) return false;
    for (let i = 0; i < batch.ids.length; i++) {
      this.#busy.add(batch.ids[i]);
      if (batch.connects[i]) this.#remote.set(batch.ids[i], UNKNOWN);
    }
    this.#counters.eventRequests++;
    this.#counters.eventsSent += batch.ids.length;
    const request = this.#post(batch).catch((error) => {
      // A defect here must not become an unhandled rejection (which ends the process): the batch
      // goes again.
      this.#log("error", `presence: events request: ${error?.stack ?? error}`);
      if (!this.#closed) this.#retryLater(batch, error);
    }).finally(() => {
      this.#requests.delete(request);
      for (const id of batch.ids) this.#busy.delete(id);
      this.#kick();
    });
    this.#requests.add(request);
    this.#kick(); // another request, when more may be in flight
    return true;
  }

  async #post(batch) {
    let status;
    let answer;
    try {
      ({ status, body: answer } = await this.#request("POST", `${this.#nodePath}/events`, batch.body, this.#writeToken, { signal: this.#abort.signal }));
    } catch (error) {
      if (this.#closed) return;
      return this.#retryLater(batch, error);
    }
    if (this.#closed) return;
    if (status === 200) {
      if (!Array.isArray(answer?.results)) return this.#retryLater(batch, new PresenceError("the events answer holds no results", { status }));
      this.#accepted(batch, answer.results);
      return;
    }
    const error = answerError(status, answer);
    if (status === 404 && error.code === "node_not_found") {
      // The registry lost the node (Redis restarted, or it was removed): register, then resync.
      this.#redirty(batch);
      this.#registered = false;
      this.#resyncWanted = true;
      this.#lostAt = performance.now();
      this.#eventsRetryAt = this.#lostAt + backoff(this.#eventsFailures++, this.#heartbeatMs);
      if (!this.#heartbeatInFlight) this.#beatIn(0);
      return;
    }
    // Only a 400 naming one of the batch's events refuses that event; any other answer (a token,
    // a URL or a proxy in the way, a body too large for something in between) refuses nothing
    // for good: the batch goes again.
    const index = status === 400 ? /^events\[(\d+)\]/.exec(error.message)?.[1] : undefined;
    if (index !== undefined && Number(index) < batch.ids.length) return this.#refused(batch, error, Number(index));
    if (status === 413) this.#shrink(batch);
    this.#retryLater(batch, error);
  }

  #accepted(batch, results) {
    this.#recovered("events");
    this.#eventsFailures = 0;
    this.#eventsRetryAt = 0;
    this.#counters.eventsAccepted += results.length;
    for (let i = 0; i < batch.ids.length; i++) {
      const id = batch.ids[i];
      // One result per event, in order; an event without its result goes again.
      const result = results[i]?.socketId === id ? results[i].result : undefined;
      if (result === undefined) this.#redirty({ ids: [id] });
      if (batch.connects[i]) {
        if (result === "created" || result === "updated") {
          if (this.#remote.get(id) === UNKNOWN) this.#remote.set(id, batch.connects[i].userRefused ? null : batch.connects[i].userId ?? null);
        } else if (result === "superseded") {
          // A later connection of this socket on another node stands: nothing of ours to remove.
          this.#counters.superseded++;
          this.#remote.delete(id);
        }
      } else if (result === "removed" || result === "not_held") {
        this.#remote.delete(id);
      }
    }
  }

  #retryLater(batch, error) {
    this.#counters.failedRequests++;
    this.#failed("events", error);
    this.#redirty(batch);
    if (maybeApplied(error)) this.#recheckLater(batch.ids);
    // At most a heartbeat interval apart: presence back is noticed within one.
    const delay = isRefusal(error) ? jittered(this.#heartbeatMs) : backoff(this.#eventsFailures++, this.#heartbeatMs);
    this.#eventsRetryAt = performance.now() + delay;
  }

  /**
   * A request that may have been applied without an answer may still be applied after its retry
   * (a server or proxy still working on it): a connect after its retried disconnect leaves a ghost,
   * a disconnect after the socket's reconnect removes it. Once it can no longer arrive (a request
   * timeout and two heartbeat intervals later), each socket's state is sent once more.
   */
  #recheckLater(ids) {
    const due = performance.now() + this.#timeoutMs + 2 * this.#heartbeatMs;
    for (const id of ids) this.#recheck.set(id, due);
    this.#armRecheck();
  }

  #armRecheck() {
    if (this.#recheckTimer || this.#recheck.size === 0 || this.#closed) return;
    let first = Infinity;
    for (const due of this.#recheck.values()) first = Math.min(first, due);
    this.#recheckTimer = later(() => {
      this.#recheckTimer = null;
      const now = performance.now();
      for (const [id, due] of this.#recheck) {
        if (due > now) continue;
        this.#recheck.delete(id);
        // Gone here: its disconnect is sent (again), whatever was last answered for it.
        if (!this.#local.has(id) && !this.#remote.has(id)) this.#remote.set(id, UNKNOWN);
        this.#dirty.add(id);
      }
      this.#armRecheck();
      this.#kick();
    }, Math.max(0, first - performance.now()));
  }

  /** Puts a batch's sockets back; what is sent for them is read from the local truth again. */
  #redirty(batch) {
    for (const id of batch.ids) {
      if (this.#local.has(id) || this.#remote.has(id)) this.#dirty.add(id);
    }
  }

  /**
   * A 400 naming `events[index]` (the server applied none of the batch). A refused user id or
   * meta map is left out from then on, the socket still reported; any other refusal drops that
   * event, and its socket is not sent again until it changes. The others go again at once.
   */
  #refused(batch, error, index) {
    const id = batch.ids[index];
    const sent = batch.connects[index];
    const field = /^events\[\d+\]\.(\w+)/.exec(error.message)?.[1];
    if (field === "userId" || field === "meta") {
      this.#log("error", `presence: socket ${JSON.stringify(id)}: its ${field} was refused, reported without it: ${error.message}`);
      if (sent && this.#local.get(id) === sent) sent[field === "userId" ? "userRefused" : "metaRefused"] = true;
      else if (!sent && field === "userId") this.#remote.set(id, UNKNOWN); // a disconnect, sent without the user
    } else {
      this.#log("error", `presence: socket ${JSON.stringify(id)} refused, not sent again until it changes: ${error.message}`);
      this.#counters.eventsDropped++;
      if (this.#local.has(id)) this.#rejected.add(id);
      // An id the registry refuses it cannot hold; a refused disconnect is not sent again.
      if (field === "socketId" || !sent) this.#remote.delete(id);
    }
    this.#redirty(batch);
  }

  /** A 413: something between here and presence allows smaller bodies; batches shrink to half this one. */
  #shrink(batch) {
    const size = Buffer.byteLength(batch.body);
    const limit = Math.max(MIN_BODY_BYTES, Math.floor(Math.min(this.#maxBodyBytes, size) / 2));
    if (limit < this.#maxBodyBytes) {
      this.#maxBodyBytes = limit;
      this.#log("warn", `presence: a body of ${size} bytes was refused as too large (413); batches are kept under ${limit} bytes from now on`);
    }
  }

  // MARK: plumbing

  #dropUser(userId) {
    if (userId === null) return;
    const count = this.#users.get(userId) - 1;
    if (count > 0) this.#users.set(userId, count);
    else this.#users.delete(userId);
  }

  #failed(what, error, refused = isRefusal(error)) {
    if (this.#failing.has(what)) return;
    this.#failing.add(what);
    if (refused) {
      this.#log("error", `presence: ${what} refused (${error.status}${error.code ? ` ${error.code}` : ""}: ${error.message}): check the configuration (token, URL, node id, address, meta) and any proxy in between; retrying about every heartbeat interval`);
    } else {
      this.#log("warn", `presence: ${what} failed, retrying: ${describe(error)}`);
    }
  }

  #recovered(what) {
    if (this.#failing.delete(what)) this.#log("warn", `presence: ${what} recovered`);
  }

  /** Logs through the configured logger; a logger that throws does not break reporting. */
  #log(level, message) {
    try {
      this.#logger[level]?.(message);
    } catch {}
  }

  async #query(method, path, body) {
    let status;
    let answer;
    try {
      ({ status, body: answer } = await this.#request(method, path, body === undefined ? undefined : JSON.stringify(body), this.#readToken));
    } catch (error) {
      throw new PresenceError(`presence: ${method} ${path} failed: ${error.message}`, { cause: error });
    }
    if (status === 200 && typeof answer === "object" && answer !== null) return answer;
    // A socket that is not alive: 404 with {socketId, alive: false}.
    if (status === 404 && answer?.alive === false && path.startsWith("/v1/sockets/")) return answer;
    if (status === 200) throw new PresenceError(`presence: ${method} ${path}: the answer is not JSON`, { status });
    throw answerError(status, answer);
  }

  /**
   * One exchange, its body read whole within the timeout (an answer whose body stalls cannot hold
   * a request forever), and ended at once by `signal` even when a custom fetch ignores its own.
   * @returns {Promise<{status: number, body: any}>} `body`: the parsed JSON, undefined when none
   */
  async #request(method, path, body, token, { signal, timeoutMs = this.#timeoutMs } = {}) {
    const controller = new AbortController();
    let timer;
    let onAbort;
    const ended = new Promise((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`no answer within ${timeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
      onAbort = () => {
        const error = new Error("closed");
        controller.abort(error);
        reject(error);
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort);
    });
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    const exchange = (async () => {
      const response = await this.#fetch(this.#url + path, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
        signal: controller.signal,
      });
      const text = await response.text();
      let parsed;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {}
      return { status: response.status, body: parsed };
    })();
    exchange.catch(() => {}); // it may lose the race; its rejection is then nobody's
    try {
      return await Promise.race([exchange, ended]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

function describe(error) {
  const cause = error?.cause?.code ?? error?.cause?.message;
  return cause ? `${error.message} (${cause})` : String(error?.message ?? error);
}

/** An error answer as a PresenceError (code and message from its JSON body when it has one). */
function answerError(status, body) {
  const code = typeof body?.error?.code === "string" ? body.error.code : undefined;
  const message = typeof body?.error?.message === "string" ? body.error.message : `HTTP ${status}`;
  return new PresenceError(message, { status, code });
}

/** 408, 429, 5xx: try again later. */
function retryable(status) {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * A 4xx other than 408, 429 and 413: a wrong token, URL, node id, or a proxy in the way. Nothing
 * is dropped for it: retried at the slowest pace (about a heartbeat interval), logged as an error.
 */
function isRefusal(error) {
  return error instanceof PresenceError && error.status >= 400 && error.status < 500 && !retryable(error.status) && error.status !== 413;
}

// Errors of a request that never reached the server.
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);

/** Whether a failed request may have been applied all the same: no answer, or a gateway's 502/504. */
function maybeApplied(error) {
  if (error instanceof PresenceError) return error.status === 502 || error.status === 504;
  return !NOT_SENT.has(error?.cause?.code ?? error?.code);
}

/** Exponential backoff with jitter: a random delay in [½, 1] of min(cap, 100 ms × 2^attempt). */
function backoff(attempt, cap) {
  const ceiling = Math.min(cap, RETRY_BASE_MS * 2 ** Math.min(attempt, 20));
  return ceiling * (0.5 + Math.random() / 2);
}

/**
 * A random delay in [½, 1] of `ms`: nodes refused alike (a token rotated fleet-wide, a proxy
 * misconfigured) and then fixed do not all retry in the same instant.
 */
function jittered(ms) {
  return ms * (0.5 + Math.random() / 2);
}

/** Waits `ms` (the timer referenced: a consumer awaiting changes keeps the process alive), or less when `signal` aborts meanwhile. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

function later(fn, ms) {
  const timer = setTimeout(fn, ms);
  timer.unref?.();
  return timer;
}

/** A pause; `referenced` keeps the process alive meanwhile (close() is work the caller awaits). */
function sleep(ms, referenced = false) {
  return new Promise((resolve) => (referenced ? setTimeout(resolve, ms) : later(resolve, ms)));
}

/** A user id as sent: numbers as strings, none (undefined, null, "") as null. */
function normalizeUser(userId) {
  if (typeof userId === "number" && Number.isFinite(userId)) return String(userId);
  if (userId === undefined || userId === "") return null;
  return userId;
}

function utf8Bytes(text) {
  return Buffer.byteLength(text, "utf8");
}

function checkId(value, field) {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`presence: ${field} must be a non-empty string`);
  if (utf8Bytes(value) > ID_MAX_BYTES) throw new TypeError(`presence: ${field} is longer than ${ID_MAX_BYTES} bytes`);
  if (value.includes("%") || FORBIDDEN.test(value)) throw new TypeError(`presence: ${field} holds a character ids may not hold`);
}

function checkMeta(meta, field) {
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new TypeError(`presence: ${field} must be an object of strings`);
  const entries = Object.entries(meta);
  if (entries.length > META_MAX_ENTRIES) throw new TypeError(`presence: ${field} holds more than ${META_MAX_ENTRIES} entries`);
  for (const [key, value] of entries) {
    if (typeof value !== "string") throw new TypeError(`presence: ${field}.${key} must be a string`);
    if (key.length === 0 || utf8Bytes(key) > META_KEY_MAX_BYTES || FORBIDDEN.test(key)) throw new TypeError(`presence: ${field} key ${JSON.stringify(key)} is not allowed`);
    if (utf8Bytes(value) > META_VALUE_MAX_BYTES || FORBIDDEN.test(value)) throw new TypeError(`presence: ${field}.${key} is not allowed`);
  }
}
