// An AI session: the members and AI_Assistant talk; replies stream in as they are written.
import { api, toSignIn } from "../api.js";
import { $, h, pageData } from "../dom.js";
import { gettext } from "../i18n.js";
import { renderMarkdown, renderPlain } from "../markdown.js";
import { Notices, sentence } from "../notices.js";
import { CLOSE, LiveSocket } from "../socket.js";
import { Composer, Conversation, REFUSED_SEND_CODES, connectionLabel, finishNote, timeElement } from "../conversation.js";

const data = pageData();
const sessionId = data.session_id;
const me = data.user.username;
const aiName = data.ai_username;
const notices = new Notices($("#notices"));
const status = $("#conn-status");
const thinkingEl = $("#thinking");
const stopButton = $("#stop-button");
const tail = $("#tail");
let session = null;
let ended = false;

const conversation = new Conversation({
  list: $("#messages"),
  tail,
  scroller: $("#scroller"),
  olderButton: $("#load-older"),
  historyPath: `/api/llm/sessions/${sessionId}/messages/`,
  me,
  aiName,
  renderBody: (msg, isAi) => (isAi ? renderMarkdown(msg.message) : renderPlain(msg.message)),
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

// --- the reply being written -----------------------------------------------------------

const streams = new Map();
let thinking = false;
let stopping = false;

function updateGenerating() {
  const generating = thinking || streams.size > 0;
  stopButton.hidden = !generating || ended;
  stopButton.disabled = stopping;
  stopButton.textContent = stopping ? gettext("Stopping…") : gettext("Stop");
  if (!generating) stopping = false;
}

function setThinking(on) {
  thinking = on;
  thinkingEl.hidden = !on;
  $("#thinking-text").textContent = on ? gettext("%(name)s is thinking…", { name: aiName }) : "";
  if (on) conversation.stick(() => {});
  updateGenerating();
}

function renderStream(stream) {
  stream.frame = 0;
  conversation.stick(() => stream.body.replaceChildren(renderMarkdown(stream.text)));
}

function scheduleRender(stream) {
  // At most one Markdown render per animation frame, however fast deltas arrive.
  if (!stream.frame) stream.frame = requestAnimationFrame(() => renderStream(stream));
}

function streamStart(frame) {
  setThinking(false);
  let stream = streams.get(frame.stream_id);
  if (!stream) {
    const body = h("div", { class: "body" });
    const el = h(
      "li",
      { class: "msg ai streaming", dataset: { streamId: frame.stream_id }, "aria-busy": "true" },
      h("div", { class: "meta" }, h("span", { class: "author" }, frame.username || aiName), " ", timeElement(frame.timestamp), " ", h("span", { class: "state" }, gettext("writing…"))),
      body,
    );
    stream = { el, body, text: "", lastIndex: -1, frame: 0, timestamp: frame.timestamp };
    streams.set(frame.stream_id, stream);
    conversation.stick(() => tail.append(el));
  }
  // A client that joins mid-reply gets the text so far, then the rest as deltas.
  stream.text = frame.text || "";
  stream.lastIndex = -1;
  scheduleRender(stream);
  updateGenerating();
}

function streamDelta(frame) {
  const stream = streams.get(frame.stream_id);
  if (!stream) return;
  if (typeof frame.index === "number") {
    if (frame.index <= stream.lastIndex) return;
    stream.lastIndex = frame.index;
  }
  stream.text += frame.delta || "";
  scheduleRender(stream);
}

function dropStream(streamId) {
  const stream = streams.get(streamId);
  if (!stream) return null;
  cancelAnimationFrame(stream.frame);
  stream.el.remove();
  streams.delete(streamId);
  return stream;
}

function streamEnd(frame) {
  const stream = dropStream(frame.stream_id);
  if (frame.message_id && stream) {
    // Shown at once; the final chat_message that follows carries the stored text.
    conversation.upsert({
      message_id: frame.message_id,
      message: stream.text,
      username: aiName,
      timestamp: stream.timestamp,
      is_ai: true,
      finish_reason: frame.finish_reason,
    });
  } else if (stream && stream.text) {
    const note = finishNote(frame.finish_reason);
    stream.el.classList.remove("streaming");
    stream.el.removeAttribute("aria-busy");
    stream.el.querySelector(".state").textContent = note || "";
    renderStream(stream);
    tail.append(stream.el);
  }
  setThinking(false);
  loadSession();
}

function clearStreams() {
  for (const id of [...streams.keys()]) dropStream(id);
  setThinking(false);
}

// --- frames ----------------------------------------------------------------------------

let greeted = false;

function showError(code, frame) {
  if (REFUSED_SEND_CODES.has(code)) conversation.refused(code);
  if (code === "rate_limited" && frame.retry_after) {
    composer.hold(frame.retry_after);
    notices.show(sentence("rate_limited"), { key: "rate", retryAfter: frame.retry_after });
    return;
  }
  if (code === "session_inactive") {
    endSession();
    return;
  }
  let text = sentence(code, { message: frame.message, max: data.max_message_chars });
  if (code === "budget_exceeded" && frame.resets_at) {
    const when = new Date(frame.resets_at);
    if (!Number.isNaN(when.getTime())) text += ` ${gettext("It resets on %(when)s.", { when: when.toLocaleString(document.documentElement.lang) })}`;
  }
  notices.show(text, { key: code });
}

function onFrame(frame) {
  switch (frame.type) {
    case "chat_message":
      if (frame.is_ai || frame.username === aiName) {
        // Replies are written one at a time: the stored reply ends whatever was streaming.
        clearStreams();
      }
      conversation.confirm(frame);
      break;
    case "ai_joined":
      if (!greeted) {
        greeted = true;
        const el = notices.show(gettext("%(name)s has joined the conversation.", { name: frame.username || aiName }), { kind: "info", key: "joined" });
        setTimeout(() => el.remove(), 4000);
      }
      break;
    case "ai_thinking":
      setThinking(true);
      break;
    case "ai_stream_start":
      streamStart(frame);
      break;
    case "ai_stream_delta":
      streamDelta(frame);
      break;
    case "ai_stream_end":
      streamEnd(frame);
      break;
    case "ai_error":
      setThinking(false);
      showError(frame.code, frame);
      break;
    case "ai_session_ended":
      endSession();
      break;
    case "error":
      showError(frame.code, frame);
      break;
    default:
      break;
  }
}

function endSession() {
  if (ended) return;
  ended = true;
  clearStreams();
  composer.setEnabled(false, gettext("This session has ended."));
  notices.show(sentence("session_inactive"), { kind: "info", key: "ended" });
  if (session) {
    session.is_active = false;
    session.can_end = false;
  }
  renderSession();
  socket.stop();
}

function onFinal(code) {
  if (code === CLOSE.NOT_AUTHENTICATED) {
    toSignIn();
    return;
  }
  if (code === CLOSE.SESSION_ENDED) {
    endSession();
    return;
  }
  composer.setEnabled(false, gettext("You can no longer send messages here."));
  notices.show(
    code === CLOSE.NOT_FOUND ? gettext("This AI session does not exist.") : gettext("You are no longer a member of this room. Go back to your rooms."),
    { key: "final" },
  );
}

async function syncAndFlush() {
  try {
    await conversation.sync();
  } catch (err) {
    if (err.status === 404) return;
    setTimeout(() => socket.isOpen && syncAndFlush(), 2000);
  } finally {
    for (const { clientId, text } of conversation.unsentOrUnconfirmed()) transmit(clientId, text);
  }
}

const socket = new LiveSocket(`/ws/llm/${sessionId}/`, {
  onFrame,
  onFinal,
  onGap: () => syncAndFlush(),
  onOpen: (reconnect) => {
    // The server re-sends a reply in progress (ai_stream_start with the text so far); what
    // finished while we were away comes with the history.
    if (reconnect) clearStreams();
    stopping = false;
    syncAndFlush();
  },
  onState: (state, delay) => {
    status.dataset.state = state;
    status.textContent = connectionLabel(state, delay);
  },
});

stopButton.addEventListener("click", () => {
  if (socket.send({ type: "stop_generation" })) {
    stopping = true;
    updateGenerating();
  }
});

// --- the session's details -------------------------------------------------------------

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function formatCost(value) {
  const number = Number(value);
  return Number.isFinite(number) ? `$${number.toFixed(number >= 1 ? 2 : 4)}` : "—";
}

function renderSession() {
  if (!session) return;
  const roomLink = $("#back-to-room");
  roomLink.href = `/rooms/${session.room_uuid}/`;
  $("#session-room").textContent = `· ${session.room_name}`;
  document.title = `${gettext("AI session")} · ${session.room_name}`;
  const badge = $("#session-state");
  badge.hidden = false;
  badge.textContent = session.is_active ? gettext("Active") : gettext("Ended");
  badge.className = `badge ${session.is_active ? "on" : "off"}`;
  $("#session-facts").replaceChildren(
    ...fact(gettext("Room"), h("a", { href: `/rooms/${session.room_uuid}/` }, session.room_name)),
    ...fact(gettext("Started by"), session.created_by),
    ...fact(gettext("Started"), timeElement(session.created_at)),
    ...(session.model ? fact(gettext("Model"), session.model) : []),
  );
  const usage = session.usage || {};
  $("#session-usage").replaceChildren(
    ...fact(gettext("Replies"), String(usage.requests ?? 0)),
    ...fact(gettext("Tokens"), String(usage.total_tokens ?? 0)),
    ...fact(gettext("Cost"), formatCost(usage.cost_usd ?? 0)),
  );
  $("#end-session").hidden = !session.can_end;
}

async function loadSession() {
  try {
    const result = await api(`/api/llm/sessions/${sessionId}/`);
    session = result.session || result;
  } catch (err) {
    if (err.status === 404) onFinal(CLOSE.NOT_FOUND);
    else notices.show(sentence(err.code, { message: err.message }), { key: "session" });
    return false;
  }
  renderSession();
  return true;
}

$("#end-session").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = gettext("Click again to end the session for everyone");
    setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = gettext("End this session");
    }, 4000);
    return;
  }
  button.disabled = true;
  try {
    await api(`/api/llm/sessions/${sessionId}/deactivate/`, { method: "POST" });
    endSession();
  } catch (err) {
    notices.show(sentence(err.code, { message: err.message }));
  } finally {
    button.disabled = false;
  }
});

(async () => {
  if (!(await loadSession())) return;
  if (session.is_active) {
    socket.start();
  } else {
    ended = true;
    composer.setEnabled(false, gettext("This session has ended."));
    notices.show(sentence("session_inactive"), { kind: "info", key: "ended" });
    await conversation.loadLatest().catch(() => {});
  }
})();
