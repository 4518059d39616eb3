// An AI session: the members and AI_Assistant talk; replies stream in as they are written.
// Beside it: who has the session open now (`session_viewers`), its details and usage.
import { AiReplies } from "../ai_replies.js";
import { api } from "../api.js";
import { armConfirm } from "../confirm.js";
import { LiveConversation } from "../conversation.js";
import { $, h, pageData } from "../dom.js";
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
const replies = new AiReplies(live, { onReplyEnd: () => loadSession(), onceKey: `ai-joined:${sessionId}` });
const roomList = new RoomList($("#room-nav"), { emptyText: gettext("No rooms yet.") });
live.on("ai_session_ended", () => endSession());
live.on("session_viewers", (frame) => {
  viewers = frame.usernames;
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

function formatCost(value) {
  const number = Number(value);
  return Number.isFinite(number) ? `$${number.toFixed(number >= 1 ? 2 : 4)}` : "—";
}

function renderSession() {
  if (!session) return;
  const roomLink = $("#back-to-room");
  roomLink.href = `/rooms/${session.room_uuid}/`;
  $("#session-room").textContent = `· ${session.room_name}`;
  const title = `${gettext("AI session")} · ${session.room_name}`;
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
    ...(session.model ? fact(gettext("Model"), session.model) : []),
    ...(removed ? [] : fact(gettext("Here now"), watching)),
  );
  const usage = session.usage || {};
  $("#session-usage").replaceChildren(
    ...fact(gettext("Replies"), String(usage.requests ?? 0)),
    ...fact(gettext("Tokens"), String(usage.total_tokens ?? 0)),
    ...fact(gettext("Cost"), formatCost(usage.cost_usd ?? 0)),
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

armConfirm($("#end-session"), gettext("Click again to end the session for everyone"), async () => {
  try {
    await api(`/api/llm/sessions/${sessionId}/deactivate/`, { method: "POST" });
    endSession();
  } catch (err) {
    live.notices.show(sentence(err.code, { message: err.message }));
  }
});

(async () => {
  if (!(await loadSession())) return;
  roomList.current = session.room_uuid;
  if (workspace?.loaded) roomList.render();
  loadMembers();
  if (session.is_active) {
    live.start();
  } else {
    showEnded();
    await live.list.loadLatest().catch(() => {});
  }
})();
