// Real processes for the client's tests: `presence serve` (from PRESENCE_BIN) and redis-server on
// free loopback ports, plus helpers that read the registry over its HTTP API. Kept out of test/
// because `node --test` runs every file under a folder named test.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repository = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const children = new Set();
// A test process that exits with servers still running (a failed hook, an uncaught error) takes
// them with it, and their own children too: `presence serve` runs its embedded redis-server as a
// child, which a SIGKILL of `presence serve` alone would leave behind.
process.on("exit", () => {
  for (const child of children) killTree(child.pid);
});

/** The processes whose parent is `pid`, and theirs (from /proc; empty where there is none). */
function descendants(pid) {
  const parents = new Map();
  let entries = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!parents.has(ppid)) parents.set(ppid, []);
      parents.get(ppid).push(Number(entry));
    } catch {}
  }
  const found = [];
  const visit = (parent) => {
    for (const child of parents.get(parent) ?? []) {
      found.push(child);
      visit(child);
    }
  };
  visit(pid);
  return found;
}

/** SIGKILLs a process this harness started and every process it started (read before the kill). */
function killTree(pid) {
  const below = descendants(pid);
  for (const target of [pid, ...below]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {}
  }
}

/** The `presence` binary: PRESENCE_BIN, else the debug build of this repository; fails clearly otherwise. */
export function presenceBin() {
  const candidates = process.env.PRESENCE_BIN ? [process.env.PRESENCE_BIN] : [join(repository, ".build/debug/presence")];
  for (const path of candidates) if (existsSync(path)) return path;
  throw new Error(
    process.env.PRESENCE_BIN
      ? `PRESENCE_BIN=${process.env.PRESENCE_BIN} does not exist`
      : "no presence binary: set PRESENCE_BIN to a built `presence` (scripts/test does), or run `swift build` first",
  );
}

function redisServerBin() {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("redis-server is not installed (scripts/install-deps installs it from apt)");
  }
}

/** A free loopback TCP port (free when asked; a test binds it right after). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Polls `condition` (sync or async) every `intervalMs` until it returns a truthy value, which it returns; fails after `timeoutMs`. */
export async function waitFor(condition, { timeoutMs, intervalMs = 25, what = "condition" }) {
  const deadline = performance.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function track(child, name) {
  children.add(child);
  let output = "";
  const collect = (chunk) => {
    output += chunk;
    if (output.length > 20000) output = output.slice(-10000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise((r) => child.once("exit", (code, signal) => {
    children.delete(child);
    r({ code, signal });
  }));
  return { child, exited, output: () => output, name };
}

async function stopProcess(tracked, signal = "SIGTERM") {
  if (tracked.child.exitCode !== null || tracked.child.signalCode !== null) return;
  // A SIGKILL of `presence serve` would orphan its embedded redis-server: take its children too.
  if (signal === "SIGKILL") killTree(tracked.child.pid);
  else tracked.child.kill(signal);
  const timer = setTimeout(() => killTree(tracked.child.pid), 10_000);
  await tracked.exited;
  clearTimeout(timer);
}

/** Answers PING over RESP on `port`. */
function redisPing(port) {
  return new Promise((resolvePing) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(1000);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolvePing(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolvePing(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolvePing(false);
    });
  });
}

/** Sends one command to the redis-server on `port` (RESP); resolves with the first line of its reply. */
export function redisCommand(port, ...args) {
  return new Promise((resolveReply, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(5000);
    let reply = "";
    socket.once("connect", () => {
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(String(arg))}\r\n${arg}\r\n`).join("")}`);
    });
    socket.on("data", (data) => {
      reply += data;
      if (!reply.includes("\r\n")) return;
      socket.destroy();
      if (reply.startsWith("-")) reject(new Error(`redis: ${reply.trim()}`));
      else resolveReply(reply.slice(0, reply.indexOf("\r\n")));
    });
    socket.once("error", reject);
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`redis on ${port}: no reply`));
    });
  });
}

/** A private redis-server on loopback, no persistence. `port` reuses one (a restart). */
export async function startRedis(port) {
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), "presence-node-redis-"));
  const tracked = track(
    spawn(redisServerBin(), ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
      { stdio: ["ignore", "pipe", "pipe"] }),
    "redis-server",
  );
  try {
    await waitFor(async () => {
      if (tracked.child.exitCode !== null) throw new Error(`redis-server exited: ${tracked.output()}`);
      return redisPing(port);
    }, { timeoutMs: 15_000, what: `redis-server on ${port}` });
  } catch (error) {
    await stopProcess(tracked, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop(signal = "SIGTERM") {
      await stopProcess(tracked, signal);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `presence serve` on loopback. Options: heartbeat and nodeTtl (seconds), redis (URL; default the
 * embedded one), port (default: the server picks one, read from its log).
 */
export async function startPresence({ heartbeat, nodeTtl, redis, port, env = {} } = {}) {
  const args = ["serve", "--port", String(port ?? 0), "--log-level", "info"];
  if (heartbeat !== undefined) args.push("--heartbeat", String(heartbeat));
  if (nodeTtl !== undefined) args.push("--node-ttl", String(nodeTtl));
  if (redis) args.push("--redis", redis);
  const tracked = track(spawn(presenceBin(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } }), "presence serve");
  let listening;
  let url;
  try {
    listening = await waitFor(() => {
      if (tracked.child.exitCode !== null) throw new Error(`presence serve exited: ${tracked.output()}`);
      return /listening on 127\.0\.0\.1:(\d+)/.exec(tracked.output())?.[1];
    }, { timeoutMs: 30_000, what: "presence serve to listen" });
    url = `http://127.0.0.1:${listening}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 30_000, what: "presence serve /readyz" });
  } catch (error) {
    // Not left running (with its embedded redis-server) when it never became ready.
    await stopProcess(tracked);
    throw new Error(`${error.message}\n${tracked.output()}`);
  }
  return {
    url,
    port: Number(listening),
    process: tracked.child,
    output: tracked.output,
    stop: (signal) => stopProcess(tracked, signal),
  };
}

/**
 * testing/child-node.js in a child process (env: URL, NODE_ID, COUNT, HEARTBEAT_MS), tracked like
 * the servers: killed with the test process, and it exits by itself when its stdin closes.
 */
export function spawnChildNode(env) {
  const script = fileURLToPath(new URL("./child-node.js", import.meta.url));
  const tracked = track(spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "inherit"] }), "child node");
  return {
    process: tracked.child,
    exited: tracked.exited,
    output: tracked.output,
    /** SIGKILL, unless it has exited (its pid may name another process by then). */
    kill: () => {
      if (tracked.child.exitCode === null && tracked.child.signalCode === null) killTree(tracked.child.pid);
    },
  };
}

/** JSON GET (or another method) against presence; returns {status, body}. */
export async function api(url, path, { method = "GET", body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Every live socket id the registry lists on `nodeId` (paged). */
export async function registrySockets(url, nodeId) {
  const ids = new Set();
  let cursor = "0";
  do {
    const { status, body } = await api(url, `/v1/nodes/${encodeURIComponent(nodeId)}/sockets?limit=1000&cursor=${cursor}`);
    if (status === 404) return ids;
    if (status !== 200) throw new Error(`listing sockets: ${status} ${JSON.stringify(body)}`);
    for (const socket of body.sockets) ids.add(socket.socketId);
    cursor = body.nextCursor;
  } while (cursor !== null);
  return ids;
}

/** Looks up any number of socket ids; a Map of id → answer. */
export async function lookupAll(url, ids) {
  const answers = new Map();
  for (let i = 0; i < ids.length; i += 1000) {
    const { status, body } = await api(url, "/v1/sockets/lookup", { method: "POST", body: { socketIds: ids.slice(i, i + 1000) } });
    if (status !== 200) throw new Error(`lookup: ${status} ${JSON.stringify(body)}`);
    for (const socket of body.sockets) answers.set(socket.socketId, socket);
  }
  return answers;
}

/**
 * Whether the registry holds exactly `expected` (socket ids) alive on `nodeId`, and none of
 * `gone` alive anywhere. Returns a description of the difference, or "" when equal.
 */
export async function registryDifference(url, nodeId, expected, gone = []) {
  const listed = await registrySockets(url, nodeId);
  const missing = [...expected].filter((id) => !listed.has(id));
  const expectedSet = new Set(expected);
  const extra = [...listed].filter((id) => !expectedSet.has(id));
  const answers = await lookupAll(url, [...gone]);
  const ghosts = [...gone].filter((id) => !expectedSet.has(id) && answers.get(id)?.alive);
  if (!missing.length && !extra.length && !ghosts.length) return "";
  return `missing ${missing.length} (${missing.slice(0, 3)}), extra ${extra.length} (${extra.slice(0, 3)}), ghosts ${ghosts.length} (${ghosts.slice(0, 3)})`;
}

/** Requests the server counted on a route and method (all statuses), from /metrics. */
export async function requestCount(url, route, method) {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("hb_requests{")) continue;
    if (!line.includes(`http_route="${route}"`) || !line.includes(`http_request_method="${method}"`)) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** A logger that keeps what the client says (tests assert on it or print it on failure). */
export function memoryLogger() {
  const lines = [];
  const at = () => `${(performance.now() / 1000).toFixed(3)} s`;
  return {
    lines,
    warn: (message) => lines.push(`${at()} warn: ${message}`),
    error: (message) => lines.push(`${at()} error: ${message}`),
  };
}
