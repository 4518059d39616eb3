// The message list shared by room chat and AI sessions.
//
// Messages are kept by `message_id` in id order, so a message that arrives twice (live, and
// again in the history fetched after a reconnect) is shown once. A message being sent carries
// a `client_id` and stays "pending" in the tail until the server's echo with that id arrives;
// after a reconnect it is sent again with the same id, which the server stores only once. One
// not echoed within SEND_TIMEOUT_MS says so ("Not sent", with Send again): SPEC 9.5.
//
// Catching up is exact (SPEC 9.4). Ids are committed in order within a conversation, so the
// list keeps `cursor`, the id up to which it has every message: history pages move it, and a
// live message moves it when its `previous_id` is the cursor. A message whose predecessor has
// not arrived (another server process published it first, or a frame was lost) waits ahead of
// the cursor; after a reconnect, a gap in the frames, or a predecessor still missing after a
// moment, the list asks for `after=<cursor>`. Edits and deletions are caught up the same way:
// `changeSeq` is the conversation's change number the list is current with, and the same
// request carries `changed_after=<changeSeq>`.
//
// A day separator precedes the first message of each day; older messages load as the reader
// scrolls up to the top; the members a message mentions are highlighted, and a message that
// mentions the reader stands out.
import { api } from "./api.js";
import { confirmButton } from "./confirm.js";
import { h, isSendKey, newClientId } from "./dom.js";
import { gettext, lang } from "./i18n.js";
import { noteText } from "./threads.js";
import { highlightMentions } from "./mentions.js";

const timeFormat = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
const dayTimeFormat = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(lang, { dateStyle: "full" });

function dayOf(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toDateString();
}

export function dayLabel(day) {
  const today = new Date();
  if (day === today.toDateString()) return gettext("Today");
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (day === yesterday.toDateString()) return gettext("Yesterday");
  return dayFormat.format(new Date(day));
}

export function timeElement(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("time", {}, "");
  const today = new Date().toDateString() === date.toDateString();
  return h("time", { datetime: iso, title: fullFormat.format(date) }, (today ? timeFormat : dayTimeFormat).format(date));
}

// What the note under an AI reply says about how it ended; a reply that ended normally has none.
const FINISH_NOTES = new Map([
  ["stopped", gettext("Stopped before the end.")],
  ["length", gettext("Cut short: the reply reached its length limit.")],
  ["error", gettext("Cut short by an error.")],
  ["interrupted", gettext("Interrupted: the server stopped while writing this reply.")],
]);

export function finishNote(reason) {
  return FINISH_NOTES.get(reason) ?? null;
}

const NEAR_BOTTOM_PX = 96;
const CATCH_UP_PAGE = 200;
const CATCH_UP_MAX_PAGES = 100;
// A message or a change whose predecessor has not arrived after this long was missed, not
// merely overtaken: catch up.
const MISSING_AFTER_MS = 2000;
// Messages shown before the one a page opens at (a search result).
const CONTEXT_BEFORE = 25;
// How long a message brought into view (a search result, a reply's question) stays marked.
const FLASH_MS = 2500;
// How long an echo may trail the refusal of a later message (the echo travels through the
// channel layer, the refusal does not).
const REFUSAL_GRACE_MS = 1500;
// A message sent and not echoed by then is shown as not sent (SPEC 9.5).
const SEND_TIMEOUT_MS = 10000;

export class MessageList {
  // `onGap()` asks for a catch-up; `onError(err)` reports a refused edit or deletion;
  // `onEditEnd()` runs when an edit is saved or abandoned; `focusId` is a message to open at.
  constructor({
    list,
    tail,
    scroller,
    olderButton,
    empty,
    historyPath,
    me,
    aiName,
    renderBody,
    onResend,
    onGap = () => {},
    onError = () => {},
    onEditEnd = () => {},
    focusId = null,
    maxChars,
  }) {
    Object.assign(this, { list, tail, scroller, olderButton, empty, historyPath, me, aiName, renderBody, onResend, onGap, onError, onEditEnd, maxChars });
    this.focusId = Number(focusId) > 0 ? Number(focusId) : null;
    this.ids = [];
    this.byId = new Map();
    // The latest of each message as the server gave it (history, frames, edits merged).
    this.data = new Map();
    this.pending = new Map();
    this.loaded = false;
    this.cursor = 0;
    this.ahead = new Map();
    this.changeSeq = null;
    this.changesAhead = new Set();
    this.missingTimer = null;
    this.editing = null;
    // Set by the page's AI renderer (ai_replies.js): what an AI reply shows besides its text
    // (`aiParts(msg)` gives `{ before, after }` nodes), and what follows each message shown
    // (`onShown(msg, el)`, which groups the answers to one question as versions).
    this.aiParts = null;
    this.onShown = null;
    this.loadingOlder = false;
    this.seenHooks = [];
    this.unreadMarker = null;
    olderButton.addEventListener("click", () => this.loadOlder());
    // Older messages come as the reader reaches the top; the button stays for keyboards.
    this.topWatch = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && !this.olderButton.hidden) this.loadOlder();
      },
      { root: scroller, rootMargin: "200px 0px 0px 0px" },
    );
    this.topWatch.observe(olderButton);
    // What the reader has had on screen, for the read marker.
    this.seenWatch = new IntersectionObserver(
      (entries) => {
        let newest = 0;
        for (const entry of entries) {
          if (entry.isIntersecting) newest = Math.max(newest, Number(entry.target.dataset.messageId));
        }
        if (newest) for (const hook of this.seenHooks) hook(newest);
      },
      { root: scroller, threshold: 0.6 },
    );
  }

  // `hook(messageId)` runs with the newest stored message that came on screen.
  onSeen(hook) {
    this.seenHooks.push(hook);
  }

  // Messages on screen now, the newest last (for a page that becomes visible again).
  newestOnScreen() {
    const box = this.scroller.getBoundingClientRect();
    for (let at = this.ids.length - 1; at >= 0; at -= 1) {
      const rect = this.byId.get(this.ids[at]).getBoundingClientRect();
      if (rect.top < box.bottom && rect.bottom > box.top) return this.ids[at];
    }
    return 0;
  }

  get lastId() {
    return this.ids.length ? this.ids[this.ids.length - 1] : 0;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // Keep the view at the bottom when it was there before a change.
  stick(change) {
    const stay = this.nearBottom();
    const result = change();
    if (stay) this.scrollToBottom();
    return result;
  }

  isAi(msg) {
    return Boolean(msg.is_ai) || msg.username === this.aiName;
  }

  // Show something below the stored messages (a message being sent, a reply being written).
  showInTail(el) {
    this.stick(() => this.tail.append(el));
  }

  element(msg) {
    if (msg.note) {
      // A note about the conversation, not something said: a line across the list.
      return h(
        "li",
        { class: "msg note", dataset: { messageId: msg.message_id, day: dayOf(msg.timestamp) } },
        h("p", {}, noteText(msg), " ", timeElement(msg.timestamp)),
      );
    }
    const isAi = this.isAi(msg);
    const isSelf = !isAi && (Boolean(msg.is_self) || msg.username === this.me);
    const deleted = Boolean(msg.deleted);
    const body = h("div", { class: "body" }, deleted ? h("p", { class: "deleted-note" }, gettext("This message was deleted.")) : this.renderBody(msg, isAi));
    const mentionsMe = !deleted && highlightMentions(body, msg.mentions, this.me);
    const notes = [finishNote(msg.finish_reason), msg.reply_to_edited ? gettext("The question was edited after this reply.") : null].filter(Boolean);
    const edited = msg.edited_at && !deleted ? h("span", { class: "edited", title: editedWhen(msg.edited_at) }, gettext("edited")) : null;
    const parts = isAi && !deleted && this.aiParts ? this.aiParts(msg) : {};
    return h(
      "li",
      {
        class: `msg${isSelf ? " self" : ""}${isAi ? " ai" : ""}${mentionsMe ? " mentions-me" : ""}${deleted ? " deleted" : ""}`,
        dataset: { messageId: msg.message_id, day: dayOf(msg.timestamp) },
      },
      h("div", { class: "meta" }, h("span", { class: "author" }, msg.username), " ", timeElement(msg.timestamp), edited ? " " : null, edited, this.actions(msg)),
      parts.before || null,
      body,
      ...notes.map((note) => h("p", { class: "finish" }, note)),
      parts.after || null,
    );
  }

  // Edit and Delete, for what the server says this viewer may do (can_edit, can_delete).
  actions(msg) {
    if (msg.deleted || (!msg.can_edit && !msg.can_delete)) return null;
    const id = Number(msg.message_id);
    const buttons = [];
    if (msg.can_edit) buttons.push(h("button", { type: "button", class: "quiet small", onclick: () => this.startEdit(id) }, gettext("Edit")));
    if (msg.can_delete) buttons.push(confirmButton(gettext("Delete"), gettext("Delete for everyone?"), () => this.remove(id)));
    return h("span", { class: "msg-actions" }, ...buttons);
  }

  // Add a stored message, or refresh it: an AI reply first shown from its stream, then from
  // the stored reply with its usage; an edit; a deletion. What is known of it is merged.
  upsert(msg) {
    const id = Number(msg.message_id);
    if (!Number.isInteger(id) || id <= 0) return null;
    const known = this.data.get(id);
    const merged = known ? { ...known, ...msg } : msg;
    this.data.set(id, merged);
    const existing = this.byId.get(id);
    if (existing) {
      if (signature(merged) !== signature(known) && this.editing?.id !== id) this.replace(id, this.element(merged));
      return this.byId.get(id);
    }
    const el = this.element(merged);
    // Insert in id order; live messages almost always go last, so search from the end.
    let at = this.ids.length;
    while (at > 0 && this.ids[at - 1] > id) at -= 1;
    const before = at < this.ids.length ? this.byId.get(this.ids[at]) : null;
    this.ids.splice(at, 0, id);
    this.byId.set(id, el);
    this.stick(() => {
      this.list.insertBefore(el, before && this.ownSeparator(before) ? before.previousElementSibling : before);
      this.fixDay(at);
      this.fixDay(at + 1);
    });
    this.seenWatch.observe(el);
    this.showEmpty();
    this.onShown?.(merged, el);
    return el;
  }

  replace(id, fresh) {
    const existing = this.byId.get(id);
    if (!existing) return;
    this.seenWatch.unobserve(existing);
    fresh.hidden = existing.hidden;
    existing.replaceWith(fresh);
    this.byId.set(id, fresh);
    this.seenWatch.observe(fresh);
    this.onShown?.(this.data.get(id), fresh);
  }

  ownSeparator(el) {
    const prev = el.previousElementSibling;
    return prev !== null && (prev.classList.contains("day") || prev.classList.contains("unread-line"));
  }

  // The message at `at` is the first of its day shown: it gets the day's separator.
  fixDay(at) {
    if (at < 0 || at >= this.ids.length) return;
    const el = this.byId.get(this.ids[at]);
    const prev = at > 0 ? this.byId.get(this.ids[at - 1]) : null;
    const wanted = prev === null || prev.dataset.day !== el.dataset.day;
    let sep = el.previousElementSibling;
    while (sep && sep.classList.contains("unread-line")) sep = sep.previousElementSibling;
    const has = sep !== null && sep.classList.contains("day") ? sep : null;
    if (wanted && has === null) {
      const day = el.dataset.day;
      let anchor = el;
      while (anchor.previousElementSibling && anchor.previousElementSibling.classList.contains("unread-line")) anchor = anchor.previousElementSibling;
      this.list.insertBefore(h("li", { class: "day", role: "separator", dataset: { day } }, h("span", {}, day ? dayLabel(day) : "")), anchor);
    } else if (!wanted && has !== null) {
      has.remove();
    }
  }

  // "New messages" before the first message after `lastReadId` (by someone else).
  markUnreadAfter(lastReadId) {
    this.unreadMarker?.remove();
    this.unreadMarker = null;
    const first = this.ids.find((id) => id > lastReadId && !this.byId.get(id).classList.contains("self"));
    if (first === undefined) return null;
    const el = this.byId.get(first);
    this.unreadMarker = h("li", { class: "unread-line", role: "separator" }, h("span", {}, gettext("New messages")));
    this.list.insertBefore(this.unreadMarker, el);
    return el;
  }

  showEmpty() {
    if (this.empty) this.empty.hidden = !this.loaded || this.ids.length > 0 || this.pending.size > 0;
  }

  has(id) {
    return this.byId.has(Number(id));
  }

  // --- sending ---------------------------------------------------------------------------

  addPending(text) {
    const clientId = newClientId();
    const status = h("span", { class: "state" }, gettext("Sending…"));
    const actions = h("span", { class: "actions" });
    const el = h(
      "li",
      { class: "msg self pending", dataset: { clientId } },
      h("div", { class: "meta" }, h("span", { class: "author" }, this.me), " ", status, actions),
      h("div", { class: "body" }, this.renderBody({ message: text }, false)),
    );
    const entry = { text, el, status, actions, sent: false, failed: false, timer: null };
    this.pending.set(clientId, entry);
    this.showInTail(el);
    this.scrollToBottom();
    this.showEmpty();
    this.waitForEcho(clientId);
    return clientId;
  }

  waitForEcho(clientId) {
    const entry = this.pending.get(clientId);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.fail(clientId, "timeout"), SEND_TIMEOUT_MS);
  }

  markSent(clientId) {
    const entry = this.pending.get(clientId);
    if (entry) entry.sent = true;
  }

  unsentOrUnconfirmed() {
    return [...this.pending.entries()].filter(([, entry]) => !entry.failed).map(([clientId, entry]) => ({ clientId, text: entry.text }));
  }

  // The server's echo of one of ours: the pending copy gives way to the stored message.
  confirm(frame) {
    const entry = frame.client_id ? this.pending.get(frame.client_id) : null;
    if (entry) {
      clearTimeout(entry.timer);
      entry.el.remove();
      this.pending.delete(frame.client_id);
    }
    this.upsert(frame);
    this.follow(frame);
  }

  // --- the catch-up cursors ----------------------------------------------------------------

  // A live message moves the cursor when it comes right after it.
  follow(frame) {
    const id = Number(frame.message_id);
    const previous = frame.previous_id;
    if (typeof previous !== "number" || id <= this.cursor) return;
    if (previous <= this.cursor) this.advance(id);
    else {
      this.ahead.set(previous, id);
      this.watchForMissing();
    }
  }

  advance(id) {
    this.cursor = Math.max(this.cursor, id);
    while (this.ahead.has(this.cursor)) {
      const next = this.ahead.get(this.cursor);
      this.ahead.delete(this.cursor);
      this.cursor = next;
    }
    for (const previous of [...this.ahead.keys()]) if (previous < this.cursor) this.ahead.delete(previous);
  }

  // A change numbered right after the list's moves it on; one further ahead waits.
  changed(seq) {
    if (typeof seq !== "number" || this.changeSeq === null || seq <= this.changeSeq) return;
    if (seq === this.changeSeq + 1) {
      this.changeSeq = seq;
      while (this.changesAhead.delete(this.changeSeq + 1)) this.changeSeq += 1;
    } else {
      this.changesAhead.add(seq);
      this.watchForMissing();
    }
  }

  changesCaughtUp(seq) {
    this.changeSeq = Math.max(this.changeSeq ?? 0, seq);
    for (const ahead of [...this.changesAhead]) if (ahead <= this.changeSeq) this.changesAhead.delete(ahead);
  }

  watchForMissing() {
    if (this.missingTimer !== null) return;
    this.missingTimer = setTimeout(() => {
      this.missingTimer = null;
      if (this.ahead.size || this.changesAhead.size) this.onGap();
    }, MISSING_AFTER_MS);
  }

  // --- edits and deletions -----------------------------------------------------------------

  edited(frame) {
    if (this.data.has(Number(frame.message_id))) this.upsert({ message_id: frame.message_id, message: frame.message, edited_at: frame.edited_at, mentions: frame.mentions || [] });
    for (const reply of frame.replies || []) if (this.data.has(Number(reply))) this.upsert({ message_id: reply, reply_to_edited: true });
    this.changed(frame.change_seq);
  }

  deleted(frame) {
    if (this.data.has(Number(frame.message_id))) this.upsert(tombstone(frame.message_id));
    this.changed(frame.change_seq);
  }

  // Items of `changes` (history): only messages the list shows are refreshed.
  applyChanges(items) {
    for (const item of items || []) if (this.data.has(Number(item.message_id))) this.upsert(item);
  }

  // ↑ in an empty composer: edit one's last message. False when there is none to edit.
  editLast() {
    for (let at = this.ids.length - 1; at >= 0; at -= 1) {
      const msg = this.data.get(this.ids[at]);
      if (msg && msg.can_edit && !msg.deleted) {
        this.startEdit(msg.message_id);
        return true;
      }
    }
    return false;
  }

  startEdit(messageId) {
    const id = Number(messageId);
    const msg = this.data.get(id);
    const el = this.byId.get(id);
    if (!msg || !el) return;
    if (this.editing) this.endEdit();
    const input = h("textarea", { class: "edit-input", rows: "2", maxlength: String(this.maxChars), "aria-label": gettext("Edit message") });
    input.value = msg.message;
    const save = h("button", { type: "submit", class: "primary small" }, gettext("Save"));
    const cancel = h("button", { type: "button", class: "quiet small" }, gettext("Cancel"));
    const form = h("form", { class: "edit-form" }, input, h("div", { class: "edit-row" }, h("span", { class: "hint" }, gettext("Enter saves; Esc cancels.")), cancel, save));
    const body = el.querySelector(".body");
    body.replaceWith(form);
    el.classList.add("editing");
    this.editing = { id, form, body };
    const submit = async () => {
      const text = input.value.trim();
      if (!text || text === msg.message) {
        this.endEdit();
        return;
      }
      save.disabled = true;
      try {
        const result = await api(`/api/chat/messages/${id}/`, { method: "PATCH", body: { message: text } });
        this.endEdit();
        this.upsert(result.message);
      } catch (err) {
        save.disabled = false;
        this.onError(err);
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.endEdit();
      } else if (isSendKey(event)) {
        event.preventDefault();
        submit();
      }
    });
    cancel.addEventListener("click", () => this.endEdit());
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  endEdit() {
    const editing = this.editing;
    if (!editing) return;
    this.editing = null;
    this.replace(editing.id, this.element(this.data.get(editing.id)));
    this.onEditEnd();
  }

  async remove(messageId) {
    const id = Number(messageId);
    try {
      const result = await api(`/api/chat/messages/${id}/`, { method: "DELETE" });
      this.upsert(result.message);
    } catch (err) {
      this.onError(err);
    }
  }

  // Bring a message into view and mark it for a moment (a search result opened here, the
  // question a reply answers).
  reveal(messageId, { smooth = false } = {}) {
    const el = this.byId.get(Number(messageId));
    if (!el) return false;
    el.classList.add("flash");
    el.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
    setTimeout(() => el.classList.remove("flash"), FLASH_MS);
    return true;
  }

  // Called when the server refused a message: the pending ones sent before the refusal and
  // still unconfirmed after a grace period were refused (an echo can trail the refusal).
  refused(code) {
    const suspects = [...this.pending.entries()].filter(([, e]) => e.sent && !e.failed).map(([id]) => id);
    setTimeout(() => {
      for (const clientId of suspects) this.fail(clientId, code);
    }, REFUSAL_GRACE_MS);
  }

  fail(clientId, code) {
    const entry = this.pending.get(clientId);
    if (!entry || entry.failed) return;
    clearTimeout(entry.timer);
    entry.failed = true;
    entry.sent = false;
    entry.el.classList.add("failed");
    entry.status.textContent = code === "rate_limited" ? gettext("Not sent: too many messages.") : gettext("Not sent.");
    const retry = h("button", { type: "button", class: "quiet" }, gettext("Send again"));
    const discard = h("button", { type: "button", class: "quiet" }, gettext("Discard"));
    retry.addEventListener("click", () => {
      entry.failed = false;
      entry.el.classList.remove("failed");
      entry.status.textContent = gettext("Sending…");
      entry.actions.replaceChildren();
      this.waitForEcho(clientId);
      this.onResend(clientId, entry.text);
    });
    discard.addEventListener("click", () => {
      entry.el.remove();
      this.pending.delete(clientId);
      this.showEmpty();
    });
    entry.actions.replaceChildren(retry, discard);
    // Whatever the reader was looking at, the message that did not go must be seen.
    entry.el.scrollIntoView({ block: "nearest" });
  }

  // --- history ---------------------------------------------------------------------------

  // A page of history after the cursor (or the latest one): shown, and the cursors moved to
  // what it is current with. The server reads its change number before the rows, so every
  // change up to it is in them or in `changes`.
  took(data) {
    for (const msg of data.messages) this.upsert(msg);
    this.applyChanges(data.changes);
    if (data.messages.length) this.advance(data.messages[data.messages.length - 1].message_id);
    if (typeof data.change_seq === "number") this.changesCaughtUp(data.change_seq);
  }

  async loadLatest() {
    const data = await api(this.historyPath);
    this.took(data);
    this.olderButton.hidden = !data.has_more;
    this.loaded = true;
    this.showEmpty();
    this.scrollToBottom();
  }

  // Open at a message: a few before it, and everything after it up to now, so the list stays
  // whole from there to the latest (and the cursor means what it says).
  async loadAround(messageId) {
    const data = await api(this.historyPath, { query: { before: messageId + 1, limit: CONTEXT_BEFORE } });
    this.took(data);
    this.olderButton.hidden = !data.has_more;
    this.loaded = true;
    await this.catchUp();
    this.showEmpty();
    if (!this.reveal(messageId)) this.scrollToBottom();
  }

  async loadOlder() {
    if (!this.ids.length || this.loadingOlder) return;
    this.loadingOlder = true;
    this.olderButton.disabled = true;
    try {
      const data = await api(this.historyPath, { query: { before: this.ids[0] } });
      const height = this.scroller.scrollHeight;
      const top = this.scroller.scrollTop;
      for (const msg of data.messages) this.upsert(msg);
      this.scroller.scrollTop = top + (this.scroller.scrollHeight - height);
      this.olderButton.hidden = !data.has_more;
    } finally {
      this.olderButton.disabled = false;
      this.loadingOlder = false;
    }
  }

  // After a reconnect or a gap: every message committed after the cursor and every change
  // after changeSeq, page by page, in the same requests.
  async catchUp() {
    for (let page = 0; page < CATCH_UP_MAX_PAGES; page += 1) {
      const query = { after: this.cursor, limit: CATCH_UP_PAGE };
      if (this.changeSeq !== null) query.changed_after = this.changeSeq;
      const data = await api(this.historyPath, { query });
      this.took(data);
      if (!data.has_more && !data.has_more_changes) return;
    }
  }

  async sync() {
    if (this.loaded) await this.catchUp();
    else if (this.focusId) await this.loadAround(this.focusId);
    else await this.loadLatest();
  }
}

function editedWhen(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : gettext("Edited %(when)s", { when: fullFormat.format(date) });
}

function tombstone(messageId) {
  return { message_id: messageId, deleted: true, message: "", edited_at: null, mentions: [], can_edit: false, can_delete: false };
}

// What a message's element shows: it is rebuilt only when this changes.
function signature(msg) {
  if (!msg) return "";
  return JSON.stringify([
    msg.message,
    msg.finish_reason || "",
    msg.edited_at || "",
    Boolean(msg.deleted),
    Boolean(msg.reply_to_edited),
    Boolean(msg.can_edit),
    Boolean(msg.can_delete),
    msg.usage || null,
    msg.versions || 0,
    msg.mentions || [],
  ]);
}
