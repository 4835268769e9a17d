// The client against a `presence serve` with tokens: reports take the write token, queries the read
// token; a token the server refuses keeps the reports (nothing dropped) and says so.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createPresence, PresenceError } from "../index.js";
import { memoryLogger, startPresence, waitFor } from "../testing/harness.js";

const WRITE = "write-token-for-tests";
const READ = "read-token-for-tests";
let server;
const open = [];
before(async () => {
  server = await startPresence({ heartbeat: 0.5, nodeTtl: 2, env: { PRESENCE_WRITE_TOKEN: WRITE, PRESENCE_READ_TOKEN: READ } });
});
after(async () => {
  await Promise.all(open.map((presence) => presence.close()));
  await server?.stop();
});

function client(options) {
  const logger = memoryLogger();
  const presence = createPresence({ url: server.url, nodeId: options.nodeId, heartbeatMs: 500, signals: false, logger, ...options });
  open.push(presence);
  return { presence, logger };
}

test("writeToken reports, readToken queries", async () => {
  const { presence } = client({ nodeId: "tokens", writeToken: WRITE, readToken: READ });
  presence.connected("t-1", { userId: "u" });
  await waitFor(() => presence.settled, { timeoutMs: 10_000, what: "the report" });
  assert.equal((await presence.socket("t-1")).alive, true);
  const reader = createPresence({ url: server.url, nodeId: "reader", token: READ, signals: false, logger: null });
  open.push(reader);
  assert.equal((await reader.user("u")).sockets[0].socketId, "t-1");
});

test("a refused token: reports are kept and retried, not dropped; a query without a token throws 401", async () => {
  const { presence, logger } = client({ nodeId: "refused-token", token: READ }); // a read token cannot report
  presence.connected("kept-1");
  await waitFor(() => presence.stats().failedRequests > 0, { timeoutMs: 10_000, what: "a refused heartbeat" });
  assert.equal(presence.stats().registered, false);
  assert.equal(presence.stats().pending, 1);
  assert.equal(presence.stats().eventsDropped, 0);
  assert.match(logger.lines.join("\n"), /error: presence: heartbeat refused \(403 forbidden: .*\): check the configuration/);
  const anonymous = createPresence({ url: server.url, nodeId: "anonymous", signals: false, logger: null });
  open.push(anonymous);
  await assert.rejects(anonymous.socket("kept-1"), (error) => error instanceof PresenceError && error.status === 401);
});

test("refused retries are spread: each waits a random half to whole interval, not one interval exactly", async (t) => {
  const random = Math.random;
  Math.random = () => 0; // the shortest wait the jitter allows: half an interval
  t.after(() => (Math.random = random));
  const heartbeatMs = 1000;
  const sent = [];
  const fetchCounting = (url, init) => {
    if (init.method === "PUT") sent.push(performance.now());
    return fetch(url, init);
  };
  const { presence } = client({ nodeId: "refused-spread", token: READ, heartbeatMs, fetch: fetchCounting });
  await waitFor(() => sent.length >= 3, { timeoutMs: 10 * heartbeatMs, intervalMs: 5, what: "three refused heartbeats" });
  assert.equal(presence.stats().registered, false);
  const gaps = [sent[1] - sent[0], sent[2] - sent[1]];
  assert.ok(gaps.every((gap) => gap < heartbeatMs * 0.8), `refused heartbeats ${gaps.map((g) => g.toFixed(0)).join(" and ")} ms apart`);
});
