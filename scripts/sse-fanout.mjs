// SSE fan-out latency: N subscribers of GET /v1/changes on one `presence serve`, while this process
// reports connects and disconnects at a steady rate over the HTTP API. Each change's delivery
// latency is the subscriber's receipt time minus the change's `at` (the Redis clock when it was
// recorded, same machine), in ms. Checks every subscriber got every change it should; prints one
// JSON line. Used by scripts/bench (row 17).
//
//   node scripts/sse-fanout.mjs --url http://127.0.0.1:8080 --read-token R --write-token W [--subscribers 1000] [--rate 200] [--seconds 10]
import http from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    "read-token": { type: "string" },
    "write-token": { type: "string" },
    subscribers: { type: "string", default: "1000" },
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "10" },
    "node-id": { type: "string", default: `fanout-${process.pid}` },
  },
});
if (!values.url) throw new Error("--url is required");
const base = new URL(values.url);
const subscribers = Number(values.subscribers);
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const nodeID = values["node-id"];
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(method, path, body, token) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: base.hostname, port: base.port, method, path, agent,
      headers: { Authorization: `Bearer ${token}`, ...(payload ? { "Content-Type": "application/json" } : {}) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

// Latencies in whole ms (receipt − at), one histogram for all subscribers: bounded memory.
const histogram = new Uint32Array(60_001);
let deliveries = 0;
let late = 0; // beyond the histogram's last bucket

/** One subscriber: a raw SSE reader that takes each event's node id and `at` without a JSON parse. */
function subscribe(index) {
  return new Promise((resolve, reject) => {
    const state = { index, seen: 0, ready: false, error: null, res: null };
    const req = http.get({ host: base.hostname, port: base.port, path: `/v1/changes?nodeId=${encodeURIComponent(nodeID)}`,
      agent: false, headers: { Authorization: `Bearer ${values["read-token"]}`, Accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`subscriber ${index}: ${res.statusCode}`));
      state.res = res;
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk) => {
        const now = Date.now();
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(": subscribed")) {
            state.ready = true;
            resolve(state);
            continue;
          }
          if (block.includes("event: stream-error")) state.error = block;
          // Only the socket changes this process writes are measured (not the registration's node.up).
          if (!block.includes("event: socket.")) continue;
          const at = block.indexOf('"at":"');
          const ms = now - Date.parse(block.slice(at + 6, block.indexOf('"', at + 6)));
          state.seen++;
          deliveries++;
          if (ms > 60_000) late++;
          else histogram[Math.max(0, ms)]++;
        }
      });
      res.on("end", () => (state.error ??= "stream ended"));
    });
    req.on("error", (error) => (state.ready ? (state.error = String(error)) : reject(error)));
  });
}

function percentile(p) {
  const target = Math.ceil((deliveries * p) / 100);
  let sum = 0;
  for (let ms = 0; ms < histogram.length; ms++) {
    sum += histogram[ms];
    if (sum >= target) return ms;
  }
  return Infinity;
}

const registered = await request("PUT", `/v1/nodes/${nodeID}`, { address: "127.0.0.1:9" }, values["write-token"]);
if (registered.status !== 200) throw new Error(`register: ${registered.status} ${registered.text}`);
// Subscribe in groups so the server's accept queue is not the thing measured.
const states = [];
for (let i = 0; i < subscribers; i += 100) {
  states.push(...(await Promise.all(Array.from({ length: Math.min(100, subscribers - i) }, (_, k) => subscribe(i + k)))));
}

// Writes: every 10 ms a batch of connects (and disconnects of the sockets connected a second
// earlier), `rate` changes per second in all; each event records one change (no user ids).
const cpuStart = process.cpuUsage();
const tickMs = 10;
const perTick = Math.max(1, Math.round((rate * tickMs) / 1000 / 2));
let written = 0;
let refused = 0;
let counter = 0;
const live = [];
const started = performance.now();
let tick = 0;
while (performance.now() - started < seconds * 1000) {
  const events = [];
  for (let i = 0; i < perTick; i++) {
    const id = `f${counter++}-${Math.random().toString(36).slice(2, 10)}`;
    events.push({ type: "connect", socketId: id });
    live.push(id);
  }
  while (live.length > perTick * (1000 / tickMs)) events.push({ type: "disconnect", socketId: live.shift() });
  const answer = await request("POST", `/v1/nodes/${nodeID}/events`, { events }, values["write-token"]);
  if (answer.status === 200) {
    for (const r of JSON.parse(answer.text).results) if (["created", "removed"].includes(r.result)) written++;
  } else {
    refused += events.length;
  }
  tick++;
  const wait = started + tick * tickMs - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
const elapsed = (performance.now() - started) / 1000;
// Wait for the last deliveries: every subscriber has seen every change written, or 10 s passed.
const expected = (s) => s.seen >= written;
const deadline = performance.now() + 10_000;
while (!states.every(expected) && performance.now() < deadline && states.every((s) => !s.error)) {
  await new Promise((r) => setTimeout(r, 20));
}
const cpu = process.cpuUsage(cpuStart);
const missing = states.reduce((sum, s) => sum + Math.max(0, written - s.seen), 0);
const errors = states.filter((s) => s.error).map((s) => `${s.index}: ${String(s.error).slice(0, 200)}`);
for (const s of states) s.res?.destroy();
agent.destroy();
console.log(JSON.stringify({
  subscribers, changesWritten: written, changesPerSecond: written / elapsed, refusedEvents: refused, deliveries, missing,
  p50: percentile(50), p90: percentile(90), p99: percentile(99), max: late ? "> 60000" : percentile(100),
  clientCpuSeconds: (cpu.user + cpu.system) / 1e6, seconds: elapsed, errors: errors.slice(0, 5),
}));
process.exit(0);
