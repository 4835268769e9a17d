// The client through failures of real processes: Redis restarted empty, `presence serve` down for
// 5 s, the node's process SIGKILLed. Each test runs its own servers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createPresence } from "../index.js";
import { api, lookupAll, memoryLogger, redisCommand, registryDifference, spawnChildNode, startPresence, startRedis, waitFor } from "../testing/harness.js";

function client(url, nodeId, heartbeatMs) {
  const logger = memoryLogger();
  const presence = createPresence({ url, nodeId, address: "127.0.0.1:3000", heartbeatMs, signals: false, logger });
  return { presence, logger };
}

/** Connects `count` sockets and waits until all are answered; returns how long that took (ms). */
async function fill(presence, prefix, count, timeoutMs) {
  const started = performance.now();
  for (let i = 0; i < count; i++) presence.connected(`${prefix}-${i}`, { userId: `user-${i % 100}` });
  await waitFor(() => presence.settled, { timeoutMs, what: `${count} sockets to be written` });
  return performance.now() - started;
}

test("Redis restarted empty: resyncRequired is honoured and the registry is complete within two heartbeats and one write of the set", async (t) => {
  const heartbeatMs = 500;
  const redis = await startRedis();
  const server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: 3 });
  const { presence, logger } = client(server.url, "restart", heartbeatMs);
  let second;
  t.after(async () => {
    await presence.close();
    await server.stop();
    await Promise.all([redis.stop(), second?.stop()]);
  });
  const local = new Set();
  const connect = (id) => (presence.connected(id, { userId: `user-${id.length}` }), local.add(id));
  const disconnect = (id) => (presence.disconnected(id), local.delete(id));
  // Writing the whole set once, measured here, is the slack on the bound (a loaded machine writes slower).
  const writeMs = await fill(presence, "r", 3000, 60_000);
  for (let i = 0; i < 3000; i++) local.add(`r-${i}`);
  assert.equal(presence.stats().resyncs, 1, "the first registration asked for every socket");

  await redis.stop("SIGKILL");
  // Changes while Redis is away: they fail with 503 and are retried, newer changes to the same
  // sockets arriving meanwhile.
  for (let i = 0; i < 100; i++) connect(`during-${i}`);
  for (let i = 0; i < 100; i++) disconnect(`r-${i}`);
  const failed = presence.stats().failedRequests;
  await waitFor(() => presence.stats().failedRequests > failed, { timeoutMs: 10_000, what: "a failed request" });
  for (let i = 0; i < 50; i++) disconnect(`during-${i}`); // connected, maybe sent, now gone
  for (let i = 0; i < 50; i++) connect(`r-${i}`); // gone, now back
  connect("during-0"); // back again
  assert.ok(presence.stats().pending <= 3000 + 100, "pending is bounded by the sockets touched");

  second = await startRedis(redis.port);
  await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, { timeoutMs: 10_000, what: "presence to reach the new Redis" });
  logger.warn(`(test) presence reaches the new Redis; the initial write of 3,000 took ${writeMs.toFixed(0)} ms`);
  // From the moment presence can write again: two heartbeats, plus one write of the set as measured.
  const bound = 2 * heartbeatMs + writeMs;
  const gone = [...Array.from({ length: 100 }, (_, i) => `during-${i}`), ...Array.from({ length: 100 }, (_, i) => `r-${i}`)];
  await waitFor(async () => (await registryDifference(server.url, "restart", local, gone)) === "", {
    timeoutMs: bound,
    intervalMs: 50,
    what: `the registry to equal the local set within two heartbeats (${bound.toFixed(0)} ms)`,
  }).catch(async (error) => {
    throw new Error(`${error.message}: ${await registryDifference(server.url, "restart", local, gone)}\n${logger.lines.join("\n")}`);
  });
  assert.ok(presence.stats().resyncs >= 2, "the heartbeat after the restart asked for every socket again");
  assert.match(logger.lines.join("\n"), /registry lost this node/);
});

test("the registry lost the node but not a socket it no longer holds: after the resync, that ghost is pruned", async (t) => {
  const heartbeatMs = 500;
  const redis = await startRedis();
  const server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: 2 });
  const { presence, logger } = client(server.url, "pruned", heartbeatMs);
  t.after(async () => {
    await presence.close();
    await server.stop();
    await redis.stop();
  });
  const writeMs = await fill(presence, "p", 500, 60_000);
  const local = Array.from({ length: 500 }, (_, i) => `p-${i}`);
  // A socket the registry holds for this node and incarnation, which the node does not hold: what
  // a disconnect lost in a failover leaves behind.
  const written = await api(server.url, "/v1/nodes/pruned/events", { method: "POST", body: { events: [{ type: "connect", socketId: "ghost-1", userId: "u" }] } });
  assert.equal(written.body.results[0].result, "created");
  // The failover also lost the node's registration (its socket records survive): the next
  // heartbeat answers `new`, and registers the same incarnation again, which revives the ghost.
  await redisCommand(redis.port, "HDEL", "presence:{registry}:nodes", "pruned");
  await redisCommand(redis.port, "DEL", "presence:{registry}:node:pruned");
  await waitFor(() => presence.stats().resyncs === 2, { timeoutMs: 4 * heartbeatMs, what: "the resync after `new`" });
  // The resync starts within a quarter interval and is spread over half a one; then the prune.
  const bound = 2 * heartbeatMs + 2 * writeMs;
  await waitFor(() => presence.settled, { timeoutMs: bound, what: `the resync and the prune (${bound.toFixed(0)} ms)` });
  assert.equal(await registryDifference(server.url, "pruned", local, ["ghost-1"]), "");
  assert.equal(presence.stats().pruned, 1);
  assert.match(logger.lines.join("\n"), /held 1 sockets for this node that it no longer holds/);
});

test("presence down for 5 s: nothing lost, the pending changes stay bounded, the registry equals the local set after", async (t) => {
  const heartbeatMs = 1000;
  const redis = await startRedis();
  // A node TTL longer than the outage: the registry keeps the node, so the disconnects made
  // meanwhile must be delivered, not forgotten.
  let server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: 10 });
  const { presence } = client(server.url, "outage", heartbeatMs);
  t.after(async () => {
    await presence.close();
    await server.stop();
    await redis.stop();
  });
  const writeMs = await fill(presence, "o", 2000, 60_000);
  const local = new Set(Array.from({ length: 2000 }, (_, i) => `o-${i}`));
  const touched = new Set();
  const port = server.port;
  await server.stop("SIGKILL");

  // 5 s of churn while presence is away: new sockets, gone sockets, sockets that come back.
  const started = performance.now();
  let step = 0;
  let maxPending = 0;
  while (performance.now() - started < 5000) {
    for (let i = 0; i < 20; i++, step++) {
      const fresh = `n-${step}`;
      presence.connected(fresh, { userId: "churn" });
      local.add(fresh);
      touched.add(fresh);
      const old = `o-${step % 2000}`;
      if (local.has(old)) {
        presence.disconnected(old);
        local.delete(old);
      } else {
        presence.connected(old, { userId: "back" });
        local.add(old);
      }
      touched.add(old);
      if (step % 3 === 0) {
        presence.disconnected(fresh); // never sent: costs nothing
        local.delete(fresh);
      }
    }
    maxPending = Math.max(maxPending, presence.stats().pending);
    assert.ok(presence.stats().pending <= touched.size, `pending ${presence.stats().pending} > touched ${touched.size}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(presence.stats().failedRequests > 0, "reports failed while presence was down");
  assert.ok(maxPending > 0);

  server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: 10, port });
  // Retries are at most a heartbeat apart; then the backlog is one write of at most the set.
  const bound = 2 * heartbeatMs + 2 * writeMs;
  await waitFor(async () => presence.settled && (await registryDifference(server.url, "outage", local, touched)) === "", {
    timeoutMs: bound,
    intervalMs: 50,
    what: `the registry to equal the local set (${bound.toFixed(0)} ms)`,
  }).catch(async (error) => {
    throw new Error(`${error.message}: ${await registryDifference(server.url, "outage", local, touched)}`);
  });
  assert.equal(presence.stats().incarnations, 1, "the node outlived the outage: same incarnation");
  assert.equal(presence.stats().sockets, local.size);
  assert.equal(presence.stats().inRegistry, local.size, "what the registry may hold is exactly the local set again");
  assert.equal(presence.stats().eventsDropped, 0);
});

test("an outage longer than the node TTL: a new incarnation, and the buffer shrinks to the local set", async (t) => {
  const heartbeatMs = 500;
  const nodeTtlMs = 1500;
  const redis = await startRedis();
  let server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: nodeTtlMs / 1000 });
  const { presence, logger } = client(server.url, "expired", heartbeatMs);
  t.after(async () => {
    await presence.close();
    await server.stop();
    await redis.stop();
  });
  const writeMs = await fill(presence, "e", 1000, 60_000);
  const local = new Set(Array.from({ length: 1000 }, (_, i) => `e-${i}`));
  const port = server.port;
  await server.stop("SIGKILL");
  for (let i = 0; i < 500; i++) {
    presence.disconnected(`e-${i}`);
    local.delete(`e-${i}`);
  }
  assert.equal(presence.stats().pending, 500, "500 disconnects to deliver");
  // Once no heartbeat was answered for a node TTL, the disconnects are not needed any more.
  await waitFor(() => presence.stats().incarnations === 2, { timeoutMs: 2 * nodeTtlMs + 2 * heartbeatMs, what: "a new incarnation" });
  assert.equal(presence.stats().pending, 0);
  assert.ok(presence.stats().inRegistry <= local.size);
  assert.match(logger.lines.join("\n"), /new incarnation/);

  server = await startPresence({ redis: redis.url, heartbeat: heartbeatMs / 1000, nodeTtl: nodeTtlMs / 1000, port });
  const gone = Array.from({ length: 500 }, (_, i) => `e-${i}`);
  const bound = 2 * heartbeatMs + 2 * writeMs;
  await waitFor(async () => (await registryDifference(server.url, "expired", local, gone)) === "", {
    timeoutMs: bound,
    intervalMs: 50,
    what: `the registry to equal the local set (${bound.toFixed(0)} ms)`,
  });
  assert.equal((await api(server.url, "/v1/nodes/expired")).body.incarnation, presence.incarnation);
});

test("a process SIGKILLed: its sockets read dead within the node TTL plus one heartbeat", async (t) => {
  const heartbeatMs = 500;
  const nodeTtlMs = 2000;
  const server = await startPresence({ heartbeat: heartbeatMs / 1000, nodeTtl: nodeTtlMs / 1000 });
  const child = spawnChildNode({ URL: server.url, NODE_ID: "doomed", COUNT: "300", HEARTBEAT_MS: String(heartbeatMs) });
  t.after(async () => {
    child.kill();
    await server.stop();
  });
  await waitFor(() => child.output().includes("settled") || child.process.exitCode !== null, { timeoutMs: 30_000, what: "the child to report its sockets" });
  assert.ok(child.output().includes("settled"), `the child exited early: ${child.output()}`);
  const ids = Array.from({ length: 300 }, (_, i) => `doomed-${i}`);
  assert.ok([...(await lookupAll(server.url, ids)).values()].every((a) => a.alive && a.nodeId === "doomed"));

  const killedAt = performance.now();
  child.process.kill("SIGKILL");
  await child.exited;
  // Dead at the last heartbeat + TTL, and the last heartbeat was at most one interval before the
  // kill: a lookup that starts later than that and still sees a socket alive is a failure. (Each
  // lookup reads the registry after it starts, so a slow poll cannot fail the test.)
  let lastAliveSeen = 0;
  await waitFor(async () => {
    const started = performance.now() - killedAt;
    const answers = await lookupAll(server.url, ids);
    const dead = [...answers.values()].every((a) => !a.alive);
    if (!dead) lastAliveSeen = started;
    return dead;
  }, { timeoutMs: 3 * (nodeTtlMs + heartbeatMs), intervalMs: 20, what: "the sockets to read dead" });
  assert.ok(lastAliveSeen <= nodeTtlMs + heartbeatMs, `a lookup begun ${lastAliveSeen.toFixed(0)} ms after the kill saw a socket alive`);
});

test("SIGTERM: the process leaves the registry (every client in it), then exits as SIGTERM would", async (t) => {
  const server = await startPresence({ heartbeat: 0.5, nodeTtl: 30 });
  // The child keeps the client's default signal handling; its second client leaves 300 ms later.
  const child = spawnChildNode({ URL: server.url, NODE_ID: "terminated", COUNT: "100", HEARTBEAT_MS: "500", SECOND_LEAVE_DELAY: "300" });
  t.after(async () => {
    child.kill();
    await server.stop();
  });
  await waitFor(() => child.output().includes("settled") || child.process.exitCode !== null, { timeoutMs: 30_000, what: "the child to report its sockets" });
  assert.ok(child.output().includes("settled"), `the child exited early: ${child.output()}`);
  assert.equal((await api(server.url, "/v1/nodes/terminated")).status, 200);
  assert.equal((await api(server.url, "/v1/nodes/terminated-second")).status, 200);
  child.process.kill("SIGTERM");
  assert.deepEqual(await child.exited, { code: null, signal: "SIGTERM" });
  // With a 30 s node TTL, only the leave can have made them dead by now.
  assert.equal((await api(server.url, "/v1/nodes/terminated")).status, 404);
  assert.equal((await api(server.url, "/v1/nodes/terminated-second")).status, 404, "the process waited for its second client's leave");
  const answers = await lookupAll(server.url, Array.from({ length: 100 }, (_, i) => `terminated-${i}`));
  assert.ok([...answers.values()].every((a) => !a.alive));
});

test("SIGTERM with the application's own handler: the node leaves, and the application's shutdown is not cut short", async (t) => {
  const server = await startPresence({ heartbeat: 0.5, nodeTtl: 30 });
  const child = spawnChildNode({ URL: server.url, NODE_ID: "app-handled", COUNT: "10", HEARTBEAT_MS: "500", APP_SIGTERM: "300" });
  t.after(async () => {
    child.kill();
    await server.stop();
  });
  await waitFor(() => child.output().includes("settled") || child.process.exitCode !== null, { timeoutMs: 30_000, what: "the child to report its sockets" });
  assert.ok(child.output().includes("settled"), `the child exited early: ${child.output()}`);
  child.process.kill("SIGTERM");
  assert.deepEqual(await child.exited, { code: 0, signal: null }, `the application's handler decided the exit: ${child.output()}`);
  assert.match(child.output(), /application shutdown done/);
  // With a 30 s node TTL, only the leave can have removed it.
  assert.equal((await api(server.url, "/v1/nodes/app-handled")).status, 404);
});
