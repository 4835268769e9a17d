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
