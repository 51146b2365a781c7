// The trouper dashboard: one WebSocket of frames (/dashboard/ws), drawn with
// plain DOM calls (names come from actors: never parsed as HTML). The server
// throttles frames; the page tells it which actors are expanded and
// acknowledges each frame it has drawn.
"use strict";

const TOKEN_KEY = "trouper-admin-token";
const FLASH_MS = 3000;
const MAX_EXPANDED = 32;  // the server's bound (observability/_dashview.py)
const $ = (sel) => document.querySelector(sel);
// Mounted under a prefix (e.g. /admin/dashboard), every URL keeps it.
const BASE = location.pathname.replace(/\/dashboard\/?$/, "");

let socket = null;
let frame = null;
let selected = null;  // {node, path}
const expanded = new Set();  // "node\u0000path"
const lastRestarts = new Map();  // "node\u0000path" -> restarts seen
const flashUntil = new Map();  // "node\u0000path" -> time the highlight ends
const seenNodes = new Map();  // node -> last known member entry
const rates = new Map();  // "node\u0000path" -> msg/s in the latest frame
const shown = new Map();  // "node\u0000path" -> the actor's entry in the latest frame

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const svgEl = (tag, attrs) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
};

const key = (node, path) => node + "\u0000" + path;
const shortClass = (cls) => (cls || "").split(".").pop();
const fmtRate = (r) => (r >= 100 ? Math.round(r) : r >= 1 ? r.toFixed(1) : r ? r.toFixed(2) : "0");

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}${BASE}/dashboard/ws`);
  socket.onopen = () => { setStatus("live", "up"); sendExpanded(); };
  socket.onmessage = (event) => {
    frame = JSON.parse(event.data);
    render();
    // Drawn: the server sends the next frame only after this one is acknowledged.
    socket.send(JSON.stringify({ ack: frame.seq }));
  };
  socket.onclose = () => { setStatus("disconnected", "down"); setTimeout(connect, 1000); };
}

function setStatus(text, cls) {
  const status = $("#status");
  status.textContent = text;
  status.className = "status-" + cls;
}

function sendExpanded() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const pairs = [...expanded].slice(0, MAX_EXPANDED).map((k) => k.split("\u0000"));
  socket.send(JSON.stringify({ expand: pairs }));
}

function toggle(node, path) {
  const k = key(node, path);
  if (expanded.has(k)) expanded.delete(k);
  else if (expanded.size < MAX_EXPANDED) expanded.add(k);
  sendExpanded();
  render();
}

function noteRestarts(node, path, restarts, now) {
  const k = key(node, path);
  const before = lastRestarts.get(k);
  if (before !== undefined && restarts > before) flashUntil.set(k, now + FLASH_MS);
  lastRestarts.set(k, restarts);
  return (flashUntil.get(k) || 0) > now;
}

function render() {
  if (!frame) return;
  const now = Date.now();
  $("#self").textContent = frame.node;
  const error = $("#error");
  error.hidden = !frame.error;
  error.textContent = frame.error || "";
  const views = new Map(frame.nodes.map((n) => [n.node, n]));
  shown.clear();
  for (const member of frame.members) seenNodes.set(member.node, member);
  const listed = new Set(frame.members.map((m) => m.node));
  for (const [node, member] of seenNodes) {
    if (!listed.has(node)) seenNodes.set(node, { ...member, status: "gone", connected: false });
  }
  const total = frame.nodes.reduce((sum, n) => sum + (n.rate || 0), 0);
  $("#rate").textContent = `${fmtRate(total)} msg/s`;
  renderMembers(views);
  renderLinks();
  renderTrees(views, now);
  renderLetters();
  renderActions();
  refreshDetail();
}

function refreshDetail() {
  // The selected actor's live fields follow the frames between two fetches.
  const entry = selected && shown.get(key(selected.node, selected.path));
  if (!entry) return;
  for (const field of ["state", "restarts", "mailbox_depth", "children_total"]) {
    const cell = $("#detail .f-" + field);
    if (cell) cell.textContent = entry[field];
  }
  const rate = $("#detail .f-rate");
  if (rate) rate.textContent = fmtRate(entry.rate || 0);
}

function renderMembers(views) {
  const rows = [...seenNodes.values()].map((m) => {
    const view = views.get(m.node) || {};
    return el("tr", { dataset: { node: m.node } },
      el("td", {}, m.node),
      el("td", { class: "status status-" + m.status }, m.status),
      el("td", { class: "phi" }, m.phi === null || m.phi === undefined ? "-" : m.phi.toFixed(2)),
      el("td", { class: "rtt" }, m.rtt_seconds ? (m.rtt_seconds * 1000).toFixed(2) + " ms" : "-"),
      el("td", {}, view.rate === undefined ? "-" : fmtRate(view.rate)));
  });
  $("#members tbody").replaceChildren(...rows);
}

function renderLinks() {
  const svg = $("#links");
  const nodes = [...seenNodes.values()];
  const pos = new Map();
  nodes.forEach((m, i) => {
    const angle = (2 * Math.PI * i) / Math.max(nodes.length, 1) - Math.PI / 2;
    const r = nodes.length > 1 ? 70 : 0;
    pos.set(m.node, [120 + r * Math.cos(angle), 95 + r * Math.sin(angle)]);
  });
  const shapes = [];
  for (const [a, b] of frame.links) {
    if (!pos.has(a) || !pos.has(b)) continue;
    const [x1, y1] = pos.get(a);
    const [x2, y2] = pos.get(b);
    shapes.push(svgEl("line", { x1, y1, x2, y2, "data-link": `${a} ${b}` }));
  }
  for (const m of nodes) {
    const [cx, cy] = pos.get(m.node);
    const fill = m.status === "up" ? "var(--up)" : m.status === "suspect" ? "var(--warn)" : "var(--down)";
    shapes.push(svgEl("circle", { cx, cy, r: 12, fill, "data-node": m.node }));
    const label = svgEl("text", { x: cx, y: cy + 26 });
    label.textContent = m.node;
    shapes.push(label);
  }
  svg.replaceChildren(...shapes);
}

function renderTrees(views, now) {
  const sections = [...seenNodes.values()].map((m) => {
    const view = views.get(m.node) || { node: m.node, status: m.status };
    const status = view.roots ? "up" : m.status === "up" ? view.status : m.status;
    const head = el("h3", {},
      el("span", {}, m.node),
      el("span", { class: "status status-" + status }, status),
      view.stats ? el("span", {}, `${view.stats.actors} actors`) : null,
      view.rate !== undefined ? el("span", {}, `${fmtRate(view.rate)} msg/s`) : null);
    const tree = el("div", { class: "tree" });
    if (view.roots) {
      for (const root of view.roots) renderEntry(tree, view, root, 0, true, now);
    } else if (view.error) {
      tree.append(el("p", { class: "hint" }, view.error));
    }
    return el("div", { class: "node" + (status === "up" ? "" : " down"), dataset: { node: m.node } },
      head, tree);
  });
  $("#trees").replaceChildren(...sections);
}

function renderEntry(into, view, entry, depth, isRoot, now) {
  const node = view.node;
  const k = key(node, entry.path);
  const open = isRoot || expanded.has(k);
  const listing = isRoot ? entry : (view.expanded || {})[entry.path];
  const flash = noteRestarts(node, entry.path, entry.restarts, now);
  const isSelected = selected && selected.node === node && selected.path === entry.path;
  const row = el("div", {
    class: "row actor" + (flash ? " restarted" : "") + (isSelected ? " selected" : ""),
    dataset: { node, path: entry.path, state: entry.state },
    onclick: () => select(node, entry.path),
  },
    el("span", { class: "name", style: `padding-left:${depth * 14}px` },
      el("span", {
        class: "toggle",
        onclick: (ev) => { ev.stopPropagation(); if (!isRoot && entry.children_total) toggle(node, entry.path); },
      }, entry.children_total ? (open ? "\u25be" : "\u25b8") : ""),
      isRoot ? entry.path : entry.name || entry.path.split("/").pop(),
      el("span", { class: "cls" }, shortClass(entry.class))),
    el("span", {}, el("span", { class: "state " + entry.state }, entry.state)),
    el("span", { class: "restarts" }, entry.restarts),
    mailboxBar(entry.mailbox_depth),
    el("span", { class: "rate", title: "messages per second" }, fmtRate(entry.rate || 0)));
  rates.set(k, entry.rate || 0);
  shown.set(k, entry);
  into.append(row);
  if (open && listing) {
    for (const child of listing.children) renderEntry(into, view, child, depth + 1, false, now);
    for (const group of listing.more) renderGroup(into, view, entry.path, group, depth + 1, now);
  } else if (entry.more) {
    for (const group of entry.more) renderGroup(into, view, entry.path, group, depth + 1, now);
  }
}

function renderGroup(into, view, parent, group, depth, now) {
  const flash = noteRestarts(view.node, parent + "\u0000" + group.class, group.restarts, now);
  const states = Object.entries(group.states).map(([s, n]) => `${n} ${s}`).join(", ");
  into.append(el("div", {
    class: "row group" + (flash ? " restarted" : ""),
    dataset: { node: view.node, parent, class: group.class },
    onclick: () => toggle(view.node, parent),
  },
    el("span", { class: "name", style: `padding-left:${depth * 14}px` },
      el("span", { class: "toggle" }, "\u00d7"),
      `${group.count.toLocaleString()} ${shortClass(group.class)}`,
      el("span", { class: "cls" }, states)),
    el("span", {}, ""),
    el("span", { class: "restarts" }, group.restarts),
    mailboxBar(group.mailbox_depth_max, `sum ${group.mailbox_depth}, max ${group.mailbox_depth_max}`),
    el("span", { class: "rate", title: "messages per second, all of them" }, fmtRate(group.rate || 0))));
}

function mailboxBar(depth, title) {
  // A log scale: 1 message shows, 10,000 fills the bar.
  const width = depth > 0 ? Math.min(100, 25 * Math.log10(depth + 1)) : 0;
  return el("span", { class: "bar", title: title || `mailbox ${depth}`, dataset: { depth } },
    el("i", { style: `width:${width}%` }));
}

function renderLetters() {
  const letters = frame.deadletters.map((d) => el("li", {},
    `${new Date(d.time * 1000).toLocaleTimeString()} ${d.node} ${d.recipient} `,
    el("b", {}, d.message_type), ` ${d.reason}`));
  $("#deadletters").replaceChildren(...letters);
  const count = frame.nodes.reduce((sum, n) => sum + (n.dead_letters || 0), 0);
  $("#dead-count").textContent = `(${count})`;
}

async function select(node, path) {
  if (!selected || selected.node !== node || selected.path !== path) {
    $("#action-result").textContent = "";  // it told of another actor
  }
  selected = { node, path };
  render();
  const reply = await fetch(`${BASE}/api/actors${path}?node=${encodeURIComponent(node)}`);
  const body = await reply.json();
  if (!selected || selected.node !== node || selected.path !== path) return;
  const rows = reply.ok
    ? ["node", "path", "class", "state", "restarts", "mailbox_depth", "children_total", "uid"]
        .map((f) => el("tr", {}, el("td", {}, f), el("td", { class: "f-" + f }, body[f])))
    : [el("tr", {}, el("td", {}, "error"), el("td", {}, body.message))];
  const view = frame && frame.nodes.find((n) => n.node === node);
  const classRate = view && view.classes ? view.classes[body.class] || 0 : 0;
  rows.push(el("tr", {}, el("td", {}, "msg/s"), el("td", { class: "f-rate" }, fmtRate(rates.get(key(node, path)) || 0))));
  rows.push(el("tr", {}, el("td", {}, "class msg/s"), el("td", {}, fmtRate(classRate))));
  $("#detail").replaceChildren(el("table", {}, ...rows));
  renderActions();
}

function renderActions() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const usable = Boolean(selected && token && frame && frame.actions);
  for (const id of ["stop", "kill", "restart"]) $("#" + id).disabled = !usable;
  $("#token-state").textContent = !frame || frame.actions
    ? (token ? "token set" : "read-only: enter the token")
    : "read-only endpoint";
}

async function act(action) {
  if (!selected) return;
  const { node, path } = selected;
  const reply = await fetch(`${BASE}/api/actors${path}/${action}?node=${encodeURIComponent(node)}`, {
    method: "POST",
    headers: { authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
  });
  const body = await reply.json();
  $("#action-result").textContent = reply.ok ? `${action} ${path}: ok` : `${action} ${path}: ${body.message}`;
  if (reply.ok && action !== "stop") setTimeout(() => select(node, path), 300);
}

$("#save-token").addEventListener("click", () => {
  const value = $("#token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("#token").value = "";
  renderActions();
});
for (const id of ["stop", "kill", "restart"]) $("#" + id).addEventListener("click", () => act(id));
connect();
