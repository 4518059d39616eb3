// A room: its live chat, its members (the owner adds and removes them; who is online shows as
// a dot), its AI sessions, and, for the owner, renaming and deleting it and whether
// `@AI_Assistant` answers in its chat. What happens outside the chat (members, sessions,
// presence, renames) comes from `/ws/me/` (workspace.js).
//
// What the reader has not read: the room's JSON says how far they had read; the first message
// after that gets a "New messages" line and the page opens there, and what comes on screen
// while the page is visible moves the read marker forward. `live.unread` holds the counts
// (`atOpen`: unread when the page opened), and `live.onUnread(hook)` hears each change. With
// 10 or more unread at open, "Catch me up" offers to summarise them for the reader.
import { AiReplies } from "../ai_replies.js";
import { api } from "../api.js";
import { RoomBudget } from "../budget.js";
import { CatchUp } from "../catchup.js";
import { armConfirm, confirmButton } from "../confirm.js";
import { LiveConversation } from "../conversation.js";
import { $, h, pageData } from "../dom.js";
import { gettext } from "../i18n.js";
import { renderMarkdown } from "../markdown.js";
import { timeElement } from "../messages.js";
import { sentence } from "../notices.js";
import { RoomList, notificationOffer } from "../sidebar.js";
import { CLOSE } from "../socket.js";
import { workspace } from "../workspace.js";

const data = pageData();
const roomId = data.room_id;
const me = data.user.username;
let room = null;

const live = new LiveConversation({
  data,
  socketPath: `/ws/chat/${roomId}/`,
  historyPath: `/api/chat/rooms/${roomId}/messages/`,
  // Markdown, with the same safe renderer as the assistant's replies (markdown.js).
  renderBody: (msg) => h("div", { class: "md" }, renderMarkdown(msg.message)),
  goneText: gettext("This room no longer exists."),
});
new AiReplies(live);
const catchUp = new CatchUp(roomId);
live.on("chat_message", (frame) => frame.is_self && workspace?.shown(roomId, frame));
live.on("room_settings", (frame) => {
  if (!room) return;
  room.ai_mentions = frame.ai_mentions;
  renderMentions();
});
const notices = live.notices;
// Members and sessions may have changed while the socket was down.
live.onOpen((reconnect) => {
  if (reconnect) {
    refreshRoom();
    loadSessions();
  }
});
new RoomList($("#room-nav"), { current: roomId, emptyText: gettext("No rooms yet.") });
const offer = notificationOffer();
if (offer) $("#room-nav").before(offer);

// --- the room, its members ------------------------------------------------------------

function isOnline(name) {
  return workspace ? workspace.isOnline(name) : (room?.online || []).includes(name);
}

function presenceDot(name) {
  const online = isOnline(name);
  return h("span", { class: `dot${online ? " online" : ""}`, role: "img", "aria-label": online ? gettext("online") : gettext("offline"), title: online ? gettext("online") : gettext("offline") });
}

async function removeMember(name) {
  try {
    const result = await api(`/api/chat/rooms/${roomId}/participants/${encodeURIComponent(name)}/`, { method: "DELETE" });
    if (name === me) {
      window.location.assign("/rooms/");
      return;
    }
    showRoom(result.room);
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  }
}

function renderPeople() {
  const people = $("#people");
  const rows = [
    h("li", { class: "person", dataset: { name: room.owner } }, presenceDot(room.owner), h("span", { class: "name" }, room.owner), " ", h("span", { class: "badge" }, gettext("Owner")), room.owner === me ? h("span", { class: "muted" }, ` ${gettext("(you)")}`) : null),
  ];
  for (const name of room.participants) {
    let action = null;
    if (room.is_owner) action = confirmButton(gettext("Remove"), gettext("Remove %(name)s?", { name }), () => removeMember(name));
    else if (name === me) action = confirmButton(gettext("Leave room"), gettext("Leave for good?"), () => removeMember(name));
    rows.push(h("li", { class: "person", dataset: { name } }, presenceDot(name), h("span", { class: "name" }, name), name === me ? h("span", { class: "muted" }, ` ${gettext("(you)")}`) : null, action));
  }
  people.replaceChildren(...rows);
  $("#add-person").hidden = !room.is_owner;
  $("#room-settings").hidden = !room.is_owner;
}

// --- AI_Assistant in the room's chat -----------------------------------------------------

const mentionsBox = $("#ai-mentions");

function renderMentions() {
  $("#mentions-state").textContent = room.ai_mentions
    ? gettext("Mention @%(name)s in a message and it answers here, for everyone to see.", { name: data.ai_username })
    : gettext("@%(name)s does not answer in this room's chat (the owner turned it off).", { name: data.ai_username });
  $("#mentions-switch").hidden = !room.is_owner;
  mentionsBox.checked = room.ai_mentions;
}

mentionsBox.addEventListener("change", async () => {
  mentionsBox.disabled = true;
  try {
    showRoom((await api(`/api/chat/rooms/${roomId}/`, { method: "PATCH", body: { ai_mentions: mentionsBox.checked } })).room);
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  } finally {
    mentionsBox.disabled = false;
    renderMentions();
  }
});

function showRoom(fresh) {
  room = fresh;
  $("#room-title").textContent = room.name;
  if (workspace) workspace.setTitle(`${room.name} · ${gettext("Team chat")}`);
  else document.title = `${room.name} · ${gettext("Team chat")}`;
  const rename = $("#rename-room");
  if (document.activeElement !== rename.elements.name) rename.elements.name.value = room.name;
  live.setMembers([room.owner, ...room.participants]);
  renderPeople();
  renderMentions();
}

let firstRoom = null;
const roomLoaded = new Promise((resolve) => {
  firstRoom = resolve;
});

async function refreshRoom() {
  try {
    showRoom((await api(`/api/chat/rooms/${roomId}/`)).room);
    firstRoom(room);
  } catch (err) {
    if (err.status === 404) live.final(CLOSE.FORBIDDEN);
  }
}

const addForm = $("#add-person");
addForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = addForm.querySelector(".form-error");
  error.hidden = true;
  const username = addForm.username.value.trim();
  if (!username) return;
  try {
    showRoom((await api(`/api/chat/rooms/${roomId}/participants/`, { method: "POST", body: { username } })).room);
    addForm.username.value = "";
  } catch (err) {
    error.textContent =
      err.status === 404 ? gettext("There is no user named %(name)s.", { name: username }) : sentence(err.code, { message: err.message });
    error.hidden = false;
  }
});

// --- the owner's settings ---------------------------------------------------------------

const renameForm = $("#rename-room");
renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = renameForm.querySelector(".form-error");
  error.hidden = true;
  const name = renameForm.elements.name.value.trim();
  if (!name) {
    error.textContent = gettext("Give the room a name.");
    error.hidden = false;
    return;
  }
  try {
    showRoom((await api(`/api/chat/rooms/${roomId}/`, { method: "PATCH", body: { name } })).room);
    renameForm.elements.name.blur();
  } catch (err) {
    error.textContent = sentence(err.code, { message: err.message });
    error.hidden = false;
  }
});

armConfirm($("#delete-room"), gettext("Click again to delete the room for everyone"), async () => {
  try {
    await api(`/api/chat/rooms/${roomId}/`, { method: "DELETE" });
    window.location.assign("/rooms/");
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  }
});

// --- AI sessions -----------------------------------------------------------------------

let sessions = null;
let sessionsError = null;

function sessionItem(session) {
  const end = session.can_end
    ? confirmButton(gettext("End"), gettext("End it?"), async () => {
        try {
          await api(`/api/llm/sessions/${session.session_id}/deactivate/`, { method: "POST" });
        } catch (err) {
          notices.show(sentence(err.code, { message: err.message }));
        }
        await loadSessions();
      })
    : null;
  return h(
    "li",
    { class: `session${session.is_active ? "" : " ended"}`, dataset: { sessionId: session.session_id } },
    h("a", { href: `/ai/${session.session_id}/` }, session.title || gettext("AI session"), " ", timeElement(session.created_at)),
    h(
      "span",
      { class: "session-meta" },
      h("span", { class: `badge ${session.is_active ? "on" : "off"}` }, session.is_active ? gettext("Active") : gettext("Ended")),
      " ",
      gettext("started by %(name)s", { name: session.created_by }),
    ),
    end,
  );
}

function renderSessions() {
  const list = $("#sessions");
  list.setAttribute("aria-busy", "false");
  if (sessionsError) {
    list.replaceChildren(h("li", { class: "form-error" }, sessionsError));
  } else if (sessions && !sessions.length) {
    list.replaceChildren(h("li", { class: "empty" }, gettext("No AI sessions yet. Start one to ask AI_Assistant together.")));
  } else if (sessions) {
    list.replaceChildren(...sessions.map(sessionItem));
  }
}

async function loadSessions() {
  try {
    sessions = (await api("/api/llm/sessions/", { query: { room_uuid: roomId } })).sessions;
    sessionsError = null;
  } catch (err) {
    sessionsError = sentence(err.code, { message: err.message });
  }
  renderSessions();
}

// A session started, ended or changed: the event carries it, as the list shows it.
function sessionEvent(session) {
  if (sessions === null) return;
  const others = sessions.filter((s) => s.session_id !== session.session_id);
  sessions = [session, ...others].sort((a, b) => b.created_at.localeCompare(a.created_at));
  renderSessions();
}

const startButton = $("#start-session");
startButton.addEventListener("click", async () => {
  const error = $("#session-error");
  error.hidden = true;
  startButton.disabled = true;
  try {
    const result = await api("/api/llm/start_session/", { method: "POST", body: { room_uuid: roomId } });
    window.location.assign(`/ai/${result.session_id}/`);
  } catch (err) {
    error.textContent = sentence(err.code, { message: err.message });
    error.hidden = false;
    startButton.disabled = false;
  }
});

// --- what happens outside the chat -------------------------------------------------------

if (workspace) {
  workspace.on((event) => {
    if (event.type === "reconnected") {
      refreshRoom();
      loadSessions();
      return;
    }
    if (event.type === "presence" && room) {
      renderPeople();
      return;
    }
    if (event.room_id !== roomId && event.room?.id !== roomId && event.session?.room_uuid !== roomId) return;
    if (event.type === "room_updated") showRoom(event.room);
    else if (event.type === "member_added" || event.type === "member_removed") refreshRoom();
    else if (event.type.startsWith("session_")) sessionEvent(event.session);
    else if (event.type === "read") live.setUnread({ count: event.unread_count, lastReadId: event.last_read_message_id });
    else if (event.type === "room_changed") live.setUnread({ count: event.unread_count });
  });
}

// --- reading ---------------------------------------------------------------------------

let readUpTo = 0;
let readTimer = null;
// Until the page has opened at the first unread message, what flashes past is not read.
let opened = false;

function markRead(messageId) {
  if (!opened || document.visibilityState !== "visible" || messageId <= Math.max(readUpTo, live.unread.lastReadId)) return;
  readUpTo = messageId;
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    try {
      const state = await api(`/api/chat/rooms/${roomId}/read/`, { method: "POST", body: { message_id: readUpTo } });
      live.setUnread({ count: state.unread_count, lastReadId: state.last_read_message_id });
    } catch {
      readUpTo = live.unread.lastReadId;
    }
  }, 400);
}

live.list.onSeen((messageId) => markRead(messageId));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    markRead(live.list.newestOnScreen());
    budget.load();
  }
});

// The first history and the room's JSON: open at the first unread message, if any.
live.onSynced(async (first) => {
  if (!first) return;
  const atOpen = await roomLoaded;
  catchUp.offer(atOpen);
  live.setUnread({ atOpen: atOpen.unread_count, count: atOpen.unread_count, lastReadId: atOpen.last_read_message_id });
  const from = atOpen.unread_count > 0 ? live.list.markUnreadAfter(atOpen.last_read_message_id) : null;
  if (from) from.scrollIntoView({ block: "start" });
  opened = true;
  markRead(live.list.newestOnScreen());
});

const budget = new RoomBudget($("#room-budget"), roomId, { editable: true });

live.start();
refreshRoom();
loadSessions();
budget.load();
