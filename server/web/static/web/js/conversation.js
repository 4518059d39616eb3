// The live conversation of a page, room chat or an AI session: one controller for the message
// list, the composer, the socket and what its state shows, the catch-up after a reconnect,
// sends that are pending or refused, rate limits, and the closes that end it all.
//
// It drives the markup of templates/web/_conversation.html (found by id). Frames from the
// server go through a table of handlers by frame type: `on(type, handler)` adds a handler, and
// every handler of a type runs, in the order they were added. Error codes (`error` and
// `ai_error` frames) and final close codes have a table each, where a page's handler takes the
// place of the default: a notice for an error, a locked composer for a close.
import { toSignIn } from "./api.js";
import { $ } from "./dom.js";
import { Composer } from "./composer.js";
import { gettext, lang } from "./i18n.js";
import { MessageList } from "./messages.js";
import { Notices, sentence } from "./notices.js";
import { CLOSE, LiveSocket } from "./socket.js";
import { Typing } from "./typing.js";

// Codes that mean "this message was refused and not stored" (SPEC 4.1, 7.3).
const REFUSED_SEND_CODES = new Set([
  "rate_limited",
  "empty_message",
  "message_too_long",
  "validation_error",
  "invalid_json",
  "session_inactive",
  "budget_exceeded",
]);
// History that could not be fetched is asked for again after this long, while the socket is up.
const SYNC_RETRY_MS = 2000;

const STATE_LABELS = new Map([
  ["open", gettext("Connected")],
  ["connecting", gettext("Connecting…")],
  ["reconnecting", gettext("Reconnecting…")],
  ["offline", gettext("Offline: waiting for the network…")],
]);

export function connectionLabel(state, delay) {
  if (state === "waiting") return gettext("Connection lost. Retrying in %(seconds)s s…", { seconds: Math.max(1, Math.round(delay / 1000)) });
  return STATE_LABELS.get(state) ?? gettext("Disconnected");
}

export class LiveConversation {
  // `goneText` is what the page says when its room or session does not exist (close 4404).
  constructor({ data, socketPath, historyPath, renderBody, goneText }) {
    this.me = data.user.username;
    this.aiName = data.ai_username;
    this.maxChars = data.max_message_chars;
    this.goneText = goneText;
    this.closed = false;
    this.frameHandlers = new Map();
    this.errorHandlers = new Map();
    this.closeHandlers = new Map();
    this.openHooks = [];
    this.unreadHooks = [];
    this.syncHooks = [];
    this.synced = false;
    // What the reader has not read of this conversation (room chat): `atOpen` is the count when
    // the page opened, before anything on screen was marked read; `count` is the count now.
    this.unread = { atOpen: 0, count: 0, lastReadId: 0 };
    this.notices = new Notices($("#notices"));
    this.status = $("#conn-status");
    this.typing = new Typing($("#typing"), { send: (frame) => this.send(frame) });
    this.list = new MessageList({
      list: $("#messages"),
      tail: $("#tail"),
      scroller: $("#scroller"),
      olderButton: $("#load-older"),
      empty: $("#empty"),
      historyPath,
      me: this.me,
      aiName: this.aiName,
      maxChars: this.maxChars,
      renderBody,
      onResend: (clientId, text) => this.transmit(clientId, text),
      onGap: () => this.socket.isOpen && this.syncAndFlush(),
      onError: (err) => this.notices.show(sentence(err.code, { message: err.message, max: this.maxChars }), { key: "edit" }),
      onEditEnd: () => this.composer.input.focus(),
      // A search result opens the page at its message: ?message=<id>.
      focusId: new URLSearchParams(window.location.search).get("message"),
    });
    this.composer = new Composer({
      form: $("#composer"),
      input: $("#message-input"),
      sendButton: $("#send-button"),
      counter: $("#char-counter"),
      max: this.maxChars,
      me: this.me,
      onSend: (text) => {
        this.typing.sent();
        this.transmit(this.list.addPending(text), text);
      },
      onType: () => this.typing.typed(),
      onEditLast: () => this.list.editLast(),
    });
    this.socket = new LiveSocket(socketPath, {
      onFrame: (frame) => this.dispatch(frame),
      onOpen: (reconnect) => {
        for (const hook of this.openHooks) hook(reconnect);
        this.syncAndFlush();
      },
      onGap: () => this.syncAndFlush(),
      onFinal: (code) => this.final(code),
      onState: (state, delay) => {
        this.status.dataset.state = state;
        this.status.textContent = connectionLabel(state, delay);
        if (state !== "open") this.typing.clear();
      },
    });
    // The echo of one's own message and the messages of others alike.
    this.on("chat_message", (frame) => {
      this.typing.gone(frame.username);
      this.list.confirm(frame);
    });
    this.on("message_edited", (frame) => this.list.edited(frame));
    this.on("message_deleted", (frame) => this.list.deleted(frame));
    // Several people typing at once come in one frame (`usernames`).
    this.on("typing", (frame) => {
      for (const name of frame.usernames || [frame.username]) this.typing.heard(name);
    });
    this.on("error", (frame) => this.reportError(frame));
    this.onError("rate_limited", (frame) => this.rateLimited(frame));
    this.onClose(CLOSE.NOT_AUTHENTICATED, () => toSignIn());
  }

  // --- extending ---------------------------------------------------------------------------

  on(type, handler) {
    const handlers = this.frameHandlers.get(type);
    if (handlers) handlers.push(handler);
    else this.frameHandlers.set(type, [handler]);
    return this;
  }

  onError(code, handler) {
    this.errorHandlers.set(code, handler);
    return this;
  }

  onClose(code, handler) {
    this.closeHandlers.set(code, handler);
    return this;
  }

  // `hook(reconnect)` runs each time the socket opens, before the history is caught up.
  onOpen(hook) {
    this.openHooks.push(hook);
    return this;
  }

  // `hook(first)` runs after the history is caught up: `first` the first time (the latest page).
  onSynced(hook) {
    this.syncHooks.push(hook);
    return this;
  }

  // `hook(unread)` runs whenever `this.unread` changes (a page's "catch up" offer reads it).
  onUnread(hook) {
    this.unreadHooks.push(hook);
    return this;
  }

  setUnread(change) {
    Object.assign(this.unread, change);
    for (const hook of this.unreadHooks) hook(this.unread);
  }

  // The members `@` offers in the composer.
  setMembers(names) {
    this.composer.setMembers(names);
  }

  // --- the socket --------------------------------------------------------------------------

  start() {
    this.socket.start();
  }

  stop() {
    this.socket.stop();
  }

  send(frame) {
    return this.socket.send(frame);
  }

  dispatch(frame) {
    for (const handler of this.frameHandlers.get(frame.type) || []) handler(frame);
  }

  transmit(clientId, text) {
    if (this.send({ type: "chat_message", message: text, client_id: clientId })) this.list.markSent(clientId);
  }

  // After a (re)connect or lost frames: fetch what was missed, then send what is still waiting.
  async syncAndFlush() {
    try {
      await this.list.sync();
      const first = !this.synced;
      this.synced = true;
      for (const hook of this.syncHooks) hook(first);
    } catch (err) {
      if (err.status === 404) return;
      setTimeout(() => this.socket.isOpen && this.syncAndFlush(), SYNC_RETRY_MS);
    } finally {
      for (const { clientId, text } of this.list.unsentOrUnconfirmed()) this.transmit(clientId, text);
    }
  }

  // --- errors and endings ------------------------------------------------------------------

  reportError(frame) {
    if (REFUSED_SEND_CODES.has(frame.code)) this.list.refused(frame.code);
    const handler = this.errorHandlers.get(frame.code);
    if (handler) handler(frame);
    else this.explain(frame);
  }

  // The error as a notice that says what to do about it.
  explain(frame) {
    let text = sentence(frame.code, { message: frame.message, max: this.maxChars });
    if (frame.code === "budget_exceeded" && frame.resets_at) {
      const when = new Date(frame.resets_at);
      if (!Number.isNaN(when.getTime())) text += ` ${gettext("It resets on %(when)s.", { when: when.toLocaleString(lang) })}`;
    }
    this.notices.show(text, { key: frame.code });
  }

  rateLimited(frame) {
    if (!frame.retry_after) {
      this.explain(frame);
      return;
    }
    this.composer.hold(frame.retry_after);
    this.notices.show(sentence("rate_limited"), { key: "rate", retryAfter: frame.retry_after });
  }

  // A close that means "stop trying", from the socket or learnt from the API.
  final(code) {
    const handler = this.closeHandlers.get(code);
    if (handler) {
      handler(code);
      return;
    }
    this.lock(gettext("You can no longer send messages here."));
    this.notices.show(code === CLOSE.NOT_FOUND ? this.goneText : gettext("You are no longer a member of this room. Go back to your rooms."), { key: "final" });
  }

  // Nothing more can be sent from this page; the composer says why.
  lock(placeholder) {
    this.closed = true;
    this.composer.setEnabled(false, placeholder);
  }
}
