// The message list shared by room chat and AI sessions.
//
// Messages are kept by `message_id` in id order, so a message that arrives twice (live, and
// again in the history fetched after a reconnect) is shown once. A message being sent carries
// a `client_id` and stays "pending" in the tail until the server's echo with that id arrives;
// after a reconnect it is sent again with the same id, which the server stores only once. One
// not echoed within SEND_TIMEOUT_MS says so ("Not sent", with Send again): SPEC 9.5.
//
// A day separator precedes the first message of each day; older messages load as the reader
// scrolls up to the top; the members a message mentions are highlighted, and a message that
// mentions the reader stands out.
import { api } from "./api.js";
import { h, newClientId } from "./dom.js";
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
// The server allots a message's id before it commits it, so a message committed a moment
// after a later one can carry the lower id, and a client that reconnected in between would
// never fetch it by asking for what came after the last id it shows. Catching up from this
// many messages back covers that race; upsert shows each message once.
const CATCH_UP_OVERLAP = 20;
// How long an echo may trail the refusal of a later message (the echo travels through the
// channel layer, the refusal does not).
const REFUSAL_GRACE_MS = 1500;
// A message sent and not echoed by then is shown as not sent (SPEC 9.5).
const SEND_TIMEOUT_MS = 10000;

export class MessageList {
  constructor({ list, tail, scroller, olderButton, empty, historyPath, me, aiName, renderBody, onResend }) {
    Object.assign(this, { list, tail, scroller, olderButton, empty, historyPath, me, aiName, renderBody, onResend });
    this.ids = [];
    this.byId = new Map();
    this.pending = new Map();
    this.loaded = false;
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
        { class: "msg note", dataset: { messageId: msg.message_id, author: msg.username, day: dayOf(msg.timestamp) } },
        h("p", {}, noteText(msg), " ", timeElement(msg.timestamp)),
      );
    }
    const isAi = this.isAi(msg);
    const isSelf = !isAi && (Boolean(msg.is_self) || msg.username === this.me);
    const body = h("div", { class: "body" }, this.renderBody(msg, isAi));
    const mentionsMe = highlightMentions(body, msg.mentions, this.me);
    const note = finishNote(msg.finish_reason);
    const parts = isAi && this.aiParts ? this.aiParts(msg) : {};
    return h(
      "li",
      {
        class: `msg${isSelf ? " self" : ""}${isAi ? " ai" : ""}${mentionsMe ? " mentions-me" : ""}`,
        dataset: { messageId: msg.message_id, author: msg.username, day: dayOf(msg.timestamp) },
      },
      h("div", { class: "meta" }, h("span", { class: "author" }, msg.username), " ", timeElement(msg.timestamp)),
      parts.before || null,
      body,
      note ? h("p", { class: "finish" }, note) : null,
      parts.after || null,
    );
  }

  // Add a stored message, or refresh it (an AI reply first shown from its stream).
  upsert(msg) {
    const id = Number(msg.message_id);
    if (!Number.isInteger(id) || id <= 0) return null;
    const existing = this.byId.get(id);
    if (existing) {
      // An AI reply is first shown from its stream, then from the stored reply with its usage.
      const more = Boolean(msg.usage) && !existing.dataset.usage;
      if (more || existing.dataset.text !== msg.message || (msg.finish_reason || "") !== (existing.dataset.finish || "")) {
        const fresh = this.element(msg);
        fresh.dataset.text = msg.message;
        fresh.dataset.finish = msg.finish_reason || "";
        if (msg.usage) fresh.dataset.usage = "1";
        this.seenWatch.unobserve(existing);
        existing.replaceWith(fresh);
        this.byId.set(id, fresh);
        this.seenWatch.observe(fresh);
        this.onShown?.(msg, fresh);
      }
      return this.byId.get(id);
    }
    const el = this.element(msg);
    el.dataset.text = msg.message;
    el.dataset.finish = msg.finish_reason || "";
    if (msg.usage) el.dataset.usage = "1";
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
    this.onShown?.(msg, el);
    return el;
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

  async loadLatest() {
    const data = await api(this.historyPath);
    for (const msg of data.messages) this.upsert(msg);
    this.olderButton.hidden = !data.has_more;
    this.loaded = true;
    this.showEmpty();
    this.scrollToBottom();
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

  // After a reconnect: everything stored after the last messages shown, page by page.
  async catchUp() {
    let after = this.ids.length ? this.ids[Math.max(0, this.ids.length - 1 - CATCH_UP_OVERLAP)] : 0;
    for (let page = 0; page < CATCH_UP_MAX_PAGES; page += 1) {
      const data = await api(this.historyPath, { query: { after, limit: CATCH_UP_PAGE } });
      for (const msg of data.messages) this.upsert(msg);
      if (!data.has_more || !data.messages.length) return;
      after = data.messages[data.messages.length - 1].message_id;
    }
  }

  async sync() {
    if (this.loaded) await this.catchUp();
    else await this.loadLatest();
  }
}
