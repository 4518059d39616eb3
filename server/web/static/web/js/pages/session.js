// An AI session: the members and AI_Assistant talk; replies stream in as they are written.
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
import { CLOSE } from "../socket.js";

const data = pageData();
const sessionId = data.session_id;
let session = null;
let ended = false;
let budget = null;

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
});
live.on("ai_session_ended", () => endSession());
live.onError("session_inactive", () => endSession());
live.onClose(CLOSE.SESSION_ENDED, () => endSession());

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
  const usage = session.usage;
  const note = estimatedNote(usage);
  $("#session-usage").replaceChildren(
    ...fact(gettext("Replies"), tokens(usage.requests)),
    ...fact(gettext("Tokens"), h("span", { dataset: { figure: "tokens" } }, tokens(usage.total_tokens))),
    ...fact(gettext("Cost"), h("span", { dataset: { figure: "cost" } }, costText(usage))),
    ...(note ? fact(gettext("Estimated"), h("span", { dataset: { figure: "estimated" } }, note)) : []),
  );
  if (!budget) {
    budget = new RoomBudget($("#room-budget"), session.room_uuid);
    budget.load();
  }
  $("#end-session").hidden = !session.can_end;
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
  if (session.is_active) {
    live.start();
  } else {
    showEnded();
    await live.list.loadLatest().catch(() => {});
  }
})();
