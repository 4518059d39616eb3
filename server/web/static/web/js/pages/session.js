// An AI session: the members and AI_Assistant talk; replies stream in as they are written.
// Its settings (title, model, persona or instructions of its own) are shown to every member
// and changed by who may (`can_edit`); a change reaches every page as `session_updated`.
// Beside it: who has the session open now (`session_viewers`), its details and usage.
import { AiReplies } from "../ai_replies.js";
import { api } from "../api.js";
import { RoomBudget } from "../budget.js";
import { armConfirm } from "../confirm.js";
import { LiveConversation } from "../conversation.js";
import { $, h, pageData } from "../dom.js";
import { costText, estimatedNote, tokens } from "../figures.js";
import { gettext } from "../i18n.js";
import { renderMarkdown, renderPlain } from "../markdown.js";
import { timeElement } from "../messages.js";
import { sentence } from "../notices.js";
import { RoomList } from "../sidebar.js";
import { CLOSE } from "../socket.js";
import { workspace } from "../workspace.js";

const data = pageData();
const sessionId = data.session_id;
let session = null;
let ended = false;
let budget = null;
// Removed from the session's room: nothing here is the reader's to do any more.
let removed = false;
let viewers = [];

const live = new LiveConversation({
  data,
  socketPath: `/ws/llm/${sessionId}/`,
  historyPath: `/api/llm/sessions/${sessionId}/messages/`,
  renderBody: (msg, isAi) => (isAi ? renderMarkdown(msg.message) : renderPlain(msg.message)),
  goneText: gettext("This AI session does not exist."),
});
// Each reply that ends adds to the session's usage, shown beside the conversation.
const replies = new AiReplies(live, {
  onReplyEnd: () => {
    loadSession();
    budget?.load();
  },
  onceKey: `ai-joined:${sessionId}`,
});
const roomList = new RoomList($("#room-nav"), { emptyText: gettext("No rooms yet.") });
live.on("ai_session_ended", () => endSession());
live.on("session_viewers", (frame) => {
  viewers = frame.usernames;
  renderSession();
});
live.on("session_updated", (frame) => {
  if (!session) return;
  // The frame is the same for every member; what this member may do stays as it was.
  Object.assign(session, frame.session);
  renderSession();
});
live.onError("session_inactive", () => endSession());
live.onClose(CLOSE.SESSION_ENDED, () => endSession());
live.onClose(CLOSE.FORBIDDEN, () => {
  removed = true;
  replies.clear();
  live.lock(gettext("You can no longer send messages here."));
  live.notices.show(gettext("You are no longer a member of this room. Go back to your rooms."), { key: "final" });
  renderSession();
});

function showEnded() {
  ended = true;
  live.lock(gettext("This session has ended."));
  live.notices.show(sentence("session_inactive"), { kind: "info", key: "ended" });
}

function endSession() {
  if (ended) return;
  replies.clear();
  showEnded();
  live.stop();
  if (session) {
    session.is_active = false;
    session.can_end = false;
  }
  renderSession();
}

// --- the session's details -------------------------------------------------------------

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function renderSession() {
  if (!session) return;
  const roomLink = $("#back-to-room");
  roomLink.href = `/rooms/${session.room_uuid}/`;
  $("#session-title").firstChild.textContent = `${session.title || gettext("AI session")} `;
  $("#session-room").textContent = `· ${session.room_name}`;
  const title = `${session.title || gettext("AI session")} · ${session.room_name}`;
  if (workspace) workspace.setTitle(title);
  else document.title = title;
  const badge = $("#session-state");
  // A removed member no longer sees the session as anything of theirs.
  badge.hidden = removed;
  badge.textContent = session.is_active ? gettext("Active") : gettext("Ended");
  badge.className = `badge ${session.is_active ? "on" : "off"}`;
  const watching = viewers.length
    ? h("ul", { class: "viewers" }, viewers.map((name) => h("li", {}, h("span", { class: "dot online", "aria-hidden": "true" }), name)))
    : h("span", { class: "muted" }, "—");
  $("#session-facts").replaceChildren(
    ...fact(gettext("Room"), h("a", { href: `/rooms/${session.room_uuid}/` }, session.room_name)),
    ...fact(gettext("Started by"), session.created_by),
    ...fact(gettext("Started"), timeElement(session.created_at)),
    ...(removed ? [] : fact(gettext("Here now"), watching)),
  );
  renderSteering();
  const usage = session.usage;
  const note = estimatedNote(usage);
  $("#session-usage").replaceChildren(
    ...fact(gettext("Replies"), tokens(usage.requests)),
    ...fact(gettext("Tokens"), h("span", { dataset: { figure: "tokens" } }, tokens(usage.total_tokens))),
    ...fact(gettext("Cost"), h("span", { dataset: { figure: "cost" } }, costText(usage))),
    ...(note ? fact(gettext("Estimated"), h("span", { dataset: { figure: "estimated" } }, note)) : []),
  );
  $("#end-session").hidden = removed || !session.can_end;
}

// The room's members, for `@` in the composer.
async function loadMembers() {
  try {
    const room = (await api(`/api/chat/rooms/${session.room_uuid}/`)).room;
    live.setMembers([room.owner, ...room.participants]);
  } catch {
    // Without the list, `@` offers nothing; the session works all the same.
  }
}

async function loadSession() {
  try {
    const result = await api(`/api/llm/sessions/${sessionId}/`);
    session = result.session || result;
  } catch (err) {
    if (err.status === 404) live.final(CLOSE.NOT_FOUND);
    else live.notices.show(sentence(err.code, { message: err.message }), { key: "session" });
    return false;
  }
  renderSession();
  return true;
}

// --- what steers the assistant ---------------------------------------------------------

const CUSTOM = "";
let options = null;
let filledWith = null;

function personaName(key) {
  const preset = options?.personas.find((p) => p.key === key);
  return preset ? preset.name : key;
}

function renderSteering() {
  $("#steer-facts").replaceChildren(
    ...fact(gettext("Model"), session.model),
    ...fact(gettext("Persona"), session.persona ? personaName(session.persona) : gettext("Instructions of its own")),
  );
  $("#steer-prompt").textContent = session.system_prompt;
  steerForm.hidden = !(session.can_edit && options);
  // Filled again only when the settings changed (here or by someone else), not each time the
  // session is reloaded (after every reply), which would undo an edit in progress.
  const settings = JSON.stringify([session.title, session.model, session.persona, session.system_prompt]);
  if (!steerForm.hidden && settings !== filledWith) {
    filledWith = settings;
    fillForm();
  }
}

function choice(value, label, selected) {
  return h("option", { value, selected: value === selected }, label);
}

const steerForm = $("#steer-form");
const field = {
  title: $("#steer-title"),
  model: $("#steer-model"),
  persona: $("#steer-persona"),
  prompt: $("#steer-prompt-input"),
};

function fillForm() {
  field.title.value = session.title;
  const models = options.models.includes(session.model) ? options.models : [session.model, ...options.models];
  field.model.replaceChildren(...models.map((m) => choice(m, m, session.model)));
  const current = session.persona ?? CUSTOM;
  field.persona.replaceChildren(...options.personas.map((p) => choice(p.key, p.name, current)), choice(CUSTOM, gettext("Instructions of its own…"), current));
  field.prompt.value = session.persona ? "" : session.system_prompt;
  $("#steer-prompt-field").hidden = current !== CUSTOM;
}

async function loadOptions() {
  try {
    const [personas, models] = await Promise.all([api("/api/llm/personas/"), api("/api/llm/models/")]);
    options = { personas: personas.personas, models: models.models };
  } catch {
    options = null; // the settings stay read-only; the page works without them
  }
}

field.persona.addEventListener("change", () => {
  $("#steer-prompt-field").hidden = field.persona.value !== CUSTOM;
  if (field.persona.value === CUSTOM && !field.prompt.value) field.prompt.value = session.system_prompt;
});
steerForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = steerForm.querySelector(".form-error");
  const saved = steerForm.querySelector(".saved");
  error.hidden = true;
  saved.hidden = true;
  const body = {};
  if (field.title.value.trim() !== session.title) body.title = field.title.value;
  if (field.model.value !== session.model) body.model = field.model.value;
  if (field.persona.value !== CUSTOM) {
    if (field.persona.value !== session.persona) body.persona = field.persona.value;
  } else if (session.persona || field.prompt.value.trim() !== session.system_prompt) {
    body.system_prompt = field.prompt.value;
  }
  if (!Object.keys(body).length) return;
  const button = steerForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const result = await api(`/api/llm/sessions/${sessionId}/`, { method: "PATCH", body });
    session = result.session;
    document.activeElement?.blur();
    renderSession();
    saved.hidden = false;
  } catch (err) {
    error.textContent = sentence(err.code, { message: err.message });
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

armConfirm($("#end-session"), gettext("Click again to end the session for everyone"), async () => {
  try {
    await api(`/api/llm/sessions/${sessionId}/deactivate/`, { method: "POST" });
    endSession();
  } catch (err) {
    live.notices.show(sentence(err.code, { message: err.message }));
  }
});

(async () => {
  const [loaded] = await Promise.all([loadSession(), loadOptions()]);
  if (!loaded) return;
  renderSession(); // again, with the persona names loaded beside the session
  budget = new RoomBudget($("#room-budget"), session.room_uuid);
  budget.load();
  roomList.current = session.room_uuid;
  if (workspace?.loaded) roomList.render();
  loadMembers();
  if (session.is_active) {
    live.start();
  } else {
    showEnded();
    await live.list.sync().catch(() => {});
  }
})();
