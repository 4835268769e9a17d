// A websocket server stand-in for the SIGKILL and SIGTERM tests: reports COUNT sockets as NODE_ID
// to URL with the client, prints "settled" once every one is in the registry, then waits to be
// killed. It exits by itself when its standard input closes (the test process is gone), so a test
// that dies never leaves it behind.
import { createPresence } from "../index.js";

const { URL: url, NODE_ID: nodeId, COUNT = "100", HEARTBEAT_MS = "500" } = process.env;
process.stdin.on("end", () => process.exit(1));
process.stdin.resume();
const presence = createPresence({ url, nodeId, heartbeatMs: Number(HEARTBEAT_MS) });
for (let i = 0; i < Number(COUNT); i++) presence.connected(`${nodeId}-${i}`, { userId: `user-${i % 10}` });
const check = setInterval(() => {
  if (presence.settled) {
    clearInterval(check);
    console.log("settled");
  }
}, 10);
