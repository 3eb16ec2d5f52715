// The operators' console: four views over the station's JSON API, kept
// live by its event stream (/api/events). No library, no build step.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const STATE_NAMES = { requested: "Requested", opened: "Opened", beginning_of_tape: "Beginning of tape", writing: "Writing", reading: "Reading", end_of_tape: "End of tape", closed: "Closed", error: "Error" };
const stateName = (s) => STATE_NAMES[s] || s;

function bytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + u[i];
}
const mbps = (r) => (r == null ? "–" : (r / 1e6).toFixed(1) + " MB/s");
function duration(s) {
  if (s == null || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
const dateTime = (ms) => (ms ? new Date(ms).toLocaleString() : "");

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-dmc-console": "1" },
    body: JSON.stringify(body),
  };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ message: r.statusText }));
  if (!r.ok) throw new Error(data.message || r.statusText);
  return data;
}

// ---- state ---------------------------------------------------------------

const S = {
  machines: {},            // kind -> {states, edges}
  channels: new Map(),     // id -> channel view
  samples: new Map(),      // id -> [[ms, bytes], ...] (recent progress)
  notifications: new Map(),// id -> notification
  view: "channels",
  onChange: null,          // set while a view redraws on live events
};

function sample(id, ms, b) {
  const list = S.samples.get(id) || [];
  if (!list.length || list[list.length - 1][1] !== b) list.push([ms, b]);
  while (list.length > 2 && ms - list[0][0] > 10000) list.shift();
  S.samples.set(id, list);
}
function rate(id) {
  const list = S.samples.get(id);
  if (!list || list.length < 2) return null;
  const [t0, b0] = list[0], [t1, b1] = list[list.length - 1];
  return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : null;
}

function mergeChannel(c) {
  const old = S.channels.get(c.channel_id);
  if (old) {
    // Keep transitions the stream delivered before this snapshot was read.
    const key = (t) => `${t.at_ms}|${t.to}|${t.reason}`;
    const seen = new Set(c.transitions.map(key));
    for (const t of old.transitions) if (!seen.has(key(t))) c.transitions.push(t);
    c.transitions.sort((a, b) => a.at_ms - b.at_ms);
    c.bytes = Math.max(c.bytes, old.bytes);
    const last = c.transitions[c.transitions.length - 1];
    if (last) { c.state = last.to === last.from ? c.state : last.to; }
  }
  S.channels.set(c.channel_id, c);
}

function onTransition(t) {
  let c = S.channels.get(t.channel_id);
  if (!c) {
    // A new channel: fetch it whole (object, pair, drive…).
    api(`/api/channels/${t.channel_id}`).then((v) => { mergeChannel(v); render(); }).catch(() => {});
    return;
  }
  if (!c.transitions.some((x) => x.at_ms === t.at_ms && x.to === t.to && x.reason === t.reason)) c.transitions.push(t);
  if (t.from !== t.to || !t.from) { c.state = t.to; c.reason = t.reason; }
  c.updated_ms = t.at_ms;
  // Drive, tape and pair change with mounts: refresh them.
  api(`/api/channels/${t.channel_id}`).then((v) => { mergeChannel(v); render(); }).catch(() => {});
  render();
}

function onProgress(p) {
  const c = S.channels.get(p.channel_id);
  sample(p.channel_id, p.at_ms, p.bytes);
  if (c && p.bytes >= c.bytes) { c.bytes = p.bytes; render(); }
}

async function loadSnapshot() {
  const [machines, channels, notes] = await Promise.all([api("/api/machines"), api("/api/channels"), api("/api/notifications")]);
  for (const m of machines) S.machines[m.kind] = m;
  for (const c of channels) mergeChannel(c);
  S.notifications = new Map(notes.map((n) => [n.id, n]));
  render();
}

// ---- live stream -----------------------------------------------------------

function connect() {
  const live = $("#live");
  const es = new EventSource("/api/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; loadSnapshot().catch(showError); };
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  const changed = () => S.onChange && S.onChange();
  es.addEventListener("transition", (e) => { onTransition(JSON.parse(e.data)); changed(); });
  es.addEventListener("progress", (e) => { onProgress(JSON.parse(e.data)); changed(); });
  es.addEventListener("notification", (e) => { const n = JSON.parse(e.data); S.notifications.set(n.id, n); render(); });
  es.addEventListener("resync", () => loadSnapshot().catch(showError));
}

function showError(e) {
  const r = $("#alerts");
  const d = document.createElement("div");
  d.className = "alert";
  d.innerHTML = `<span class="what">Console</span><span class="msg">${esc(e.message || e)}</span>`;
  r.appendChild(d);
}

// ---- rendering -------------------------------------------------------------

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    renderAlerts();
    if (S.view === "channels") renderChannels();
  });
}

function renderAlerts() {
  const open = [...S.notifications.values()].filter((n) => !n.acknowledged_ms).sort((a, b) => b.id - a.id);
  $("#alerts").innerHTML = open.map((n) => `
    <div class="alert" data-notification="${n.id}">
      <span class="what">${esc(n.kind.replace("_", " "))}: ${esc(n.subject)}</span>
      <span class="msg">${esc(n.message)}</span>
      <span class="muted">${dateTime(n.raised_ms)}${n.delivered ? " · sent to webhook" : n.attempts ? ` · webhook: ${esc(n.last_error || "")} (${n.attempts} tries)` : ""}</span>
      <button data-ack="${n.id}">Acknowledge</button>
    </div>`).join("");
}

document.addEventListener("click", async (e) => {
  const ack = e.target.closest("[data-ack]");
  if (ack) {
    try { const n = await api(`/api/notifications/${ack.dataset.ack}/ack`, {}); S.notifications.set(n.id, n); render(); }
    catch (err) { showError(err); }
  }
});

function machineSvg(c) {
  const m = S.machines[c.kind];
  if (!m) return "";
  const main = m.states.filter((s) => s !== "error");
  const W = 124, H = 28, G = 24, X0 = 6, Y0 = 34;
  const x = (s) => X0 + main.indexOf(s) * (W + G);
  const visited = new Set(c.transitions.map((t) => t.to));
  const failedFrom = c.state === "error" ? (c.transitions.filter((t) => t.to !== "error").pop() || {}).to : null;
  let paths = "";
  for (const [a, b] of m.edges) {
    const ia = main.indexOf(a), ib = main.indexOf(b);
    if (ib === ia + 1) {
      paths += `<path d="M${x(a) + W} ${Y0 + H / 2} L${x(b) - 4} ${Y0 + H / 2}" marker-end="url(#arr)"/>`;
    } else if (ib > ia) {
      const xa = x(a) + W / 2, xb = x(b) + W / 2;
      paths += `<path d="M${xa} ${Y0} C${xa} ${Y0 - 30}, ${xb} ${Y0 - 30}, ${xb} ${Y0 - 4}" marker-end="url(#arr)"/>`;
    } else {
      const xa = x(a) + W / 2, xb = x(b) + W / 2;
      paths += `<path d="M${xa} ${Y0 + H} C${xa} ${Y0 + H + 26}, ${xb} ${Y0 + H + 26}, ${xb} ${Y0 + H + 4}" marker-end="url(#arr)"/>`;
    }
  }
  const ex = X0 + (main.length - 1) * (W + G), ey = Y0 + H + 34;
  if (failedFrom && main.includes(failedFrom)) {
    paths += `<path class="err" d="M${x(failedFrom) + W / 2} ${Y0 + H} L${ex + W / 2} ${ey - 4}" marker-end="url(#arr)"/>`;
  } else {
    // Every state but the ends may fail.
    paths += `<path class="err" d="M${ex - G / 2} ${ey + H / 2} L${ex - 4} ${ey + H / 2}" marker-end="url(#arr)"/><text class="any" x="${ex - G / 2 - 4}" y="${ey + H / 2}">any state</text>`;
  }
  const box = (s, bx, by) => {
    const cls = [s === c.state ? "current" : "", visited.has(s) ? "visited" : "", s === "error" ? "err" : "", s === "closed" ? "done" : ""].join(" ");
    return `<g class="${cls}" data-state="${s}"><rect x="${bx}" y="${by}" width="${W}" height="${H}" rx="6"/><text x="${bx + W / 2}" y="${by + H / 2}">${esc(stateName(s))}</text></g>`;
  };
  const width = X0 * 2 + main.length * W + (main.length - 1) * G;
  return `<svg class="machine" width="${width}" height="${ey + H + 6}" viewBox="0 0 ${width} ${ey + H + 6}" role="img" aria-label="state machine, now ${esc(stateName(c.state))}">
    <defs><marker id="arr" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0 L8 4 L0 8 z" fill="#9aa4b2" stroke="none"/></marker></defs>
    ${paths}${main.map((s) => box(s, x(s), Y0)).join("")}${box("error", ex, ey)}</svg>`;
}

function channelCard(c) {
  const r = c.state === "closed" || c.state === "error" ? null : rate(c.channel_id);
  const eta = r && c.expected_bytes ? (c.expected_bytes - c.bytes) / r : null;
  const what = `${c.kind} of ${c.primary}:${c.object_name}`;
  const step = (t) => (t.from === t.to ? `<span class="muted">note in ${esc(stateName(t.to))}</span>` : `${t.from ? esc(stateName(t.from)) + " → " : ""}${esc(stateName(t.to))}`);
  const tr = c.transitions.map((t) => `<tr><td>${time(t.at_ms)}</td><td>${step(t)}</td><td>${esc(t.reason)}</td><td class="muted">${esc(t.actor)}</td></tr>`).join("");
  const note = [...S.notifications.values()].find((n) => n.channel_id === c.channel_id && !n.acknowledged_ms);
  return `<article class="channel state-${c.state}" id="ch-${c.channel_id}" data-channel="${c.channel_id}" data-state="${c.state}" data-bytes="${c.bytes}">
    <h2>Channel ${c.channel_id} <span class="badge">${esc(stateName(c.state))}</span> <span>${esc(what)}</span> <span class="muted">ABS ${c.abs_id} · ${esc(c.level)} · pool ${esc(c.pool)}</span></h2>
    ${machineSvg(c)}
    ${c.state === "error" ? `<div class="error-reason"><b>Error:</b> <span class="reason">${esc(c.reason)}</span>${note ? ` <button data-ack="${note.id}">Acknowledge</button>` : ""}</div>` : ""}
    <div class="stats">
      <div><span>bytes</span><b class="bytes">${bytes(c.bytes)}</b>${c.expected_bytes ? ` <span>of ${bytes(c.expected_bytes)}</span>` : ""}</div>
      <div><span>rate</span>${mbps(r)}</div>
      <div><span>ETA</span>${duration(eta)}</div>
      <div><span>pair</span>${esc(c.front_end || "–")} → ${esc(c.back_end || "–")}</div>
      <div><span>drive</span>${esc(c.drive || "–")}</div>
      <div><span>tape</span>${esc(c.tape || "–")}</div>
    </div>
    <details${c.state === "error" ? " open" : ""}><summary>${c.transitions.length} transitions</summary>
      <table class="history"><tr><th>time</th><th>transition</th><th>reason</th><th>by</th></tr>${tr}</table></details>
  </article>`;
}

function renderChannels() {
  const all = [...S.channels.values()].sort((a, b) => {
    const ended = (c) => (c.state === "closed" || c.state === "error" ? 1 : 0);
    return ended(a) - ended(b) || b.channel_id - a.channel_id;
  });
  // Keep which histories are open across redraws.
  const open = new Set([...document.querySelectorAll(".channel details[open]")].map((d) => d.closest(".channel").dataset.channel));
  $("#channels").innerHTML = all.length ? all.map(channelCard).join("") : `<p class="muted">No channels yet.</p>`;
  for (const id of open) { const d = $(`#ch-${id} details`); if (d) d.open = true; }
}

// ---- drives and library ----------------------------------------------------

async function renderLibrary() {
  const L = await api("/api/library");
  const driveRate = (d) => d.channels.reduce((sum, id) => sum + (rate(id) || 0), 0);
  $("#library").innerHTML = `
    <h3>Drives</h3>
    <table><tr><th>drive</th><th>back-end</th><th>activity</th><th>tape</th><th>channels</th><th class="num">busy (1 h)</th><th class="num">now</th></tr>
    ${L.drives.map((d) => `<tr data-drive="${esc(d.name)}"><td>${esc(d.name)}</td><td>${esc(d.back_end)}</td><td>${esc(d.activity)}</td><td>${esc(d.tape || "–")}</td><td>${d.channels.join(", ") || "–"}</td><td class="num">${Math.round(d.busy_share * 100)} %</td><td class="num">${d.channels.length ? mbps(driveRate(d)) : "–"}</td></tr>`).join("")}</table>
    <h3>Library: ${L.in_library} of ${L.slots} slots used</h3>
    <div class="forms">
      <form id="label-form">Label <input name="count" type="number" min="1" value="1"> scratch tapes for pool <input name="pool" placeholder="default"><button>Label</button></form>
      <form id="import-form">Import images <input name="paths" placeholder="/path/a.tap, /path/b.tap"> into pool <input name="pool" placeholder="default"><button>Import</button></form>
    </div>
    <div id="result"></div>
    <h3>Pools</h3>
    <table><tr><th>pool</th><th>kind</th><th>copies of</th><th class="num">tapes</th><th class="num">ABSs</th><th class="num">written</th><th class="num">retention</th></tr>
    ${L.pools.map((p) => `<tr><td>${esc(p.name)}</td><td>${esc(p.kind)}</td><td>${esc(p.copies_of.join(", ") || "–")}</td><td class="num">${p.tapes}</td><td class="num">${p.abs}</td><td class="num">${bytes(p.bytes_written)}</td><td class="num">${p.retain_days ? p.retain_days + " d" : "–"}</td></tr>`).join("")}</table>
    <h3>Tapes</h3>
    <table><tr><th>label</th><th>pool</th><th>state</th><th>where</th><th>mounted in</th><th class="num">written</th><th class="num">files</th><th>media set</th><th></th></tr>
    ${L.tapes.map((t) => `<tr><td>${esc(t.label)}</td><td>${esc(t.pool)}</td><td>${esc(t.state)}</td><td>${esc(t.location)}${t.slot != null ? " slot " + t.slot : ""}</td><td>${esc(t.mounted_in || "–")}</td><td class="num">${bytes(t.bytes_written)}</td><td class="num">${t.files_written}</td><td>${t.media_set != null ? t.media_set + "/" + t.sequence : "–"}</td><td>${t.location === "library" && !t.mounted_in ? `<button data-export="${esc(t.label)}">Export…</button>` : ""}</td></tr>`).join("")}</table>`;
  $("#label-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      const tapes = await api("/api/library/label", { count: Number(f.count.value), pool: f.pool.value || null });
      $("#result").innerHTML = `<span class="ok">Labelled ${tapes.map((t) => esc(t.label)).join(", ")}</span>`;
      renderLibrary();
    } catch (err) { $("#result").innerHTML = `<span class="bad">${esc(err.message)}</span>`; }
  };
  $("#import-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = e.target;
    const paths = f.paths.value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const r = await api("/api/library/import", { paths, pool: f.pool.value || null });
      $("#result").innerHTML = `<span class="ok">Imported ${r.tapes.map((t) => esc(t.label)).join(", ")}</span> ${r.notes.map(esc).join("; ")}`;
      renderLibrary();
    } catch (err) { $("#result").innerHTML = `<span class="bad">${esc(err.message)}</span>`; }
  };
}

document.addEventListener("click", async (e) => {
  const b = e.target.closest("[data-export]");
  if (!b) return;
  const dir = prompt(`Export tape ${b.dataset.export} to which directory (on the station)?`);
  if (!dir) return;
  try {
    await api("/api/library/export", { label: b.dataset.export, to_dir: dir });
    $("#result").innerHTML = `<span class="ok">Exported ${esc(b.dataset.export)} to ${esc(dir)}</span>`;
    renderLibrary();
  } catch (err) { $("#result").innerHTML = `<span class="bad">${esc(err.message)}</span>`; }
});

// ---- catalog ---------------------------------------------------------------

let searchTimer = null;
async function renderCatalog() {
  const q = $("#q").value;
  const r = await api(`/api/abs?q=${encodeURIComponent(q)}&limit=200`);
  $("#abs-list").innerHTML = `<p class="muted">${r.matching} ABSs match${r.matching > r.abs.length ? `, newest ${r.abs.length} shown` : ""}.</p>
    <table><tr><th class="num">ABS</th><th>object</th><th>level</th><th>state</th><th>point in time</th><th class="num">size</th><th class="num">data</th><th>chain</th><th>pool</th><th>copies</th><th>tapes</th><th>label</th></tr>
    ${r.abs.map((a) => `<tr class="click" data-abs="${a.abs_id}"><td class="num">${a.abs_id}</td><td>${esc(a.primary)}:${esc(a.object_name)}</td><td>${esc(a.level)}</td><td>${esc(a.state)}</td><td>${esc(a.point_in_time)}</td><td class="num">${bytes(a.object_size)}</td><td class="num">${bytes(a.data_bytes)}</td><td>${a.base_abs_id != null ? "on " + a.base_abs_id : "–"}</td><td>${esc(a.pool)}</td><td>${esc(a.copies.join(", ") || "–")}</td><td>${esc(a.tapes.join(", "))}</td><td>${esc(a.label)}</td></tr>`).join("")}</table>`;
}

async function showAbs(id) {
  const d = await api(`/api/abs/${id}`);
  const byTape = new Map();
  for (const s of d.segments) {
    const k = `${s.tape_label}|${s.pool}`;
    if (!byTape.has(k)) byTape.set(k, []);
    byTape.get(k).push(s);
  }
  const el = $("#abs-detail");
  el.innerHTML = `<h3>ABS ${d.abs.abs_id}: ${esc(d.abs.primary)}:${esc(d.abs.object_name)} (${esc(d.abs.level)}, ${esc(d.abs.state)})</h3>
    <p>Chain: ${d.chain.map((c) => `<a href="#catalog" data-abs="${c}">${c}</a>`).join(" → ")} · ${d.abs.segment_count} segments · ${bytes(d.abs.data_bytes)} of data · uuid ${esc(d.abs.uuid)}</p>
    <div id="tapes-drawn"></div>`;
  const drawn = $("#tapes-drawn");
  for (const [k, segs] of byTape) {
    const [label, pool] = k.split("|");
    const row = document.createElement("div");
    row.className = "tape-row";
    row.innerHTML = `<span class="label">${esc(label)}</span><span class="muted">${esc(pool)}</span>`;
    const bar = document.createElement("div");
    bar.className = "bar";
    for (const s of segs) {
      const b = document.createElement("div");
      b.className = "seg" + (s.copy ? " copy" : "") + (s.status === "damaged" ? " damaged" : "");
      b.style.flex = String(Math.max(1, s.bytes));
      b.title = `segment ${s.seq} · file ${s.tape_file} · ${bytes(s.bytes)} · ${s.track_count} tracks · ${s.status}${s.copy ? " · copy" : ""}`;
      b.textContent = s.seq;
      bar.appendChild(b);
    }
    row.appendChild(bar);
    drawn.appendChild(row);
  }
}

document.addEventListener("click", (e) => {
  const row = e.target.closest("[data-abs]");
  if (row) { e.preventDefault(); showAbs(row.dataset.abs).catch(showError); }
});
$("#q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => renderCatalog().catch(showError), 250); });

// ---- movers and nodes ------------------------------------------------------

async function renderPeers() {
  const p = await api("/api/peers");
  const heard = new Map(p.health.peers.map((x) => [x.name, x]));
  const doing = (name) => (p.channels[name] || []).map((id) => `<a href="#channels">${id}</a>`).join(", ") || "idle";
  const ver = (name) => esc((heard.get(name) || {}).version || "–");
  const hb = (name) => { const h = heard.get(name); return h ? (h.last_heard_ms / 1000).toFixed(1) + " s ago" : `<span class="bad">not heard</span>`; };
  $("#peers").innerHTML = `
    <p>Station ${esc(p.station_version)} · catalog: <b class="${p.health.catalog === "ok" ? "ok" : "bad"}">${esc(p.health.catalog)}</b> ${esc(p.health.catalog_detail)} · station up ${duration(p.health.uptime_seconds)} · ${p.health.channels} channels running</p>
    <h3>Data movers</h3>
    <table><tr><th>name</th><th>role</th><th>address</th><th>state</th><th>version</th><th>heartbeat</th><th>registered</th><th>channels</th></tr>
    ${p.movers.map((m) => `<tr><td>${esc(m.name)}</td><td>${esc(m.role)}</td><td>${esc(m.address)}</td><td>${esc(m.state)}</td><td>${ver(m.name)}</td><td>${hb(m.name)}</td><td>${esc(m.registered)}</td><td>${doing(m.name)}</td></tr>`).join("")}</table>
    <h3>Primary nodes</h3>
    <table><tr><th>name</th><th>volumes</th><th>target volumes</th><th>version</th><th>heartbeat</th><th>channels</th></tr>
    ${p.primaries.map((n) => `<tr><td>${esc(n.name)}</td><td>${esc(n.volumes.join(", "))}</td><td>${esc(n.target_volumes.join(", ") || "–")}</td><td>${ver(n.name)}</td><td>${hb(n.name)}</td><td>${doing(n.name)}</td></tr>`).join("")}</table>`;
}

// ---- navigation ------------------------------------------------------------

const VIEWS = { channels: () => renderChannels(), library: renderLibrary, catalog: renderCatalog, peers: renderPeers };
let refresh = null;
function show(view) {
  if (!VIEWS[view]) view = "channels";
  S.view = view;
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  Promise.resolve(VIEWS[view]()).catch(showError);
  // Drives and peers change with every channel; redraw them from the
  // stream's events, at most once a second.
  clearInterval(refresh);
  if (view === "library" || view === "peers") {
    let dirty = false;
    const mark = () => { dirty = true; };
    S.onChange = mark;
    refresh = setInterval(() => { if (dirty) { dirty = false; VIEWS[S.view]().catch(showError); } }, 1000);
  } else {
    S.onChange = null;
  }
}
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

show(location.hash.slice(1) || "channels");
connect();
