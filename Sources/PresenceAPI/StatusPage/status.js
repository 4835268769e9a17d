// The presence status page. It polls the read API (/v1/nodes, /v1/stats) once a second and looks
// sockets up with POST /v1/sockets/lookup. Ids come from clients: every value reaches the page
// through textContent or an attribute, never through innerHTML.
//
// The read token, when the API asks for one (401, or 403 for a refused token), is kept in this
// tab's sessionStorage only and sent as `Authorization: Bearer`; never in localStorage or the URL.
"use strict";

(() => {
  const TOKEN_KEY = "presence.readToken";
  const POLL_INTERVAL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const page = {
    status: $("status"),
    forget: $("forget-token"),
    tokenForm: $("token-form"),
    tokenMessage: $("token-message"),
    token: $("token"),
    data: $("data"),
    nodes: document.querySelector("#nodes tbody"),
    noNodes: $("no-nodes"),
    totals: {
      nodesAlive: $("total-nodes-alive"),
      nodesDead: $("total-nodes-dead"),
      socketsAlive: $("total-sockets-alive"),
      usersOnline: $("total-users-online"),
    },
    lookupForm: $("lookup-form"),
    socketID: $("socket-id"),
    lookupResult: $("lookup-result"),
  };

  let timer = null;
  let inFlight = false;
  let refreshAgain = false;
  let waitingForToken = false;
  let lastUpdate = null;
  // Server clock minus browser clock, from the Date header; used only when they differ by more
  // than the header's one-second resolution, so heartbeat ages stay right on a skewed laptop.
  let clockOffsetMs = 0;

  const storedToken = () => sessionStorage.getItem(TOKEN_KEY);

  /** Calls the API; resolves to {status, body, token} (status 0: no answer), never rejects. */
  async function api(path, body) {
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init = {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    };
    if (typeof AbortSignal.timeout === "function") init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      const reason = error && error.name === "TimeoutError" ? "no answer within " + REQUEST_TIMEOUT_MS / 1000 + " s" : "the connection failed";
      return { status: 0, body: null, token, reason };
    }
    const serverDate = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(serverDate)) {
      const offset = serverDate - Date.now();
      clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
    }
    let json = null;
    try { json = await response.json(); } catch { json = null; }
    if (response.ok && json === null) {
      return { status: 0, body: null, token, reason: "an unreadable answer (HTTP " + response.status + ")" };
    }
    return { status: response.status, body: json, token };
  }

  const errorOf = (answer) => (answer.body && answer.body.error) || {};
  // An answer to a token that is no longer the current one (replaced meanwhile) asks nothing.
  const isAuthFailure = (answer) => answer.status === 401 || answer.status === 403;
  const isCurrent = (answer) => (answer.token || null) === storedToken();

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function timeElement(iso, text) {
    const node = element("time", text);
    node.dateTime = iso;
    node.title = iso;
    return node;
  }

  function setStatus(state, text) {
    page.status.dataset.state = state;
    page.status.textContent = text;
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /** The time of day for today, else the date and the time. */
  function when(iso) {
    const date = new Date(iso);
    const today = date.toDateString() === new Date().toDateString();
    return today ? clock(date) : date.toLocaleDateString() + " " + clock(date);
  }

  function age(iso) {
    const seconds = Math.max(0, Math.floor((Date.now() + clockOffsetMs - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  // --- Token ---------------------------------------------------------------------------------

  function clearData() {
    page.nodes.replaceChildren();
    page.noNodes.hidden = true;
    for (const cell of Object.values(page.totals)) cell.textContent = "–";
    page.lookupResult.replaceChildren();
    delete page.lookupResult.dataset.state;
    lastUpdate = null;
  }

  function askForToken(answer) {
    const refused = answer.status === 403 || answer.token !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    waitingForToken = true;
    clearTimeout(timer);
    clearData();
    page.data.hidden = true;
    page.forget.hidden = true;
    page.tokenMessage.textContent = refused
      ? "That token was refused (" + (errorOf(answer).message || "HTTP " + answer.status) + "). Enter a read token."
      : "This registry needs a read token.";
    page.tokenForm.hidden = false;
    setStatus("auth", refused ? "Token refused" : "Read token needed");
    page.token.focus();
  }

  page.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = page.token.value.trim();
    if (token === "") return;
    if (!/^[\x21-\x7E]+$/.test(token)) {
      // fetch refuses such a header value: it would read as "cannot reach" forever.
      page.tokenMessage.textContent = "A token is printable ASCII without spaces. Enter a read token.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    page.token.value = "";
    page.tokenForm.hidden = true;
    page.data.hidden = false;
    waitingForToken = false;
    setStatus("loading", "Loading…");
    refresh();
  });

  page.forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearData();
    refresh();
  });

  // --- Nodes and totals ----------------------------------------------------------------------

  function nodeRow(node) {
    const row = element("tr", undefined, node.alive ? "alive" : "dead");
    row.dataset.nodeId = node.nodeId;
    const name = element("th", node.nodeId);
    name.scope = "row";
    const state = element("td", undefined, "state");
    state.append(element("span", node.alive ? "alive" : "dead", "badge"));
    const heartbeat = element("td");
    heartbeat.append(timeElement(node.lastHeartbeatAt, age(node.lastHeartbeatAt)));
    const started = element("td");
    started.append(timeElement(node.startedAt, when(node.startedAt)));
    row.append(
      name,
      state,
      element("td", String(node.socketCount), "number sockets"),
      heartbeat,
      element("td", node.address === "" ? "—" : node.address, "address"),
      started,
    );
    return row;
  }

  function renderNodes(nodes) {
    const sorted = nodes.slice().sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    page.nodes.replaceChildren(...sorted.map(nodeRow));
    page.noNodes.hidden = sorted.length > 0;
  }

  function renderTotals(stats) {
    page.totals.nodesAlive.textContent = String(stats.nodes.alive);
    page.totals.nodesDead.textContent = String(stats.nodes.dead);
    page.totals.socketsAlive.textContent = String(stats.sockets.alive);
    page.totals.usersOnline.textContent = String(stats.users.online);
  }

  function showTrouble(answer) {
    const since = lastUpdate ? " Showing data from " + clock(lastUpdate) + "." : "";
    page.data.dataset.stale = "true";
    if (answer.status === 0) {
      setStatus("unreachable", "Cannot reach presence: " + answer.reason + "." + since + " Retrying…");
    } else if (answer.status === 503) {
      const error = errorOf(answer);
      setStatus("unavailable", "Registry unavailable (" + (error.code || "503") + "): " + (error.message || "Redis does not answer") + "." + since + " Retrying…");
    } else {
      setStatus("error", "Unexpected answer: HTTP " + answer.status + " " + (errorOf(answer).message || "") + since + " Retrying…");
    }
  }

  /** One poll: nodes and totals, or the reason they could not be read. */
  async function poll() {
    const [nodes, stats] = await Promise.all([api("/v1/nodes"), api("/v1/stats")]);
    if (waitingForToken) return; // a lookup asked for a token meanwhile
    const failed = [nodes, stats].find((answer) => answer.status !== 200);
    if (failed && isAuthFailure(failed)) {
      if (isCurrent(failed)) askForToken(failed);
      return;
    }
    if (failed) {
      showTrouble(failed);
    } else {
      renderNodes(nodes.body.nodes);
      renderTotals(stats.body);
      lastUpdate = new Date();
      delete page.data.dataset.stale;
      page.forget.hidden = storedToken() === null;
      setStatus("live", "Live · updated " + clock(lastUpdate));
    }
  }

  /** Polls now, then every POLL_INTERVAL_MS; one poll at a time, whoever asks. */
  async function refresh() {
    clearTimeout(timer);
    if (waitingForToken) return;
    if (inFlight) {
      refreshAgain = true;
      return;
    }
    inFlight = true;
    try {
      await poll();
    } catch (error) {
      // An answer of an unexpected shape: say so, and keep polling.
      showTrouble({ status: 0, reason: "an unexpected answer (" + (error && error.message) + ")" });
    } finally {
      inFlight = false;
    }
    if (waitingForToken) return;
    if (refreshAgain) {
      refreshAgain = false;
      refresh();
    } else if (!document.hidden) {
      timer = setTimeout(refresh, POLL_INTERVAL_MS);
    }
  }

  // Polling pauses while the tab is hidden and resumes at once when it shows again.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });

  // --- Socket lookup -------------------------------------------------------------------------

  function showLookup(state, ...parts) {
    page.lookupResult.dataset.state = state;
    const paragraph = element("p");
    paragraph.append(...parts.map((part) => (typeof part === "string" ? document.createTextNode(part) : part)));
    page.lookupResult.replaceChildren(paragraph);
  }

  page.lookupForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const socketID = page.socketID.value;
    if (socketID === "") return;
    showLookup("loading", "Looking up ", element("code", socketID), "…");
    const answer = await api("/v1/sockets/lookup", { socketIds: [socketID] });
    const checked = " (checked " + clock(new Date()) + ")";
    if (answer.status === 200) {
      const socket = answer.body.sockets[0];
      if (socket.alive) {
        const parts = [element("strong", "Connected"), ": ", element("code", socket.socketId), " is on node ", element("code", socket.nodeId)];
        if (socket.nodeAddress !== "") parts.push(" (", element("code", socket.nodeAddress), ")");
        if (socket.userId !== null) parts.push(", user ", element("code", socket.userId));
        parts.push(", connected since ", timeElement(socket.connectedAt, when(socket.connectedAt)), checked + ".");
        showLookup("connected", ...parts);
      } else {
        showLookup("not-connected", element("strong", "Not connected"), ": ", element("code", socket.socketId),
          " is unknown, disconnected, or on a dead node" + checked + ".");
      }
    } else if (isAuthFailure(answer)) {
      if (isCurrent(answer)) askForToken(answer);
      else showLookup("error", "The token changed meanwhile. Look up again.");
    } else if (answer.status === 0) {
      showLookup("error", element("strong", "No answer"), ": " + answer.reason + ". Try again.");
    } else if (answer.status === 503) {
      showLookup("error", element("strong", "Registry unavailable"), ": " + (errorOf(answer).message || "Redis does not answer") + ". Try again.");
    } else {
      showLookup("error", element("strong", "Refused"), ": " + (errorOf(answer).message || "HTTP " + answer.status) + ".");
    }
  });

  refresh();
})();
