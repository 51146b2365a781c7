// The collaborative editor's page: one Yjs document per address (#doc),
// edited in CodeMirror 6, synced with the server over the standard Yjs
// WebSocket protocol (y-websocket's client), with the others' cursors and
// names from Yjs awareness. The sidebar lists documents and the named
// snapshots (history) of the open one, through the state-sync service's
// HTTP routes. Bundled by esbuild at `make` time (make collab-assets).
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { yCollab } from "y-codemirror.next";
import { EditorView, basicSetup } from "codemirror";
import { EditorState } from "@codemirror/state";

// The colours a user can get (from a hash of the name): readable on white,
// with a light variant for the selection.
const COLOURS = [
  ["#30bced", "#30bced33"],
  ["#6eeb83", "#6eeb8333"],
  ["#e0a100", "#e0a10033"],
  ["#ee6352", "#ee635233"],
  ["#9ac2c9", "#9ac2c933"],
  ["#8acb88", "#8acb8833"],
  ["#c774e8", "#c774e833"],
  ["#1be7ff", "#1be7ff33"],
];
// The server's id format for documents (the state-sync directory refuses others).
const DOC_ID = /^[A-Za-z0-9._-]{1,128}$/;
// A name is shown as typed, cut to this many characters (the server bounds it too).
const MAX_NAME = 40;

const $ = (id) => document.getElementById(id);

function colourOf(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return COLOURS[h % COLOURS.length];
}

function currentDoc() {
  const id = decodeURIComponent(location.hash.replace(/^#/, "")) || "welcome";
  return DOC_ID.test(id) ? id : "welcome";
}

function initialName() {
  const asked = new URLSearchParams(location.search).get("user");
  const kept = localStorage.getItem("collab-user");
  const name = (asked || kept || `guest-${Math.floor(Math.random() * 9000 + 1000)}`).slice(
    0,
    MAX_NAME,
  );
  localStorage.setItem("collab-user", name);
  return name;
}

function showError(text) {
  $("error").textContent = text || "";
}

// The sidebar calls the node the WebSocket edits through: the page's own
// node, or after a failover the gateway it moved to (the cluster's gateways
// let each other in as CORS origins).
function apiBase() {
  const url = state.provider ? state.provider.serverUrl.replace(/^ws/, "http") : "";
  return url === location.origin ? "" : url;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(apiBase() + path, init);
  const text = await answer.text();
  const data = text ? JSON.parse(text) : null;
  if (!answer.ok) {
    throw new Error((data && data.message) || `${method} ${path}: ${answer.status}`);
  }
  return data;
}

// The answer of a list route: a plain list, or the list under one key.
function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

const state = {
  user: initialName(),
  docId: null,
  ydoc: null,
  provider: null,
  view: null,
};
// Tests and the console reach the live objects here.
window.collab = state;

function renderPresence() {
  const list = $("presence");
  list.replaceChildren();
  const provider = state.provider;
  if (!provider) return;
  const seen = [];
  for (const [clientId, s] of provider.awareness.getStates()) {
    if (!s || !s.user || typeof s.user.name !== "string") continue;
    seen.push({ me: clientId === provider.awareness.clientID, user: s.user });
  }
  seen.sort((a, b) => (a.me ? -1 : b.me ? 1 : a.user.name.localeCompare(b.user.name)));
  for (const { me, user } of seen) {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = String(user.color || "#999");
    li.append(dot, document.createTextNode(user.name.slice(0, MAX_NAME) + (me ? " (you)" : "")));
    li.dataset.name = user.name;
    if (me) li.className = "me";
    list.append(li);
  }
}

function setStatus(text) {
  $("status").textContent = text;
  $("status").className = text;
}

// Failover: every collab node's gateway (GET /api/gateways, learned while this
// page's node is up). After FAILOVER_AFTER closes in a row without a connection,
// the WebSocket moves to the next gateway; the document goes on there (its
// owner is re-created from the store if it was on the node that died). The
// sidebar's HTTP calls follow it (apiBase), and reload once it is connected.
const FAILOVER_AFTER = 2;
const GATEWAYS_EVERY_MS = 15000;
const gateways = { urls: [], closes: 0, moved: false };
state.gateways = gateways; // for tests and the console

async function refreshGateways() {
  try {
    const urls = listOf(await api("GET", "/api/gateways"), "gateways");
    if (urls.length) gateways.urls = urls.map((u) => u.replace(/^http/, "ws"));
  } catch (err) {
    // This node may be the one that is down: keep the list learned before.
  }
}

function failOver(provider) {
  gateways.closes += 1;
  if (gateways.closes < FAILOVER_AFTER || gateways.urls.length < 2) return;
  gateways.closes = 0;
  const here = gateways.urls.indexOf(provider.serverUrl);
  provider.serverUrl = gateways.urls[(here + 1) % gateways.urls.length];
  gateways.moved = true;
  $("server").textContent = provider.serverUrl.replace(/^ws/, "http");
}

function open(docId) {
  const server = state.provider ? state.provider.serverUrl : null;
  if (state.provider) {
    state.provider.destroy();
    state.view.destroy();
    state.ydoc.destroy();
  }
  state.docId = docId;
  $("doc-title").textContent = docId;
  const ydoc = new Y.Doc();
  const ytext = ydoc.getText("content");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // After a failover, another document opens on the gateway moved to.
  const base = server || `${scheme}://${location.host}`;
  // y-websocket builds serverUrl/roomname?params: /ws?doc=..&user=..
  const provider = new WebsocketProvider(base, "ws", ydoc, {
    params: { doc: docId, user: state.user },
    disableBc: true, // every tab goes through the server, as a second browser would
  });
  const [color, light] = colourOf(state.user);
  provider.awareness.setLocalStateField("user", { name: state.user, color, colorLight: light });
  provider.on("status", ({ status }) => {
    if (status === "connected") {
      gateways.closes = 0;
      if (gateways.moved) {
        gateways.moved = false;
        refreshGateways();
        refreshDocs();
        refreshHistory();
        refreshStats();
      }
    }
    setStatus(status);
  });
  provider.on("connection-close", () => failOver(provider));
  $("server").textContent = provider.serverUrl.replace(/^ws/, "http");
  provider.on("sync", (synced) => {
    if (synced) setStatus("connected");
  });
  provider.awareness.on("change", () => {
    renderPresence();
    statsSoon();
  });
  ydoc.on("update", statsSoon);
  const view = new EditorView({
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        basicSetup,
        EditorView.lineWrapping,
        yCollab(ytext, provider.awareness, { undoManager: new Y.UndoManager(ytext) }),
      ],
    }),
    parent: $("editor"),
  });
  Object.assign(state, { ydoc, ytext, provider, view });
  renderPresence();
  refreshDocs();
  refreshHistory();
  refreshStats();
}

async function refreshDocs() {
  try {
    const docs = listOf(await api("GET", "/api/docs"), "documents");
    const ul = $("docs");
    ul.replaceChildren();
    const ids = docs.map((d) => (typeof d === "string" ? d : d.id)).filter(Boolean);
    if (!ids.includes(state.docId)) ids.unshift(state.docId);
    for (const id of ids) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `#${encodeURIComponent(id)}`;
      a.textContent = id;
      if (id === state.docId) li.className = "active";
      li.append(a);
      ul.append(li);
    }
  } catch (err) {
    showError(`documents: ${err.message}`);
  }
}

async function refreshHistory() {
  const docId = state.docId;
  try {
    const path = `/api/docs/${encodeURIComponent(docId)}/snapshots`;
    const snaps = listOf(await api("GET", path), "snapshots");
    if (docId !== state.docId) return;
    const ul = $("history");
    ul.replaceChildren();
    for (const snap of snaps) {
      const name = typeof snap === "string" ? snap : snap.name;
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = snap.version !== undefined ? `${name} (v${snap.version})` : name;
      const restore = document.createElement("button");
      restore.textContent = "restore";
      restore.className = "restore";
      restore.dataset.name = name;
      restore.onclick = () => restoreSnapshot(name);
      li.append(label, restore);
      ul.append(li);
    }
  } catch (err) {
    // A document nobody saved yet has no history: an empty list, not an error.
    $("history").replaceChildren();
  }
}

// The document's statistics (the state-sync service's), refreshed while open,
// and soon after edits (at most once per STATS_AFTER_EDIT_MS).
const STATS_EVERY_MS = 5000;
const STATS_AFTER_EDIT_MS = 1000;
let statsPending = false;

function statsSoon() {
  if (statsPending) return;
  statsPending = true;
  setTimeout(() => {
    statsPending = false;
    refreshStats();
  }, STATS_AFTER_EDIT_MS);
}

async function refreshStats() {
  const docId = state.docId;
  try {
    const s = await api("GET", `/api/docs/${encodeURIComponent(docId)}/stats`);
    if (docId !== state.docId || !s) return;
    const rate = Number(s.updates_per_second || 0).toFixed(1);
    const where = s.node ? ` · on node ${s.node}` : "";
    $("stats").textContent =
      `version ${s.version} · ${s.size} bytes · ${s.editors} editing · ${rate} updates/s${where}`;
  } catch (err) {
    $("stats").textContent = "";
  }
}

async function saveSnapshot(event) {
  event.preventDefault();
  const name = $("snapshot-name").value.trim();
  if (!name) return;
  try {
    await api("POST", `/api/docs/${encodeURIComponent(state.docId)}/snapshots`, { name });
    $("snapshot-name").value = "";
    showError("");
    await refreshHistory();
  } catch (err) {
    showError(`save: ${err.message}`);
  }
}

async function restoreSnapshot(name) {
  const doc = encodeURIComponent(state.docId);
  try {
    await api("POST", `/api/docs/${doc}/snapshots/${encodeURIComponent(name)}/restore`);
    showError("");
  } catch (err) {
    showError(`restore: ${err.message}`);
  }
}

async function createDoc(event) {
  event.preventDefault();
  const id = $("new-doc").value.trim();
  if (!DOC_ID.test(id)) {
    showError("a document id is 1 to 128 of A-Z a-z 0-9 . _ -");
    return;
  }
  try {
    await api("POST", "/api/docs", { id, title: id });
    $("new-doc").value = "";
    showError("");
    location.hash = `#${encodeURIComponent(id)}`;
  } catch (err) {
    showError(`create: ${err.message}`);
  }
}

function rename(event) {
  event.preventDefault();
  const name = $("user").value.trim().slice(0, MAX_NAME);
  if (!name || name === state.user) return;
  state.user = name;
  localStorage.setItem("collab-user", name);
  const [color, light] = colourOf(name);
  if (state.provider) {
    state.provider.params.user = name; // the next connection's session
    state.provider.awareness.setLocalStateField("user", { name, color, colorLight: light });
  }
}

$("user").value = state.user;
$("user-form").addEventListener("submit", rename);
$("user").addEventListener("change", rename);
$("new-doc-form").addEventListener("submit", createDoc);
$("snapshot-form").addEventListener("submit", saveSnapshot);
$("refresh-history").addEventListener("click", refreshHistory);
window.addEventListener("hashchange", () => {
  if (currentDoc() !== state.docId) open(currentDoc());
});
setInterval(refreshStats, STATS_EVERY_MS);
setInterval(refreshGateways, GATEWAYS_EVERY_MS);
refreshGateways();
open(currentDoc());
