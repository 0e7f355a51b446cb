"use strict";
// The console's script: reads /console/events (Server-Sent Events, by fetch so an admin's token
// can go in a header) and draws each snapshot. Everything is built with DOM calls and
// textContent: no value from the server is ever parsed as HTML.
(() => {
  const TOKEN_KEY = "agora-console-token";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = { placed: "#176d2c", failed: "#a4161a", cancelled: "#7a4d00", rate: "#1d4f91", backlog: "#5b2a86" };
  // A success rate under this marks a method, route or service as failing.
  const FAILING_BELOW = 0.99;
  const $ = (id) => document.getElementById(id);
  let snapshots = 0;

  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "scope") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  };
  const noData = (what) => el("p", { class: "nodata" }, `No data${what ? ": " + what : ""}.`);

  const rate = (perSecond) => perSecond >= 10 ? `${perSecond.toFixed(0)}/s` : `${perSecond.toFixed(2)}/s`;
  const percent = (share) => share == null ? "–" : `${(share * 100).toFixed(share >= 0.999 || share === 0 ? 0 : 1)}%`;
  const duration = (seconds) => {
    if (seconds == null) return "–";
    if (seconds < 0.001) return `${(seconds * 1e6).toFixed(0)} µs`;
    if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
    return `${seconds.toFixed(2)} s`;
  };
  const failing = (golden) => golden.success != null && golden.success < FAILING_BELOW;

  // A line chart of one or more series (arrays of numbers, oldest first), with a text summary
  // for screen readers.
  const chart = (series, label, big = false) => {
    const width = 300, height = big ? 110 : 48, pad = 3;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", big ? "chart big" : "chart");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const max = Math.max(1e-9, ...series.flatMap(([, values]) => values));
    const base = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height - pad, y2: height - pad, stroke: "#c9c9c4" })) base.setAttribute(k, v);
    svg.append(base);
    for (const [name, values] of series) {
      if (values.length === 0) continue;
      const step = values.length > 1 ? width / (values.length - 1) : 0;
      const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - pad - (v / max) * (height - 2 * pad)).toFixed(1)}`);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", COLORS[name] || COLORS.rate);
      line.setAttribute("stroke-width", "2");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(line);
    }
    return svg;
  };

  const golden = (g) => el("dl", { class: "golden" },
    el("div", {}, el("dt", {}, "requests"), el("dd", { "data-field": "rate" }, rate(g.rate))),
    el("div", {}, el("dt", {}, "success"), el("dd", { "data-field": "success", class: failing(g) ? "failing" : "" }, percent(g.success))),
    el("div", {}, el("dt", {}, "p50"), el("dd", {}, duration(g.p50))),
    el("div", {}, el("dt", {}, "p99"), el("dd", {}, duration(g.p99))));

  const table = (caption, head, rows) => {
    const t = el("table", {}, el("caption", { class: "skip" }, caption));
    t.append(el("thead", {}, el("tr", {}, ...head.map(([text, cls]) => el("th", { scope: "col", class: cls || "" }, text)))));
    const body = el("tbody");
    rows.forEach((row) => body.append(row));
    t.append(body);
    return t;
  };
  const goldenCells = (g) => [
    el("td", {}, rate(g.rate)),
    el("td", { class: failing(g) ? "failing" : "" }, failing(g) ? `${percent(g.success)} ok, failing` : percent(g.success)),
    el("td", {}, duration(g.p50)),
    el("td", {}, duration(g.p99)),
  ];
  const goldenHead = [["requests"], ["success"], ["p50"], ["p99"]];

  const badge = (health) => {
    const kind = health === "SERVING" ? "ok" : health === "UNREACHABLE" || health === "NOT_SERVING" ? "down" : "other";
    return el("span", { class: `badge ${kind}` }, health || "not routed");
  };

  function drawServices(snapshot) {
    const list = $("service-list");
    list.replaceChildren();
    for (const s of snapshot.services) {
      const card = el("article", { class: "card", "data-service": s.name, "aria-labelledby": `svc-${s.name}` },
        el("header", {}, el("h3", { id: `svc-${s.name}` }, s.name), badge(s.health)),
        el("p", { class: "grpc" }, `${s.grpc} · ${s.replicas === 1 ? "1 replica" : `${s.replicas} replicas`}`),
        golden(s));
      card.append(chart([["rate", s.rateHistory]], `${s.name}: requests per second over the last minutes, now ${rate(s.rate)}`));
      if (s.methods.length === 0) {
        card.append(noData("no calls in the window"));
      } else {
        card.append(el("div", { class: "scroll", tabIndex: 0, role: "region", "aria-label": `${s.name} methods` }, table(`${s.name} methods`, [["method", "text"], ...goldenHead],
          s.methods.map((m) => el("tr", { "data-method": m.method, "data-rate": String(m.rate), "data-failing": String(failing(m)) },
            el("td", { class: "text" }, m.method), ...goldenCells(m))))));
      }
      list.append(card);
    }
  }

  function drawRoutes(snapshot) {
    const box = $("routes");
    box.replaceChildren(snapshot.routes.length === 0 ? noData("no requests in the window")
      : table("Edge routes", [["route", "text"], ["method", "text"], ...goldenHead],
        snapshot.routes.map((r) => el("tr", { "data-route": r.route },
          el("td", { class: "text route" }, r.route), el("td", { class: "text" }, r.method), ...goldenCells(r)))));
  }

  function drawBus(bus) {
    const box = $("bus");
    if (!bus) { box.replaceChildren(noData("no process reports its outbox or consumers yet")); return; }
    const parts = [];
    const backlog = bus.backlogHistory.length ? bus.backlogHistory[bus.backlogHistory.length - 1] : 0;
    parts.push(chart([["backlog", bus.backlogHistory]], `Outbox backlog of every stream over the last minutes, now ${backlog}`, true));
    parts.push(el("p", {}, `Dead-lettered: ${bus.deadLetteredPerMinute == null ? "no data" : `${bus.deadLetteredPerMinute.toFixed(1)} per minute`}`));
    parts.push(bus.streams.length === 0 ? noData("no outbox") : table("Outboxes", [["stream", "text"], ["backlog"], ["oldest"]],
      bus.streams.map((s) => el("tr", {}, el("td", { class: "text" }, s.stream),
        el("td", {}, s.backlog == null ? "–" : String(s.backlog)), el("td", {}, duration(s.lagSeconds))))));
    parts.push(bus.consumers.length === 0 ? noData("no consumer group") : table("Consumer groups", [["stream", "text"], ["group", "text"], ["lag"]],
      bus.consumers.map((c) => el("tr", {}, el("td", { class: "text" }, c.stream), el("td", { class: "text" }, c.group), el("td", {}, String(c.lag))))));
    box.replaceChildren(...parts);
  }

  function drawOrders(orders) {
    const box = $("orders");
    if (!orders) { box.replaceChildren(noData("no process counts orders yet")); return; }
    const names = Object.keys(orders.now);
    const summary = names.map((n) => `${n} ${orders.now[n].toFixed(1)}`).join(", ");
    box.replaceChildren(
      chart(names.map((n) => [n, orders.history[n]]), `Orders per minute over the last minutes: ${summary}`, true),
      el("ul", { class: "legend" }, ...names.map((n) => el("li", {},
        el("span", { class: "swatch", style: `background:${COLORS[n]}` }), `${n}: ${orders.now[n].toFixed(1)}/min`))));
  }

  function drawSources(snapshot) {
    $("sources").replaceChildren(...snapshot.sources.map((s) => el("li", {},
      s.error ? `${s.source}: unreachable (${s.error})` : `${s.source}: ${s.service || "answering"}`)));
  }

  function draw(snapshot) {
    snapshots += 1;
    document.body.dataset.snapshots = String(snapshots);
    const seconds = Math.round(snapshot.windowSeconds);
    for (const node of document.querySelectorAll(".window")) node.textContent = seconds >= 59 ? "minute" : `${seconds} s`;
    drawServices(snapshot);
    drawRoutes(snapshot);
    drawBus(snapshot.bus);
    drawOrders(snapshot.orders);
    drawSources(snapshot);
    $("status").textContent = `Live · updated ${new Date(snapshot.at).toLocaleTimeString()}`;
  }

  function askForToken(message) {
    $("signin").hidden = false;
    $("signin-error").textContent = message;
    $("status").textContent = "Sign in to see the console";
    $("token").focus();
  }

  // Reads the event stream until it ends, then connects again after a pause.
  async function follow() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { accept: "text/event-stream" };
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch("/console/events", { headers, cache: "no-store" });
    } catch (error) {
      $("status").textContent = "Disconnected; retrying…";
      setTimeout(follow, 3000);
      return;
    }
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(token ? (response.status === 403 ? "That token is not an administrator's." : "That token was refused (expired?).") : "");
      return;
    }
    if (!response.ok || !response.body) {
      $("status").textContent = `The console answered ${response.status}; retrying…`;
      setTimeout(follow, 3000);
      return;
    }
    $("signin").hidden = true;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (data) draw(JSON.parse(data));
        }
      }
    } catch (error) {
      // The connection broke: connect again below.
    }
    $("status").textContent = "Disconnected; retrying…";
    setTimeout(follow, 2000);
  }

  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    follow();
  });
  follow();
})();
