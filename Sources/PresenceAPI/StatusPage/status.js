// The presence status page. It polls the read API (/v1/nodes, /v1/stats) once a second, looks
// sockets up with POST /v1/sockets/lookup, follows the change stream (GET /v1/changes, server-sent
// events read through fetch so that it can carry the token) into a feed of the latest changes, and
// draws a chart of the last minutes from the polls and the feed. Ids come from clients: every
// value reaches the page through textContent or an attribute, never through innerHTML.
//
// The read token, when the API asks for one (401, or 403 for a refused token), is kept in this
// tab's sessionStorage only and sent as `Authorization: Bearer`; never in localStorage or the URL.
"use strict";

(() => {
  const TOKEN_KEY = "presence.readToken";
  const POLL_INTERVAL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  const FEED_ROWS = 100; // rows the feed keeps
  const FEED_SILENCE_MS = 45000; // keep-alives come every 15 s: this long without a byte is a dead connection
  const FEED_RETRY_MIN_MS = 1000;
  const FEED_RETRY_MAX_MS = 30000;
  const FEED_LINE_MAX = 1 << 20; // a longer line without a newline is not the server's: drop the connection
  const CHART_SECONDS = 300; // the chart's window, one point a second
  const SVG = "http://www.w3.org/2000/svg";

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
    feedStatus: $("feed-status"),
    feedRows: document.querySelector("#feed tbody"),
    chartLevels: $("chart-levels"),
    chartRates: $("chart-rates"),
    chartLevelsMax: $("chart-levels-max"),
    chartRatesMax: $("chart-rates-max"),
    legend: Object.fromEntries([...document.querySelectorAll("#chart-legend li")].map((item) => [item.dataset.series, item])),
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
    stopFeed("idle", "Starts once the data shows.");
    feed.lastEventId = null;
    feed.since = null;
    feed.note = "";
    page.feedRows.replaceChildren();
    seconds.clear();
    renderChart();
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
      sample(stats.body);
      renderChart();
      startFeed(); // after a first answer: with tokens, once the token is known good
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

  // Polling and the feed pause while the tab is hidden and resume at once when it shows again
  // (the feed from where it stopped: Last-Event-ID).
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopFeed("paused", "Paused while the tab is hidden.");
    else refresh();
  });

  // --- Chart ---------------------------------------------------------------------------------
  // One entry a second (server clock, epoch seconds) over the last CHART_SECONDS: the totals as the
  // poll of that second read them, and the socket changes the feed recorded in it. Older entries
  // are dropped at each render, so the map holds at most about CHART_SECONDS entries.

  const seconds = new Map();
  const nowSecond = () => Math.floor((Date.now() + clockOffsetMs) / 1000);

  function secondEntry(second) {
    let entry = seconds.get(second);
    if (!entry) {
      entry = { sockets: null, users: null, connects: 0, disconnects: 0 };
      seconds.set(second, entry);
    }
    return entry;
  }

  function sample(stats) {
    const entry = secondEntry(nowSecond());
    entry.sockets = stats.sockets.alive;
    entry.users = stats.users.online;
  }

  /** Counts a socket change in the second it was recorded, when that lies in the window. */
  function countChange(type, atMs) {
    if (type !== "socket.connected" && type !== "socket.disconnected") return;
    const second = Math.floor(atMs / 1000);
    const now = nowSecond();
    if (!(second > now - CHART_SECONDS && second <= now + 5)) return; // NaN, too old, or a skewed clock
    secondEntry(second)[type === "socket.connected" ? "connects" : "disconnects"] += 1;
  }

  /** A scale's top: 1, 2 or 5 × a power of ten, at least `value` (and at least 1). */
  function niceMax(value) {
    if (!(value > 1)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  /** A path through the points, broken where more than 3 s have no point (polls that failed). */
  function pathData(points, top) {
    let text = "";
    let previous = null;
    for (const [x, value] of points) {
      const y = 100 - (value / top) * 100;
      text += (previous !== null && x - previous <= 3 ? "L" : "M") + x + " " + y.toFixed(2) + " ";
      previous = x;
    }
    return text.trim();
  }

  function drawPlot(svg, maxLabel, series) {
    const top = niceMax(Math.max(0, ...series.flatMap((line) => line.points.map((point) => point[1]))));
    maxLabel.textContent = String(top);
    svg.replaceChildren(...series.map((line) => {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("class", "series series-" + line.name);
      path.setAttribute("d", pathData(line.points, top));
      path.dataset.series = line.name;
      path.dataset.points = String(line.points.length);
      return path;
    }));
  }

  /** The legend's text and data attributes: current value, and min/max (levels) or total (rates) over the window. */
  function describe(name, points, current, total) {
    const item = page.legend[name];
    item.querySelector(".value").textContent = current === null ? "–" : String(current);
    const values = points.map((point) => point[1]);
    item.dataset.points = String(points.length);
    item.dataset.current = current === null ? "" : String(current);
    item.dataset.min = values.length ? String(Math.min(...values)) : "";
    item.dataset.max = values.length ? String(Math.max(...values)) : "";
    if (total !== undefined) {
      item.dataset.total = String(total);
      item.querySelector(".total").textContent = points.length ? "(" + total + " in 5 min)" : "";
    }
  }

  function renderChart() {
    const now = nowSecond();
    const first = now - CHART_SECONDS + 1;
    for (const second of seconds.keys()) if (second < first || second > now + 5) seconds.delete(second);
    const levels = { sockets: [], users: [] };
    const rates = { connects: [], disconnects: [] };
    // Rates only since the feed started (before, they are unknown, not zero); the current second is still counting.
    const ratesFrom = feed.since === null ? Infinity : Math.max(first, feed.since);
    for (let second = first; second <= now; second += 1) {
      const entry = seconds.get(second);
      const x = second - first;
      if (entry && entry.sockets !== null) {
        levels.sockets.push([x, entry.sockets]);
        levels.users.push([x, entry.users]);
      }
      if (second >= ratesFrom && second < now) {
        rates.connects.push([x, entry ? entry.connects : 0]);
        rates.disconnects.push([x, entry ? entry.disconnects : 0]);
      }
    }
    drawPlot(page.chartLevels, page.chartLevelsMax, Object.entries(levels).map(([name, points]) => ({ name, points })));
    drawPlot(page.chartRates, page.chartRatesMax, Object.entries(rates).map(([name, points]) => ({ name, points })));
    for (const [name, points] of Object.entries(levels)) describe(name, points, points.length ? points[points.length - 1][1] : null);
    for (const [name, points] of Object.entries(rates)) {
      const total = points.reduce((sum, point) => sum + point[1], 0);
      describe(name, points, points.length ? points[points.length - 1][1] : null, total);
    }
  }

  setInterval(renderChart, 1000);

  // --- Feed ----------------------------------------------------------------------------------
  // GET /v1/changes through fetch (EventSource cannot send Authorization), parsed as server-sent
  // events here. Reconnects with Last-Event-ID (the server replays what was missed) after a
  // backoff; 410: the position is no longer retained, so it resumes live and says changes were
  // missed; 401/403: the token form.

  const feed = {
    controller: null, // the running request's, null when none runs
    retryTimer: null,
    retryMs: FEED_RETRY_MIN_MS,
    silenceTimer: null,
    lastEventId: null,
    stoppedAt: null, // when it last stopped (Date.now()), to resume only what the chart can show
    since: null, // the second the feed first went live since the data showed (rates count from it)
    note: "", // said while live: changes were missed
  };

  function setFeedStatus(state, text) {
    page.feedStatus.dataset.state = state;
    page.feedStatus.textContent = text;
  }

  function stopFeed(state, text) {
    clearTimeout(feed.retryTimer);
    feed.retryTimer = null;
    clearTimeout(feed.silenceTimer);
    const controller = feed.controller;
    feed.controller = null;
    if (controller) controller.abort();
    feed.stoppedAt = Date.now();
    setFeedStatus(state, text);
  }

  /** Starts the feed unless it runs, waits to retry, waits for a token, or the tab is hidden. */
  function startFeed() {
    if (feed.controller || feed.retryTimer !== null || waitingForToken || document.hidden) return;
    if (feed.lastEventId !== null && feed.stoppedAt !== null && Date.now() - feed.stoppedAt > CHART_SECONDS * 1000) {
      // Stopped (a hidden tab, a server away) for longer than the chart shows: replaying all of
      // it would only cost time. Go on live; the rates count again from then.
      feed.lastEventId = null;
      feed.since = null;
    }
    connectFeed();
  }

  function retryFeed(delayMs, text) {
    setFeedStatus("retrying", text + (delayMs > 0 ? " Reconnecting in " + Math.round(delayMs / 1000) + " s…" : " Reconnecting…"));
    feed.retryTimer = setTimeout(() => {
      feed.retryTimer = null;
      startFeed();
    }, delayMs);
  }

  function backoff() {
    const delay = feed.retryMs;
    feed.retryMs = Math.min(feed.retryMs * 2, FEED_RETRY_MAX_MS);
    return delay;
  }

  /**
   * A parser of `text/event-stream` (WHATWG HTML, "Interpreting an event stream"): `push` text as
   * it arrives; calls onEvent({type, data}) per event and onComment(text) per comment line, and
   * keeps `lastEventId`. Throws when a line grows past FEED_LINE_MAX.
   */
  function eventStream(onEvent, onComment, lastEventId) {
    let pending = "";
    let data = [];
    let type = "";
    let id = lastEventId;
    const parser = { lastEventId };
    const line = (text) => {
      if (text === "") {
        parser.lastEventId = id;
        if (data.length > 0) onEvent({ type: type || "message", data: data.join("\n") });
        data = [];
        type = "";
        return;
      }
      if (text[0] === ":") {
        onComment(text.slice(1).trim());
        return;
      }
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") type = value;
      else if (field === "id" && !value.includes("\0")) id = value;
    };
    parser.push = (text) => {
      pending += text;
      // A \r at the end may be the first half of \r\n: keep it for the next chunk.
      const cut = pending.endsWith("\r") ? pending.length - 1 : pending.length;
      const lines = pending.slice(0, cut).split(/\r\n|\r|\n/);
      pending = lines.pop() + pending.slice(cut);
      if (pending.length > FEED_LINE_MAX) throw new Error("an event stream line longer than " + FEED_LINE_MAX + " characters");
      for (const text of lines) line(text);
    };
    return parser;
  }

  const REASONS = { disconnected: "disconnected", node_down: "node down", node_left: "node left", moved: "moved" };

  function feedRow(type, change) {
    const row = element("tr", undefined, "change");
    row.dataset.type = type;
    const at = typeof change.at === "string" ? change.at : "";
    const time = element("td", undefined, "time");
    const date = new Date(at);
    if (!Number.isNaN(date.getTime())) {
      // Changes come many a second: the time of day to the millisecond (the date in the title).
      time.append(timeElement(at, date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3 })));
    }
    const node = element("td", change.nodeId === undefined ? "" : String(change.nodeId), "id");
    if (change.incarnation !== undefined) node.title = "incarnation " + change.incarnation;
    row.append(
      time,
      element("td", type, "type"),
      element("td", change.socketId === undefined ? "" : String(change.socketId), "id"),
      node,
      element("td", change.userId === undefined ? "" : String(change.userId), "id"),
      element("td", change.reason === undefined ? "" : Object.hasOwn(REASONS, change.reason) ? REASONS[change.reason] : String(change.reason), "reason"),
    );
    return row;
  }

  /** Adds the rows of one read's changes, newest first, keeping the newest FEED_ROWS. */
  function showChanges(changes) {
    const rows = changes.slice(-FEED_ROWS).reverse().map(({ type, change }) => feedRow(type, change));
    page.feedRows.prepend(...rows);
    while (page.feedRows.rows.length > FEED_ROWS) page.feedRows.lastElementChild.remove();
  }

  async function connectFeed() {
    const controller = new AbortController();
    feed.controller = controller;
    const token = storedToken();
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = "Bearer " + token;
    if (feed.lastEventId !== null) headers["Last-Event-ID"] = feed.lastEventId;
    setFeedStatus("connecting", feed.lastEventId === null ? "Connecting…" : "Resuming…");
    let outcome;
    try {
      outcome = await readFeed(controller, headers, token);
    } catch (error) {
      outcome = { status: 0, reason: controller.silent ? "no data for " + FEED_SILENCE_MS / 1000 + " s" : "the connection failed (" + (error && error.message) + ")" };
    }
    clearTimeout(feed.silenceTimer);
    if (feed.controller !== controller) return; // stopped (hidden tab, token change) or replaced meanwhile
    feed.controller = null;
    feed.stoppedAt = Date.now();
    const error = errorOf(outcome);
    if (outcome.status === 200) {
      // The server ended the stream: shutting down, or a final stream-error event.
      const ended = outcome.streamError;
      if (ended && ended.code === "slow_subscriber") retryFeed(0, "The feed fell behind.");
      else retryFeed(backoff(), ended ? "The feed ended (" + ended.code + ": " + ended.message + ")." : "The server ended the feed.");
    } else if (isAuthFailure(outcome)) {
      if (waitingForToken) return;
      if (isCurrent(outcome)) askForToken(outcome);
      else startFeed();
    } else if (outcome.status === 410) {
      // The position is older than the retention: resume live, and say what that means.
      feed.lastEventId = null;
      feed.note = " · some changes were missed (" + (error.code || "position_trimmed") + ")";
      retryFeed(0, "Changes since the last one shown are no longer retained.");
    } else if (outcome.status === 400 && feed.lastEventId !== null) {
      feed.lastEventId = null;
      feed.note = " · resumed live (" + (error.message || "position refused") + ")";
      retryFeed(0, "The server refused the position.");
    } else if (outcome.status === 503 && error.code === "changes_off") {
      // This server records no changes: ask again rarely (it may be restarted with them on).
      setFeedStatus("off", "No feed: this server does not record changes (presence serve --changes off).");
      feed.retryTimer = setTimeout(() => {
        feed.retryTimer = null;
        startFeed();
      }, FEED_RETRY_MAX_MS);
    } else if (outcome.status === 0) {
      retryFeed(backoff(), "Feed interrupted: " + outcome.reason + ".");
    } else {
      retryFeed(backoff(), "Feed unavailable (" + (error.code || "HTTP " + outcome.status) + (error.message ? ": " + error.message : "") + ").");
    }
  }

  /** One request: resolves to {status, body, token} for a refusal, or {status: 200, streamError} when the stream ends. */
  async function readFeed(controller, headers, token) {
    const silence = () => {
      clearTimeout(feed.silenceTimer);
      feed.silenceTimer = setTimeout(() => {
        controller.silent = true;
        controller.abort();
      }, FEED_SILENCE_MS);
    };
    silence();
    const response = await fetch("/v1/changes", { headers, cache: "no-store", credentials: "omit", signal: controller.signal });
    if (response.status !== 200) {
      let body = null;
      try { body = await response.json(); } catch { body = null; }
      return { status: response.status, body, token };
    }
    let streamError = null;
    let changes = [];
    const parser = eventStream((event) => {
      let data = null;
      try { data = JSON.parse(event.data); } catch { data = null; }
      if (data === null || typeof data !== "object") return;
      if (event.type === "stream-error") {
        streamError = { code: String(data.code), message: String(data.message) };
        return;
      }
      changes.push({ type: event.type, change: data });
      countChange(event.type, Date.parse(data.at));
    }, (comment) => {
      if (comment !== "subscribed") return;
      feed.retryMs = FEED_RETRY_MIN_MS;
      if (feed.since === null) feed.since = nowSecond();
      setFeedStatus("live", "Live" + feed.note);
    }, feed.lastEventId);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      silence();
      parser.push(decoder.decode(value, { stream: true }));
      if (feed.controller !== controller) break;
      feed.lastEventId = parser.lastEventId;
      if (changes.length > 0) {
        showChanges(changes);
        changes = [];
      }
    }
    return { status: 200, streamError };
  }

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
