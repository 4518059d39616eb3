// A room: its live chat, its members (the owner adds and removes them) and its AI sessions.
import { api, toSignIn } from "../api.js";
import { $, h, pageData } from "../dom.js";
import { gettext } from "../i18n.js";
import { renderPlain } from "../markdown.js";
import { Notices, sentence } from "../notices.js";
import { CLOSE, LiveSocket } from "../socket.js";
import { Composer, Conversation, REFUSED_SEND_CODES, connectionLabel, timeElement } from "../conversation.js";

const data = pageData();
const roomId = data.room_id;
const me = data.user.username;
const notices = new Notices($("#notices"));
const status = $("#conn-status");
let room = null;

const conversation = new Conversation({
  list: $("#messages"),
  tail: $("#tail"),
  scroller: $("#scroller"),
  olderButton: $("#load-older"),
  historyPath: `/api/chat/rooms/${roomId}/messages/`,
  me,
  aiName: data.ai_username,
  renderBody: (msg) => renderPlain(msg.message),
});

const composer = new Composer({
  form: $("#composer"),
  input: $("#message-input"),
  sendButton: $("#send-button"),
  counter: $("#char-counter"),
  max: data.max_message_chars,
  onSend: (text) => transmit(conversation.addPending(text), text),
});

function transmit(clientId, text) {
  if (socket.send({ type: "chat_message", message: text, client_id: clientId })) conversation.markSent(clientId);
}
conversation.onResend = transmit;

async function syncAndFlush() {
  try {
    await conversation.sync();
  } catch (err) {
    if (err.status === 404) return;
    // History could not be fetched; try again while the socket stays up.
    setTimeout(() => socket.isOpen && syncAndFlush(), 2000);
  } finally {
    for (const { clientId, text } of conversation.unsentOrUnconfirmed()) transmit(clientId, text);
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "chat_message":
      if (frame.client_id) conversation.confirm(frame);
      else conversation.upsert(frame);
      break;
    case "error":
      if (REFUSED_SEND_CODES.has(frame.code)) conversation.refused(frame.code);
      if (frame.code === "rate_limited" && frame.retry_after) {
        composer.hold(frame.retry_after);
        notices.show(sentence("rate_limited"), { key: "rate", retryAfter: frame.retry_after });
      } else {
        notices.show(sentence(frame.code, { message: frame.message, max: data.max_message_chars }));
      }
      break;
    default:
      break;
  }
}

function onFinal(code) {
  if (code === CLOSE.NOT_AUTHENTICATED) {
    toSignIn();
    return;
  }
  composer.setEnabled(false, gettext("You can no longer send messages here."));
  notices.show(
    code === CLOSE.NOT_FOUND ? gettext("This room no longer exists.") : gettext("You are no longer a member of this room. Go back to your rooms."),
    { key: "final" },
  );
}

const socket = new LiveSocket(`/ws/chat/${roomId}/`, {
  onFrame,
  onFinal,
  onGap: () => syncAndFlush(),
  onOpen: (reconnect) => {
    syncAndFlush();
    if (reconnect) {
      refreshRoom();
      loadSessions();
    }
  },
  onState: (state, delay) => {
    status.dataset.state = state;
    status.textContent = connectionLabel(state, delay);
  },
});

// --- members ---------------------------------------------------------------------------

// A destructive button asks once more before acting, in place (no modal dialog).
function confirmButton(label, confirmLabel, action) {
  const button = h("button", { type: "button", class: "quiet small" }, label);
  let armed = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
        button.classList.remove("armed");
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.textContent = label;
      button.classList.remove("armed");
    }
  });
  return button;
}

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

async function refreshRoom() {
  try {
    room = (await api(`/api/chat/rooms/${roomId}/`)).room;
    renderPeople();
  } catch (err) {
    if (err.status === 404) onFinal(CLOSE.FORBIDDEN);
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
    h("a", { href: `/ai/${session.session_id}/` }, gettext("AI session"), " ", timeElement(session.created_at)),
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
  if (document.visibilityState === "visible") loadSessions();
});
setInterval(() => {
  if (document.visibilityState === "visible") loadSessions();
}, 30000);

socket.start();
refreshRoom();
loadSessions();
