// A room: its live chat, its members (the owner adds and removes them) and its AI sessions.
// `@AI_Assistant` in a message asks the assistant, which answers in the room (unless the owner
// turned that off); with many messages unread, "Catch me up" summarises them for the reader.
import { AiReplies } from "../ai_replies.js";
import { api } from "../api.js";
import { RoomBudget } from "../budget.js";
import { CatchUp } from "../catchup.js";
import { confirmButton } from "../confirm.js";
import { LiveConversation } from "../conversation.js";
import { $, h, pageData } from "../dom.js";
import { gettext } from "../i18n.js";
import { renderMarkdown, renderPlain } from "../markdown.js";
import { timeElement } from "../messages.js";
import { sentence } from "../notices.js";
import { CLOSE } from "../socket.js";

const data = pageData();
const roomId = data.room_id;
const me = data.user.username;
let room = null;

const live = new LiveConversation({
  data,
  socketPath: `/ws/chat/${roomId}/`,
  historyPath: `/api/chat/rooms/${roomId}/messages/`,
  renderBody: (msg, isAi) => (isAi ? renderMarkdown(msg.message) : renderPlain(msg.message)),
  goneText: gettext("This room no longer exists."),
});
new AiReplies(live);
const catchUp = new CatchUp(roomId);
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

// --- members ---------------------------------------------------------------------------

async function removeMember(name) {
  try {
    const result = await api(`/api/chat/rooms/${roomId}/participants/${encodeURIComponent(name)}/`, { method: "DELETE" });
    if (name === me) {
      window.location.assign("/rooms/");
      return;
    }
    room = result.room;
    renderPeople();
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  }
}

function renderPeople() {
  const people = $("#people");
  const rows = [
    h("li", { class: "person" }, h("span", { class: "name" }, room.owner), " ", h("span", { class: "badge" }, gettext("Owner")), room.owner === me ? h("span", { class: "muted" }, ` ${gettext("(you)")}`) : null),
  ];
  for (const name of room.participants) {
    let action = null;
    if (room.is_owner) action = confirmButton(gettext("Remove"), gettext("Remove %(name)s?", { name }), () => removeMember(name));
    else if (name === me) action = confirmButton(gettext("Leave room"), gettext("Leave for good?"), () => removeMember(name));
    rows.push(h("li", { class: "person" }, h("span", { class: "name" }, name), name === me ? h("span", { class: "muted" }, ` ${gettext("(you)")}`) : null, action));
  }
  people.replaceChildren(...rows);
  $("#add-person").hidden = !room.is_owner;
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
    room = (await api(`/api/chat/rooms/${roomId}/`, { method: "PATCH", body: { ai_mentions: mentionsBox.checked } })).room;
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  } finally {
    mentionsBox.disabled = false;
    renderMentions();
  }
});

async function refreshRoom() {
  try {
    room = (await api(`/api/chat/rooms/${roomId}/`)).room;
    renderPeople();
    renderMentions();
    catchUp.offer(room);
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
    room = (await api(`/api/chat/rooms/${roomId}/participants/`, { method: "POST", body: { username } })).room;
    addForm.username.value = "";
    renderPeople();
  } catch (err) {
    error.textContent =
      err.status === 404 ? gettext("There is no user named %(name)s.", { name: username }) : err.code === "validation_error" ? err.message : sentence(err.code, { message: err.message });
    error.hidden = false;
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
    list.replaceChildren(h("li", { class: "empty" }, gettext("No AI sessions yet.")));
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

// Others start and end sessions too: refresh the list when the page comes back into view.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    loadSessions();
    budget.load();
  }
});
setInterval(() => {
  if (document.visibilityState === "visible") loadSessions();
}, 30000);

const budget = new RoomBudget($("#room-budget"), roomId, { editable: true });

live.start();
refreshRoom();
loadSessions();
budget.load();
