// The client against one live `presence serve` (embedded redis-server) shared by this file's tests;
// each test reports as a node of its own.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, before, test } from "node:test";
import { createPresence, PresenceError } from "../index.js";
import { api, lookupAll, memoryLogger, registryDifference, requestCount, startPresence, waitFor } from "../testing/harness.js";

const HEARTBEAT_S = 0.5;
const NODE_TTL_S = 2;
const HEARTBEAT_MS = HEARTBEAT_S * 1000;
let server;
const open = [];

before(async () => {
  server = await startPresence({ heartbeat: HEARTBEAT_S, nodeTtl: NODE_TTL_S });
});

after(async () => {
  await Promise.all(open.map((presence) => presence.close()));
  await server?.stop();
});

function client(nodeId, options = {}) {
  const logger = memoryLogger();
  const presence = createPresence({ url: server.url, nodeId, address: "127.0.0.1:3000", heartbeatMs: HEARTBEAT_MS, signals: false, logger, ...options });
  open.push(presence);
  return { presence, logger };
}

// Reports settle within a few heartbeats on any machine; a wait past that is a failure.
const settleTimeout = 20 * HEARTBEAT_MS;
const settled = (presence) => waitFor(() => presence.settled, { timeoutMs: settleTimeout, what: "the client to settle" });

test("a burst of 10,000 connects goes out in at most 12 requests, and every socket reads alive", async () => {
  const { presence } = client("burst");
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  const before = await requestCount(server.url, "/v1/nodes/{nodeId}/events", "POST");
  const ids = Array.from({ length: 10_000 }, (_, i) => `burst-${i}`);
  ids.forEach((id, i) => presence.connected(id, { userId: `user-${i % 2500}` }));
  await settled(presence);
  const requests = (await requestCount(server.url, "/v1/nodes/{nodeId}/events", "POST")) - before;
  assert.ok(requests <= 12, `${requests} requests`);
  assert.equal(presence.stats().eventRequests, requests, "the server counted every request the client sent");
  assert.equal(presence.stats().eventsAccepted, 10_000);
  assert.equal(await registryDifference(server.url, "burst", ids), "");
  // The next heartbeats carry the distinct users held.
  assert.equal(presence.stats().users, 2500);
  await waitFor(async () => (await api(server.url, "/v1/nodes/burst")).body.socketCount === 10_000, { timeoutMs: settleTimeout, what: "socketCount" });
  await waitFor(async () => (await api(server.url, "/v1/stats")).body.users.online >= 2500, { timeoutMs: settleTimeout, what: "users.online" });
});

test("batches of large meta maps stay under the server's 1 MiB body limit", async () => {
  // The client would recover from a 413 by shrinking its batches: each body is measured here.
  const sizes = [];
  const fetchMeasuring = (url, init) => {
    if (url.endsWith("/events")) sizes.push(Buffer.byteLength(init.body));
    return fetch(url, init);
  };
  const { presence } = client("large-meta", { fetch: fetchMeasuring });
  // 16 values of 1,024 bytes (half of them two-byte characters): about 16.5 KB of JSON a socket,
  // 3.3 MB for 200 sockets.
  const meta = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "é".repeat(262) + "x".repeat(500)]));
  const ids = Array.from({ length: 200 }, (_, i) => `large-${i}`);
  for (const id of ids) presence.connected(id, { meta });
  await settled(presence);
  assert.equal(presence.stats().eventsDropped, 0);
  assert.equal(presence.stats().failedRequests, 0, "no body was refused");
  assert.ok(sizes.every((size) => size < 1024 * 1024), `bodies of ${Math.max(...sizes)} bytes at most`);
  assert.ok(presence.stats().eventRequests >= 4, `${presence.stats().eventRequests} requests for 3.3 MB`);
  assert.equal(await registryDifference(server.url, "large-meta", ids), "");
  assert.deepEqual((await presence.socket("large-7")).meta, meta);
});

test("changes to one socket coalesce: a disconnect whose connect was never sent sends nothing, the newest state wins", async () => {
  const { presence } = client("coalesce");
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  await settled(presence);
  const sentBefore = presence.stats().eventsSent;
  // Within one tick, before any batch is built.
  presence.connected("short-lived", { userId: "u1" });
  presence.disconnected("short-lived");
  presence.connected("flapping", { userId: "u1" });
  presence.disconnected("flapping");
  presence.connected("flapping", { userId: "u2", meta: { room: "b" } });
  assert.equal(presence.stats().pending, 1);
  await settled(presence);
  assert.equal(presence.stats().eventsSent - sentBefore, 1, "one event for two sockets and five changes");
  const flapping = await presence.socket("flapping");
  assert.equal(flapping.alive, true);
  assert.equal(flapping.userId, "u2");
  assert.deepEqual(flapping.meta, { room: "b" });
  assert.deepEqual(await presence.socket("short-lived"), { socketId: "short-lived", alive: false });

  // The same id again after it was reported: reconnect as another user, then leave.
  presence.connected("flapping", { userId: "u3" });
  await settled(presence);
  assert.equal((await presence.socket("flapping")).userId, "u3");
  assert.deepEqual((await presence.user("u2")).sockets, []);
  presence.disconnected("flapping");
  await settled(presence);
  assert.equal((await presence.socket("flapping")).alive, false);
  assert.equal(presence.stats().inRegistry, 0, "nothing left that the registry may hold");
});

test("an event the server refuses is dropped alone and the queue goes on", async () => {
  const { presence, logger } = client("refused");
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  // U+0378 is unassigned: the client leaves that rule to the server, which refuses the event (400).
  presence.connected("good-1", { userId: "u" });
  presence.connected("bad-\u0378", { userId: "u" });
  presence.connected("good-2", { userId: "u" });
  await settled(presence);
  assert.equal(presence.stats().eventsDropped, 1);
  assert.equal(presence.stats().rejected, 1);
  assert.match(logger.lines.join("\n"), /refused.*events\[1\]\.socketId/);
  assert.equal(await registryDifference(server.url, "refused", ["good-1", "good-2"]), "");
  // Later changes still flow, and the refused socket is not sent again with them.
  presence.connected("good-3");
  presence.disconnected("good-1");
  await settled(presence);
  assert.equal(presence.stats().eventsDropped, 1);
  assert.equal(await registryDifference(server.url, "refused", ["good-2", "good-3"], ["good-1"]), "");
  // Its disconnect costs nothing: the registry never had it.
  presence.disconnected("bad-\u0378");
  assert.equal(presence.stats().pending, 0);
  assert.equal(presence.stats().rejected, 0);
});

test("a user id or meta map the server refuses: the socket is still reported, without it", async () => {
  const { presence, logger } = client("refused-fields");
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  // U+0378 is unassigned: the client leaves that rule to the server, which refuses the event (400).
  presence.connected("bad-user", { userId: "user-\u0378", meta: { room: "a" } });
  presence.connected("bad-meta", { userId: "u", meta: { room: "x\u0378" } });
  presence.connected("fine", { userId: "u" });
  await settled(presence);
  const badUser = await presence.socket("bad-user");
  assert.equal(badUser.alive, true);
  assert.equal(badUser.userId, null);
  assert.deepEqual(badUser.meta, { room: "a" });
  const badMeta = await presence.socket("bad-meta");
  assert.equal(badMeta.alive, true);
  assert.equal(badMeta.userId, "u");
  assert.deepEqual(badMeta.meta, {});
  assert.equal(presence.stats().eventsDropped, 0);
  assert.match(logger.lines.join("\n"), /error: presence: socket "bad-user": its userId was refused/);
  assert.match(logger.lines.join("\n"), /error: presence: socket "bad-meta": its meta was refused/);
  presence.disconnected("bad-user");
  presence.disconnected("bad-meta");
  await settled(presence);
  assert.equal(await registryDifference(server.url, "refused-fields", ["fine"], ["bad-user", "bad-meta"]), "");
});

test("only a 400 naming an event drops anything: a proxy's 404, 403 and 413 are retried until the reports land", async () => {
  const limit = 8000; // the proxy's body limit
  const refusals = [404, 403]; // its answers to the first events requests (a route it does not know, a rule)
  let largest = 0;
  let tooLarge = 0;
  const fetchThroughProxy = async (url, init) => {
    if (url.endsWith("/events")) {
      if (refusals.length) return new Response("<html>refused</html>", { status: refusals.shift(), headers: { "content-type": "text/html" } });
      const size = Buffer.byteLength(init.body);
      if (size > limit) {
        tooLarge++;
        return new Response("<html>too large</html>", { status: 413, headers: { "content-type": "text/html" } });
      }
      largest = Math.max(largest, size);
    }
    return fetch(url, init);
  };
  const { presence, logger } = client("proxied", { fetch: fetchThroughProxy });
  const ids = Array.from({ length: 300 }, (_, i) => `proxied-${i}`);
  ids.forEach((id, i) => presence.connected(id, { userId: `user-${i}`, meta: { room: "r".repeat(50) } }));
  await settled(presence);
  assert.deepEqual(refusals, [], "both refusals were served");
  assert.ok(tooLarge >= 1, "a batch over the proxy's limit was refused");
  assert.ok(largest <= limit, `a body of ${largest} bytes went through`);
  assert.equal(presence.stats().eventsDropped, 0);
  assert.equal(await registryDifference(server.url, "proxied", ids), "");
  assert.match(logger.lines.join("\n"), /error: presence: events refused \(404: HTTP 404\): check the configuration/);
});

test("a resync while a batch is in flight sends that batch's sockets again", async () => {
  // The server applies the batch; its answer is held back while the registry loses the node and
  // the next heartbeat asks for every socket.
  let hold = null;
  const holding = [];
  const fetchThrough = async (url, init) => {
    const response = await fetch(url, init);
    if (hold && url.endsWith("/events")) {
      holding.push(true);
      await hold;
    }
    return response;
  };
  const { presence } = client("inflight", { fetch: fetchThrough });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  let release;
  hold = new Promise((r) => (release = r));
  const ids = Array.from({ length: 300 }, (_, i) => `inflight-${i}`);
  for (const id of ids) presence.connected(id);
  await waitFor(() => holding.length === 1, { timeoutMs: settleTimeout, what: "the batch to be applied" });
  assert.equal(await registryDifference(server.url, "inflight", ids), "", "applied, answer not yet read");
  assert.equal((await api(server.url, "/v1/nodes/inflight", { method: "DELETE" })).status, 204);
  await waitFor(() => presence.stats().resyncs === 2, { timeoutMs: settleTimeout, what: "the heartbeat to ask for a resync" });
  hold = null;
  release();
  await settled(presence);
  assert.equal(await registryDifference(server.url, "inflight", ids), "");
});

/**
 * A fetch that holds the first events request before it reaches the server until `held.release()`
 * (`held` is null until that request came); with `releaseOnNext`, the next events answer releases it.
 */
function holdingFirstEvents({ releaseOnNext = false } = {}) {
  const state = { held: null };
  state.fetch = async (url, init) => {
    if (url.endsWith("/events") && state.held === null) {
      let release;
      state.held = new Promise((r) => (release = r));
      state.held.release = release;
      await state.held;
      return fetch(url, init);
    }
    const response = await fetch(url, init);
    if (releaseOnNext && url.endsWith("/events")) state.held?.release();
    return response;
  };
  return state;
}

test("with two requests in flight, a socket's events still apply in order", async () => {
  // The first events request is held before it reaches the server until the second has been
  // answered: the server applies them in the reverse order.
  const hold = holdingFirstEvents({ releaseOnNext: true });
  const { presence } = client("reorder", { fetch: hold.fetch, maxInFlight: 2 });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  const first = Array.from({ length: 500 }, (_, i) => `first-${i}`);
  const second = Array.from({ length: 500 }, (_, i) => `second-${i}`);
  for (const id of first) presence.connected(id);
  await waitFor(() => hold.held !== null, { timeoutMs: settleTimeout, what: "the first request" });
  // Their disconnects must wait for the held connects: the second request carries only the others.
  for (const id of first) presence.disconnected(id);
  for (const id of second) presence.connected(id);
  await settled(presence);
  assert.equal(await registryDifference(server.url, "reorder", second, first), "");
  assert.ok(presence.stats().eventRequests >= 3, "connects, the others, then the disconnects");
});

test("a connect held up on its way past the socket's move to another node is superseded and displaces nothing", async () => {
  // The old node's connect is held before it reaches the server until the new node's has landed.
  const hold = holdingFirstEvents();
  const old = client("mover-old", { fetch: hold.fetch }).presence;
  const moved = client("mover-new").presence;
  await waitFor(() => old.stats().registered && moved.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  old.connected("mover", { userId: "u" });
  await waitFor(() => hold.held !== null, { timeoutMs: settleTimeout, what: "the old node's connect held" });
  moved.connected("mover", { userId: "u" });
  await settled(moved);
  hold.held.release();
  await settled(old);
  assert.equal((await api(server.url, "/v1/sockets/mover")).body.nodeId, "mover-new");
  old.disconnected("mover");
  await settled(old);
  assert.equal((await api(server.url, "/v1/sockets/mover")).body.nodeId, "mover-new", "the old node's disconnect removed nothing");
});

test("an answer whose body stalls counts as no answer: the batch goes again once the timeout passes", async () => {
  let stalled = 0;
  const fetchStalling = async (url, init) => {
    const response = await fetch(url, init);
    if (url.endsWith("/events") && stalled === 0) {
      stalled++;
      await response.body?.cancel();
      // The headers, then a body that never ends and ignores the abort.
      return new Response(new ReadableStream({ start() {} }), { status: 200, headers: { "content-type": "application/json" } });
    }
    return response;
  };
  const timeoutMs = 300;
  const { presence } = client("stalled-body", { fetch: fetchStalling, timeoutMs });
  const ids = Array.from({ length: 20 }, (_, i) => `stalled-${i}`);
  for (const id of ids) presence.connected(id);
  await settled(presence);
  assert.equal(stalled, 1, "one answer stalled");
  assert.ok(presence.stats().failedRequests >= 1, "the stalled answer counted as a failed request");
  assert.equal(await registryDifference(server.url, "stalled-body", ids), "");
});

test("close() returns within closeTimeoutMs even when no request ever ends", async () => {
  let blackhole = false;
  // A fetch that never settles and ignores its abort signal once `blackhole` is set.
  const fetchBlackholing = (url, init) => (blackhole ? new Promise(() => {}) : fetch(url, init));
  const closeTimeoutMs = 500;
  const { presence } = client("blackholed", { fetch: fetchBlackholing, closeTimeoutMs });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  blackhole = true;
  presence.connected("blackholed-1");
  await waitFor(() => presence.stats().inFlight === 1, { timeoutMs: settleTimeout, what: "an events request under way" });
  const started = performance.now();
  let hung;
  const outcome = await Promise.race([presence.close(), new Promise((r) => (hung = setTimeout(() => r("hung"), closeTimeoutMs + 10 * HEARTBEAT_MS)))]);
  clearTimeout(hung);
  const elapsed = performance.now() - started;
  assert.equal(outcome, false, "close() resolved, unconfirmed");
  assert.ok(elapsed < closeTimeoutMs + HEARTBEAT_MS, `close() took ${elapsed.toFixed(0)} ms`);
});

test("an events answer the client cannot read is retried, never an unhandled rejection; an event without a result goes again", async (t) => {
  const rejections = [];
  const onRejection = (reason) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  t.after(() => process.off("unhandledRejection", onRejection));
  const odd = ["{}", "<html>proxy</html>"];
  let served = 0;
  let shortened = false;
  const fetchOdd = async (url, init) => {
    if (url.endsWith("/events") && !shortened) {
      // First an answer with a result fewer than the events sent: the last event was not applied.
      shortened = true;
      const events = JSON.parse(init.body).events;
      return fetch(url, { ...init, body: JSON.stringify({ events: events.slice(0, -1) }) });
    }
    const response = await fetch(url, init);
    if (url.endsWith("/events") && served < odd.length) {
      // Then answers it cannot read (the request applied all the same).
      await response.body?.cancel();
      return new Response(odd[served++], { status: 200 });
    }
    return response;
  };
  const { presence } = client("odd-answers", { fetch: fetchOdd });
  const ids = Array.from({ length: 20 }, (_, i) => `odd-${i}`);
  for (const id of ids) presence.connected(id, { userId: "u" });
  await settled(presence);
  assert.equal(served, odd.length, "both odd answers were served");
  assert.ok(shortened, "a shortened answer was served"); console.error("STATS", JSON.stringify(presence.stats()));
  assert.deepEqual(rejections, []);
  assert.equal(presence.stats().eventsDropped, 0);
  assert.equal(await registryDifference(server.url, "odd-answers", ids), "");
});

test("a heartbeat that never gets an answer costs one beat, not the node: the next goes an interval after it was sent", async () => {
  // The server's node TTL is 4 heartbeats; the client's request timeout (default 10 s) is longer.
  let blackholeNext = false;
  const beats = []; // {sentAt, status}
  const fetchLosingOne = async (url, init) => {
    if (init.method !== "PUT") return fetch(url, init);
    const beat = { sentAt: performance.now(), status: undefined };
    beats.push(beat);
    if (blackholeNext) {
      blackholeNext = false;
      beat.status = "lost";
      return new Promise(() => {}); // no answer ever, whatever the abort signal says
    }
    const response = await fetch(url, init);
    const text = await response.text();
    beat.status = JSON.parse(text).status;
    return new Response(text, { status: response.status, headers: response.headers });
  };
  const { presence } = client("lost-beat", { fetch: fetchLosingOne });
  presence.connected("lost-beat-1");
  await settled(presence);
  blackholeNext = true;
  await waitFor(() => beats.some((b) => b.status === "lost"), { timeoutMs: settleTimeout, what: "a heartbeat to be lost" });
  const lost = beats.findIndex((b) => b.status === "lost");
  await waitFor(() => beats[lost + 1]?.status, { timeoutMs: settleTimeout, what: "the heartbeat after the lost one to be answered" });
  const gap = beats[lost + 1].sentAt - beats[lost].sentAt;
  assert.equal(beats[lost + 1].status, "ok", `the node expired meanwhile (the next heartbeat went ${gap.toFixed(0)} ms after the lost one)`);
  assert.ok(gap < 2 * HEARTBEAT_MS, `the next heartbeat went ${gap.toFixed(0)} ms after the lost one`);
  assert.equal(presence.stats().resyncs, 1, "no resync: the registry never lost the node");
  assert.equal(presence.stats().incarnations, 1);
});

test("a heartbeat interval not shorter than the node TTL is logged as an error", async () => {
  const { presence, logger } = client("slow-beat", { heartbeatMs: NODE_TTL_S * 1000 + 500 });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  assert.match(logger.lines.join("\n"), /error: presence: heartbeatMs 2500 is not shorter than the node TTL \(2000 ms\)/);
});

test("a change made while a paced resync waits to start goes out at once, not behind it", async (t) => {
  // The heartbeat answer after `forceResync` is set asks for a resync, as after Redis lost its state.
  let forceResync = false;
  const bodies = [];
  const sentAt = [];
  const fetchForcing = async (url, init) => {
    if (url.endsWith("/events")) {
      bodies.push(JSON.parse(init.body).events.map((event) => event.socketId));
      sentAt.push(performance.now());
    }
    const response = await fetch(url, init);
    if (init.method !== "PUT" || !forceResync) return response;
    forceResync = false;
    const answer = { ...(await response.json()), status: "new", resyncRequired: true };
    return new Response(JSON.stringify(answer), { status: 200, headers: { "content-type": "application/json" } });
  };
  const random = Math.random;
  Math.random = () => 0.999; // the resync's random delay at its longest: a quarter interval
  t.after(() => (Math.random = random));
  const heartbeatMs = 1200;
  const { presence } = client("resync-first", { fetch: fetchForcing, heartbeatMs });
  const ids = Array.from({ length: 200 }, (_, i) => `resync-first-${i}`);
  for (const id of ids) presence.connected(id);
  await settled(presence);
  forceResync = true;
  await waitFor(() => presence.stats().resyncs === 2, { timeoutMs: settleTimeout, intervalMs: 5, what: "the forced resync" });
  const sent = bodies.length;
  assert.equal(presence.stats().resyncLeft, ids.length, "the resync waits out its delay (a quarter interval)");
  const changedAt = performance.now();
  presence.connected("urgent");
  await settled(presence);
  assert.deepEqual(bodies[sent], ["urgent"], "the change went alone, before the resync's first batch");
  // The resync waits 300 ms (a quarter of 1,200); the change waits for the batch delay (10 ms).
  const waited = sentAt[sent] - changedAt;
  assert.ok(waited < heartbeatMs / 6, `the change waited ${waited.toFixed(0)} ms`);
  assert.deepEqual(new Set(bodies.slice(sent + 1).flat()), new Set(ids), "then the resync");
});

test("events waiting out a backoff go as soon as a heartbeat is answered again", async () => {
  const heartbeatMs = 1200;
  const unavailable = () => new Response(JSON.stringify({ error: { code: "redis_unavailable", message: "test" } }), { status: 503, headers: { "content-type": "application/json" } });
  let failures = 0;
  let held = null; // the last failing events request, answered just before a heartbeat's answer
  let recoveredAt = 0;
  let deliveredAt = 0;
  let presence;
  const fetchRecovering = async (url, init) => {
    if (url.endsWith("/events")) {
      failures++;
      if (failures < 5) return unavailable(); // the backoff grows to its cap, an interval
      if (failures === 5) {
        await new Promise((resolve) => (held = resolve));
        return unavailable();
      }
      const response = await fetch(url, init);
      if (response.status === 200 && !deliveredAt) deliveredAt = performance.now();
      return response;
    }
    if (init.method === "PUT" && held) {
      const response = await fetch(url, init);
      const failed = presence.stats().failedRequests;
      const release = held;
      held = null;
      release();
      await waitFor(() => presence.stats().failedRequests > failed, { timeoutMs: settleTimeout, intervalMs: 1, what: "the last events failure" });
      recoveredAt = performance.now();
      return response;
    }
    return fetch(url, init);
  };
  ({ presence } = client("recovering", { fetch: fetchRecovering, heartbeatMs }));
  presence.connected("recovering-1");
  await settled(presence);
  assert.ok(recoveredAt > 0 && deliveredAt > recoveredAt);
  // The backoff after the fifth failure alone would be half an interval to an interval.
  assert.ok(deliveredAt - recoveredAt < heartbeatMs * 0.4, `delivered ${(deliveredAt - recoveredAt).toFixed(0)} ms after the heartbeat's answer`);
  assert.equal(await registryDifference(server.url, "recovering", ["recovering-1"]), "");
});

test("a batch applied but unanswered (a 502) is sent again later: a connect that overtook its retried disconnect leaves no ghost", async () => {
  // A gateway answers 502 for the first events request and hands it to presence only after a
  // later request carrying the socket's disconnect has been answered.
  let stray = null;
  let strayResult = null;
  const fetchThroughGateway = async (url, init) => {
    if (!url.endsWith("/events")) return fetch(url, init);
    if (!stray) {
      stray = init;
      return new Response("<html>bad gateway</html>", { status: 502, headers: { "content-type": "text/html" } });
    }
    const response = await fetch(url, init);
    if (strayResult === null && init.body.includes('"disconnect"')) {
      const late = await fetch(url, stray);
      strayResult = (await late.json()).results[0].result;
    }
    return response;
  };
  const timeoutMs = 500;
  const { presence } = client("stray", { fetch: fetchThroughGateway, timeoutMs });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  presence.connected("stray-1", { userId: "u" });
  await waitFor(() => presence.stats().failedRequests >= 1, { timeoutMs: settleTimeout, intervalMs: 1, what: "the 502" });
  presence.disconnected("stray-1");
  await waitFor(() => strayResult !== null, { timeoutMs: settleTimeout, what: "the stray request to be applied" });
  assert.equal(strayResult, "created", "the first request was applied after the disconnect");
  assert.equal((await presence.socket("stray-1")).alive, true, "a ghost, for now");
  assert.equal(presence.stats().rechecks, 1);
  // The recheck is due a request timeout and two intervals after the 502.
  await waitFor(() => presence.settled, { timeoutMs: settleTimeout + timeoutMs + 2 * HEARTBEAT_MS, what: "the recheck" });
  assert.equal((await presence.socket("stray-1")).alive, false);
  assert.equal(presence.stats().inRegistry, 0);
});

test("two processes under one node id: an error is logged and their heartbeats back off instead of flipping the node every beat", async () => {
  const heartbeatMs = 100;
  const { presence: first, logger } = client("twin", { heartbeatMs });
  const { presence: second } = client("twin", { heartbeatMs });
  first.connected("twin-a");
  second.connected("twin-b");
  await waitFor(() => first.stats().conflicts >= 1, { timeoutMs: settleTimeout, intervalMs: 5, what: "a conflict" });
  const started = performance.now();
  const resyncs = first.stats().resyncs;
  await waitFor(() => first.stats().conflicts >= 4, { timeoutMs: 60 * heartbeatMs, intervalMs: 5, what: "three more conflicts" });
  // After conflicts 1 to 3 the next heartbeat waits at least 1, 2 and 4 intervals (every one, without the backoff).
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 6 * heartbeatMs, `three more conflicts in ${elapsed.toFixed(0)} ms`);
  assert.ok(first.stats().resyncs - resyncs <= 3 + 1, "a resync per conflict, no more");
  assert.match(logger.lines.join("\n"), /error: presence: another process reports as node "twin".*node ids must be unique/);
});

test("the node's meta map is copied: changing the caller's object later changes nothing sent", async () => {
  const meta = { zone: "a" };
  const { presence } = client("meta-copy", { meta, heartbeatMs: 100 });
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  meta.zone = "changed\u0000"; // a value presence refuses
  meta.extra = "x";
  const beats = presence.stats().heartbeats;
  await waitFor(() => presence.stats().heartbeats >= beats + 2, { timeoutMs: settleTimeout, what: "two more heartbeats" });
  assert.equal(presence.stats().failedRequests, 0);
  assert.deepEqual((await api(server.url, "/v1/nodes/meta-copy")).body.meta, { zone: "a" });
});

test("options that would break the timers throw at once", () => {
  const base = { url: server.url, nodeId: "options", signals: false, logger: null };
  for (const bad of [{ timeoutMs: "1000" }, { timeoutMs: 0 }, { batchDelayMs: NaN }, { closeTimeoutMs: -1 }, { heartbeatMs: Infinity }, { maxInFlight: 0 }]) {
    assert.throws(() => createPresence({ ...base, ...bad }), TypeError, JSON.stringify(bad));
  }
});

test("ids presence would refuse throw at once", () => {
  const { presence } = client("invalid");
  assert.throws(() => presence.connected("has%percent"), TypeError);
  assert.throws(() => presence.connected("x".repeat(257)), TypeError);
  assert.throws(() => presence.connected("ok", { userId: "line\nbreak" }), TypeError);
  assert.throws(() => presence.connected("ok", { meta: { k: 1 } }), TypeError);
  assert.equal(presence.stats().sockets, 0);
});

// An object with Socket.IO's server interface: `on("connection")`, sockets with `id`, `data` and
// `on("disconnect")`, and the main namespace's `sockets` Map (Socket.IO 4), built on EventEmitter.
class FakeSocket extends EventEmitter {
  constructor(id, data) {
    super();
    this.id = id;
    this.data = data;
  }
}
class FakeServer extends EventEmitter {
  sockets = { sockets: new Map() };
  connect(id, data = {}) {
    const socket = new FakeSocket(id, data);
    this.sockets.sockets.set(id, socket);
    this.emit("connection", socket);
    return socket;
  }
  disconnect(socket) {
    this.sockets.sockets.delete(socket.id);
    socket.emit("disconnect", "client namespace disconnect");
  }
}

test("attach(io) reports a Socket.IO server's connections and disconnects", async () => {
  const io = new FakeServer();
  const early = io.connect("io-early", { userId: "alice" }); // connected before attach
  const { presence } = client("socketio");
  presence.attach(io);
  const sockets = Array.from({ length: 50 }, (_, i) => io.connect(`io-${i}`, { userId: i % 2 ? "alice" : "bob" }));
  await settled(presence);
  assert.equal(await registryDifference(server.url, "socketio", ["io-early", ...sockets.map((s) => s.id)]), "");
  assert.equal((await presence.user("alice")).sockets.length, 26);
  for (const socket of sockets.slice(0, 25)) io.disconnect(socket);
  io.disconnect(early);
  await settled(presence);
  assert.equal(await registryDifference(server.url, "socketio", sockets.slice(25).map((s) => s.id), ["io-early", ...sockets.slice(0, 25).map((s) => s.id)]), "");
  assert.equal(presence.stats().users, 2);

  // A userId(socket) option instead of socket.data.userId.
  const other = new FakeServer();
  const { presence: custom } = client("socketio-custom");
  custom.attach(other, { userId: (socket) => socket.data.account?.id, meta: (socket) => ({ room: socket.data.room }) });
  other.connect("custom-1", { account: { id: 42 }, room: "lobby" });
  await settled(custom);
  const answer = await custom.socket("custom-1");
  assert.equal(answer.userId, "42");
  assert.deepEqual(answer.meta, { room: "lobby" });
});

test("attach(io): a user id that is awaited, refused or throws never loses the socket, and one gone meanwhile is not reported", async () => {
  const io = new FakeServer();
  const { presence, logger } = client("socketio-async");
  const pending = new Map();
  presence.attach(io, {
    userId: (socket) => {
      if (socket.data.mode === "async") return new Promise((resolve) => pending.set(socket.id, resolve));
      if (socket.data.mode === "throws") throw new Error("no session");
      return socket.data.user;
    },
    meta: (socket) => socket.data.meta,
  });
  io.connect("async-stays", { mode: "async" });
  const leaves = io.connect("async-leaves", { mode: "async" });
  io.connect("bad-user", { user: "line\nbreak", meta: { room: "a" } });
  io.connect("bad-meta", { user: "carol", meta: { room: 7 } });
  io.connect("throws", { mode: "throws" });
  io.disconnect(leaves); // before its user id is known
  pending.get("async-leaves")("bob");
  pending.get("async-stays")("alice");
  await new Promise((r) => setImmediate(r)); // the user ids' continuations
  await settled(presence);
  const expected = ["async-stays", "bad-user", "bad-meta", "throws"];
  assert.equal(await registryDifference(server.url, "socketio-async", expected, ["async-leaves"]), "");
  assert.equal(presence.stats().sockets, expected.length);
  assert.equal((await presence.socket("async-stays")).userId, "alice");
  assert.equal((await presence.socket("bad-user")).userId, null);
  assert.deepEqual((await presence.socket("bad-user")).meta, { room: "a" });
  assert.equal((await presence.socket("bad-meta")).userId, "carol");
  assert.equal((await presence.socket("throws")).userId, null);
  const log = logger.lines.join("\n");
  assert.match(log, /error: presence: socket bad-user: .*userId.*reported without a user/);
  assert.match(log, /error: presence: socket bad-meta: .*reported without meta/);
  assert.match(log, /error: presence: userId\(socket\) threw for socket throws: no session/);
});

test("changes(): a user's changes in order, a resume from a position replays exactly what followed, then live ones", async () => {
  const { presence } = client("feed");
  await waitFor(() => presence.stats().registered, { timeoutMs: settleTimeout, what: "registration" });
  presence.connected("feed-a", { userId: "feed-user" });
  await settled(presence);
  presence.disconnected("feed-a");
  await settled(presence);
  const take = async (iterator, count) => {
    const changes = [];
    while (changes.length < count) {
      const { value, done } = await iterator.next();
      assert.ok(!done, "the feed ended early");
      changes.push(value);
    }
    return changes;
  };
  // since "": from the start of the stream (this file's server is shared; the filter keeps this user's).
  const all = presence.changes({ userId: "feed-user", since: "" })[Symbol.asyncIterator]();
  const history = await take(all, 4);
  await all.return();
  assert.deepEqual(history.map((c) => c.type), ["socket.connected", "user.online", "socket.disconnected", "user.offline"]);
  assert.deepEqual(history.map((c) => c.data.userId), ["feed-user", "feed-user", "feed-user", "feed-user"]);
  assert.equal(history[0].data.socketId, "feed-a");
  assert.equal(history[2].data.reason, "disconnected");
  // Resuming after user.online replays the last two, with the same ids, then goes on live.
  const resumed = presence.changes({ userId: "feed-user", since: history[1].id })[Symbol.asyncIterator]();
  const replay = await take(resumed, 2);
  assert.deepEqual(replay.map((c) => c.id), history.slice(2).map((c) => c.id));
  presence.connected("feed-b", { userId: "feed-user" });
  const live = await take(resumed, 2);
  await resumed.return();
  assert.deepEqual(live.map((c) => [c.type, c.data.socketId]), [["socket.connected", "feed-b"], ["user.online", undefined]]);
});

test("changes(): a position older than the retention throws position_trimmed; a malformed one is refused", async () => {
  const { presence } = client("feed-errors");
  const first = async (filter) => presence.changes(filter)[Symbol.asyncIterator]().next();
  await assert.rejects(first({ since: "0=1-0" }), (error) => error instanceof PresenceError && error.code === "position_trimmed");
  await assert.rejects(first({ since: "nonsense" }), (error) => error instanceof PresenceError && error.status === 400);
});

test("queries: socket, lookup (any number of ids) and user", async () => {
  const { presence } = client("queries");
  const ids = Array.from({ length: 1500 }, (_, i) => `q-${i}`);
  for (const id of ids) presence.connected(id, { userId: "quinn" });
  await settled(presence);
  const answers = await presence.lookup([...ids, "q-unknown"]);
  assert.equal(answers.length, 1501);
  assert.ok(answers.slice(0, 1500).every((a, i) => a.alive && a.socketId === ids[i] && a.nodeId === "queries"));
  assert.deepEqual(answers[1500], { socketId: "q-unknown", alive: false });
  const user = await presence.user("quinn");
  assert.equal(user.online, true);
  assert.equal(user.sockets.length, 1500);
  assert.equal((await presence.socket("q-7")).nodeAddress, "127.0.0.1:3000");
  await assert.rejects(presence.socket("%bad"), (error) => error instanceof PresenceError && error.status === 400);
});

test("close() leaves the registry: the node is gone and its sockets read dead at once", async () => {
  const { presence } = client("leaving");
  const ids = Array.from({ length: 200 }, (_, i) => `leave-${i}`);
  for (const id of ids) presence.connected(id, { userId: "u" });
  await settled(presence);
  assert.equal((await api(server.url, "/v1/nodes/leaving")).status, 200);
  assert.equal(await presence.close(), true);
  assert.equal((await api(server.url, "/v1/nodes/leaving")).status, 404);
  const answers = await lookupAll(server.url, ids);
  assert.ok([...answers.values()].every((a) => !a.alive), "every socket dead right after close()");
  // Nothing more is sent after leaving.
  const requests = presence.stats().eventRequests + presence.stats().heartbeats;
  presence.connected("after-close");
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
  assert.equal(presence.stats().eventRequests + presence.stats().heartbeats, requests);
  assert.equal((await api(server.url, "/v1/nodes/leaving")).status, 404);
});
