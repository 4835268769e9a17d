// A websocket server stand-in for the SIGKILL and SIGTERM tests: reports COUNT sockets as NODE_ID
// to URL with the client, prints "settled" once every one is in the registry, then waits to be
// killed. With APP_SIGTERM=ms it has its own SIGTERM handler, which takes that long, then exits 0;
// with SECOND_LEAVE_DELAY=ms a second client reports as NODE_ID-second and leaves that much later. It exits by itself when its standard input closes (the test process is gone), so a test
// that dies never leaves it behind.
import { createPresence } from "../index.js";

const { URL: url, NODE_ID: nodeId, COUNT = "100", HEARTBEAT_MS = "500", APP_SIGTERM, SECOND_LEAVE_DELAY } = process.env;
process.stdin.on("end", () => process.exit(1));
process.stdin.resume();
if (APP_SIGTERM) {
  // An application with a graceful shutdown of its own, listening before the client is created.
  process.once("SIGTERM", async () => {
    await new Promise((r) => setTimeout(r, Number(APP_SIGTERM)));
    console.log("application shutdown done");
    process.exit(0);
  });
}
const presence = createPresence({ url, nodeId, heartbeatMs: Number(HEARTBEAT_MS) });
for (let i = 0; i < Number(COUNT); i++) presence.connected(`${nodeId}-${i}`, { userId: `user-${i % 10}` });
// A second client in the same process (NODE_ID-second), whose leave takes SECOND_LEAVE_DELAY ms longer.
const second = SECOND_LEAVE_DELAY && createPresence({
  url,
  nodeId: `${nodeId}-second`,
  heartbeatMs: Number(HEARTBEAT_MS),
  fetch: async (target, init) => {
    if (init.method === "DELETE") await new Promise((r) => setTimeout(r, Number(SECOND_LEAVE_DELAY)));
    return fetch(target, init);
  },
});
second?.connected(`${nodeId}-second-0`);
const check = setInterval(() => {
  if (presence.settled && (!second || second.settled)) {
    clearInterval(check);
    console.log("settled");
  }
}, 10);
