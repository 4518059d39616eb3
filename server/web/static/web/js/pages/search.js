// Search the messages of my rooms (SPEC 9.4): results newest first, the matched parts marked,
// each opening its conversation at the message. The server sends each result's text in runs
// (`parts`) with the matched ones flagged; they become text nodes and <mark> elements, never
// HTML, so a message's text can never become markup here.
import { api } from "../api.js";
import { $, h } from "../dom.js";
import { gettext } from "../i18n.js";
import { timeElement } from "../messages.js";
import { sentence } from "../notices.js";

const QUERY_MIN = 2;
// How much of a long message a result shows, around its first match.
const SNIPPET_CHARS = 280;
const LEAD_CHARS = 80;

const form = $("#search-form");
const input = $("#search-q");
const roomSelect = $("#search-room");
const results = $("#results");
const status = $("#search-status");
const error = $("#search-error");
const more = $("#more");
let current = null;

function conversationUrl(hit) {
  const base = hit.session_id ? `/ai/${hit.session_id}/` : `/rooms/${hit.room_id}/`;
  return `${base}?message=${hit.message_id}`;
}

// The runs of a message cut to a window around its first match, with … where text was left out.
function snippet(parts, size = SNIPPET_CHARS) {
  const total = parts.reduce((n, p) => n + p.text.length, 0);
  let start = 0;
  if (total > size) {
    let at = 0;
    for (const part of parts) {
      if (part.match) {
        start = Math.max(0, Math.min(at - LEAD_CHARS, total - size));
        break;
      }
      at += part.text.length;
    }
  }
  const end = Math.min(total, start + size);
  const nodes = start > 0 ? ["…"] : [];
  let at = 0;
  for (const part of parts) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + part.text.length);
    if (from < to) {
      const text = part.text.slice(from - at, to - at);
      nodes.push(part.match ? h("mark", {}, text) : text);
    }
    at += part.text.length;
  }
  if (end < total) nodes.push("…");
  return nodes;
}

function resultItem(hit) {
  const where = hit.session_id ? gettext("AI session in %(room)s", { room: hit.room_name }) : hit.room_name;
  return h(
    "li",
    { class: "result", dataset: { messageId: hit.message_id } },
    h(
      "a",
      { href: conversationUrl(hit), class: "result-link" },
      h("span", { class: "result-meta" }, h("span", { class: "result-where" }, where), " · ", h("span", { class: "author" }, hit.username), " · ", timeElement(hit.timestamp), hit.edited_at ? ` · ${gettext("edited")}` : ""),
      h("span", { class: `result-text${hit.is_ai ? " ai" : ""}` }, snippet(hit.parts)),
    ),
  );
}

async function run({ q, room, before }) {
  error.hidden = true;
  more.hidden = true;
  if (!before) results.replaceChildren();
  if (q.length < QUERY_MIN) {
    status.textContent = q ? gettext("Type at least %(count)s characters.", { count: QUERY_MIN }) : gettext("Type what to look for, then press Enter.");
    return;
  }
  status.textContent = gettext("Searching…");
  const token = {};
  current = token;
  try {
    const data = await api("/api/chat/search/", { query: { q, room_uuid: room, before } });
    if (current !== token) return;
    results.append(...data.results.map(resultItem));
    const shown = results.children.length;
    status.textContent = shown ? "" : gettext("No message matches “%(q)s”.", { q });
    if (data.has_more && data.results.length) {
      more.hidden = false;
      more.onclick = () => run({ q, room, before: data.results[data.results.length - 1].message_id });
    }
  } catch (err) {
    if (current !== token) return;
    status.textContent = "";
    error.textContent = sentence(err.code, { message: err.message });
    error.hidden = false;
  }
}

function fromUrl() {
  const params = new URLSearchParams(window.location.search);
  return { q: (params.get("q") || "").trim(), room: params.get("room") || "" };
}

// Whether the reader searched already: then the search the page starts with is theirs, not
// the address's (the rooms list may still be loading when they press Enter).
let asked = false;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  asked = true;
  const q = input.value.trim();
  const room = roomSelect.value;
  const url = new URL(window.location.href);
  url.search = "";
  if (q) url.searchParams.set("q", q);
  if (room) url.searchParams.set("room", room);
  window.history.replaceState(null, "", url);
  run({ q, room });
});

async function loadRooms(selected) {
  try {
    const data = await api("/api/chat/my-rooms/");
    roomSelect.append(...data.rooms.map((room) => h("option", { value: room.id }, room.name)));
    roomSelect.value = data.rooms.some((room) => room.id === selected) ? selected : "";
  } catch {
    // Searching all rooms still works without the list.
  }
}

const start = fromUrl();
input.value = start.q;
input.focus();
await loadRooms(start.room);
if (!asked) run({ q: start.q, room: roomSelect.value });
