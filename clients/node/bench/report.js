// Reporting throughput of one Node.js process using the client: connects and disconnects with user
// ids and random socket ids, as fast as the client gets them answered. Counts only events that came
// back in 200 answers; prints one JSON line. Used by scripts/bench (row 15).
//
//   node clients/node/bench/report.js --url http://127.0.0.1:8080 --token TOKEN [--seconds 10] [--node-id ID] [--max-in-flight 1]
import { parseArgs } from "node:util";
import { createPresence } from "../index.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "1" },
    "node-id": { type: "string", default: `bench-node-${process.pid}` },
    "max-in-flight": { type: "string", default: "1" },
  },
});
if (!values.url) throw new Error("--url is required");

const logged = [];
const logger = { warn: (m) => logged.push(m), error: (m) => logged.push(m) };
const presence = createPresence({ url: values.url, token: values.token, nodeId: values["node-id"], signals: false, logger,
  maxInFlight: Number(values["max-in-flight"]) });

// Each socket is disconnected LAG connects after its own connect: by then its connect has been
// sent (at most PENDING changes wait and a few batches are in flight), so no pair coalesces away.
const PENDING = 2000;
const STEP = 500;
const LAG = 8000;
const held = [];
let heldStart = 0;
let counter = 0;
function topUp() {
  if (presence.stats().pending >= PENDING) return;
  for (let i = 0; i < STEP; i++) {
    const id = `${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
    presence.connected(id, { userId: `user-${counter % 10000}` });
    held.push(id);
    if (held.length - heldStart > LAG) presence.disconnected(held[heldStart++]);
  }
  if (heldStart > 100_000) held.splice(0, heldStart), (heldStart = 0);
}

const deadline = Date.now() + 30_000;
while (!presence.stats().registered) {
  if (Date.now() > deadline) throw new Error(`not registered within 30 s: ${logged.join("; ")}`);
  await new Promise((r) => setTimeout(r, 10));
}
const pump = setInterval(topUp, 1);
topUp();
await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
const first = presence.stats();
const started = performance.now();
await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000));
const last = presence.stats();
const elapsed = (performance.now() - started) / 1000;
clearInterval(pump);
await presence.close();
const accepted = last.eventsAccepted - first.eventsAccepted;
console.log(JSON.stringify({
  eventsPerSecond: accepted / elapsed,
  accepted,
  requests: last.eventRequests - first.eventRequests,
  failedRequests: last.failedRequests - first.failedRequests,
  dropped: last.eventsDropped - first.eventsDropped,
  superseded: last.superseded - first.superseded,
  seconds: elapsed,
  log: logged.slice(0, 5),
}));
