// The assistant's replies while they are written (SPEC 4.2, 4.3): "thinking…", then the text
// growing from ai_stream_start and its deltas, until ai_stream_end and the stored reply as an
// ordinary chat_message. Installed on a LiveConversation by any page whose socket carries
// these frames; it drives the thinking line, the Stop button and the queue of
// _conversation.html.
//
// Each reply says which question it answers (SPEC 10.2): "↳ answering alice: …" above it, its
// model, tokens and cost below it, and Regenerate (Retry for one that failed or was stopped).
// The answers to one question are its versions: shown one at a time, ‹1/2›, in the place of
// the first, which a new version replaces on screen as it is written. Questions waiting for
// their turn are listed, each with a Withdraw button for who asked it.
import { $, h } from "./dom.js";
import { gettext, ngettext } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { finishNote, timeElement } from "./messages.js";
import { questionText, threadLine, usageLine } from "./threads.js";

// Replies that ended early are retried; others are regenerated (the same frame).
const RETRY_REASONS = new Set(["stopped", "error", "interrupted"]);

export class AiReplies {
  // `onReplyEnd()` runs when a reply has ended, e.g. to show the usage it added. The greeting
  // (`ai_joined`, on every connect) shows once per `onceKey` in this browser.
  constructor(live, { onReplyEnd = () => {}, onceKey = null } = {}) {
    this.live = live;
    this.list = live.list;
    this.onReplyEnd = onReplyEnd;
    this.onceKey = onceKey;
    this.thinkingLine = $("#thinking");
    this.thinkingText = $("#thinking-text");
    this.stopButton = $("#stop-button");
    this.streams = new Map();
    this.thinking = false;
    this.stopping = false;
    this.greeted = false;
    this.queueBox = $("#ai-queue");
    this.pending = [];
    // The answers to each question (by the question's id): their ids, oldest first, and the
    // one shown.
    this.groups = new Map();
    this.list.aiParts = (msg) => this.parts(msg);
    this.list.onShown = (msg, el) => this.shown(msg, el);

    live.on("ai_joined", () => this.greet());
    live.on("ai_thinking", () => this.setThinking(true));
    live.on("ai_stream_start", (frame) => this.start(frame));
    live.on("ai_stream_delta", (frame) => this.delta(frame));
    live.on("ai_stream_end", (frame) => this.end(frame));
    live.on("ai_error", (frame) => {
      this.setThinking(false);
      live.reportError(frame);
    });
    live.on("ai_queue", (frame) => this.setQueue(frame));
    live.on("chat_message", (frame) => {
      // Replies are written one at a time: the stored reply ends whatever was streaming.
      if (this.list.isAi(frame)) this.clear();
    });
    live.onOpen((reconnect) => {
      // The server re-sends a reply in progress (ai_stream_start with the text so far); what
      // finished while we were away comes with the history.
      if (reconnect) {
        this.clear();
        this.setQueue({ pending: [] });
      }
      this.stopping = false;
      this.update();
    });
    this.stopButton.addEventListener("click", () => {
      if (live.send({ type: "stop_generation" })) {
        this.stopping = true;
        this.update();
      }
    });
  }

  // A line at the top of the conversation, in its flow (it covers nothing), the first time
  // this browser opens the session; never again on a reload or a reconnect.
  greet() {
    if (this.greeted) return;
    this.greeted = true;
    const note = $("#joined-note");
    if (!note || !this.onceKey) return;
    try {
      if (localStorage.getItem(this.onceKey) !== null) return;
      localStorage.setItem(this.onceKey, "1");
    } catch {
      // Storage refused (private mode): the line shows once per page.
    }
    note.hidden = false;
  }

  update() {
    const generating = this.thinking || this.streams.size > 0;
    this.stopButton.hidden = !generating || this.live.closed;
    this.stopButton.disabled = this.stopping;
    this.stopButton.textContent = this.stopping ? gettext("Stopping…") : gettext("Stop");
    if (!generating) this.stopping = false;
  }

  setThinking(on) {
    this.thinking = on;
    this.thinkingLine.hidden = !on;
    this.thinkingText.textContent = on ? gettext("%(name)s is thinking…", { name: this.live.aiName }) : "";
    if (on) this.list.stick(() => {});
    this.update();
  }

  render(stream) {
    stream.frame = 0;
    this.list.stick(() => stream.body.replaceChildren(renderMarkdown(stream.text)));
  }

  scheduleRender(stream) {
    // At most one Markdown render per animation frame, however fast deltas arrive.
    if (!stream.frame) stream.frame = requestAnimationFrame(() => this.render(stream));
  }

  start(frame) {
    this.setThinking(false);
    let stream = this.streams.get(frame.stream_id);
    if (!stream) {
      const body = h("div", { class: "body" });
      const el = h(
        "li",
        { class: "msg ai streaming", dataset: { streamId: frame.stream_id }, "aria-busy": "true" },
        h("div", { class: "meta" }, h("span", { class: "author" }, frame.username || this.live.aiName), " ", timeElement(frame.timestamp), " ", h("span", { class: "state" }, gettext("writing…"))),
        threadLine(this.list, frame.reply_to),
        body,
      );
      stream = { el, body, text: "", lastIndex: -1, frame: 0, timestamp: frame.timestamp, slot: null };
      this.streams.set(frame.stream_id, stream);
      this.questionEl(frame.reply_to)?.querySelector(".unanswered")?.remove();
      // Asked again: the new answer is written where the one it replaces is shown.
      const slot = this.slotOf(frame.reply_to);
      if (slot) {
        stream.slot = slot;
        slot.hidden = true;
        this.list.stick(() => slot.after(el));
      } else {
        this.list.showInTail(el);
      }
    }
    // A client that joins mid-reply gets the text so far, then the rest as deltas.
    stream.text = frame.text || "";
    stream.lastIndex = -1;
    this.scheduleRender(stream);
    this.update();
  }

  delta(frame) {
    const stream = this.streams.get(frame.stream_id);
    if (!stream) return;
    if (typeof frame.index === "number") {
      if (frame.index <= stream.lastIndex) return;
      stream.lastIndex = frame.index;
    }
    stream.text += frame.delta || "";
    this.scheduleRender(stream);
  }

  drop(streamId) {
    const stream = this.streams.get(streamId);
    if (!stream) return null;
    cancelAnimationFrame(stream.frame);
    stream.el.remove();
    this.streams.delete(streamId);
    if (stream.slot) {
      stream.slot.hidden = false;
      stream.slot = null;
    }
    return stream;
  }

  end(frame) {
    const stream = this.drop(frame.stream_id);
    if (frame.message_id && stream) {
      // Shown at once; the final chat_message that follows carries the stored text.
      this.list.upsert({
        message_id: frame.message_id,
        message: stream.text,
        username: this.live.aiName,
        timestamp: stream.timestamp,
        is_ai: true,
        finish_reason: frame.finish_reason,
        reply_to: frame.reply_to,
        model: frame.model,
      });
    } else if (stream && stream.text) {
      // Not stored: the text stays in the tail, with the reason it ended.
      stream.el.classList.remove("streaming");
      stream.el.removeAttribute("aria-busy");
      stream.el.querySelector(".state").textContent = finishNote(frame.finish_reason) || "";
      this.render(stream);
      this.list.showInTail(stream.el);
    } else if (frame.reply_to && !this.slotOf(frame.reply_to)) {
      this.unanswered(frame.reply_to);
    }
    this.setThinking(false);
    this.onReplyEnd();
  }

  // Forget every reply being written (a reconnect re-sends them; an ended session has none).
  clear() {
    for (const id of [...this.streams.keys()]) this.drop(id);
    this.setThinking(false);
  }

  // --- asking again ------------------------------------------------------------------------

  ask(frame) {
    if (this.live.closed) return false;
    return this.live.send(frame);
  }

  regenerate(messageId) {
    this.ask({ type: "regenerate", message_id: Number(messageId) });
  }

  // What an AI reply shows besides its text: the question it answers above it; its model,
  // tokens and cost, Regenerate or Retry, and its version among the answers below it.
  parts(msg) {
    if (!msg.reply_to) return {};
    const group = this.groups.get(Number(msg.reply_to));
    const ids = group ? group.ids : [Number(msg.message_id)];
    const at = Math.max(ids.indexOf(Number(msg.message_id)), 0);
    const count = Math.max(ids.length, msg.versions || 1);
    const retry = RETRY_REASONS.has(msg.finish_reason);
    const again = h("button", { type: "button", class: "quiet small regenerate" }, retry ? gettext("Retry") : gettext("Regenerate"));
    again.addEventListener("click", () => this.regenerate(msg.message_id));
    let versions = null;
    if (count > 1) {
      const previous = h("button", { type: "button", class: "quiet small", "aria-label": gettext("Previous answer"), disabled: at === 0 }, "‹");
      const next = h("button", { type: "button", class: "quiet small", "aria-label": gettext("Next answer"), disabled: at >= ids.length - 1 }, "›");
      previous.addEventListener("click", () => this.choose(msg.reply_to, at - 1));
      next.addEventListener("click", () => this.choose(msg.reply_to, at + 1));
      versions = h("span", { class: "versions", "aria-label": gettext("Answer %(n)s of %(count)s", { n: at + 1, count }) }, previous, h("span", { class: "version" }, `${at + 1}/${count}`), next);
    }
    return {
      before: threadLine(this.list, msg.reply_to),
      after: h("div", { class: "reply-foot" }, usageLine(msg), h("span", { class: "reply-actions" }, versions, again)),
    };
  }

  // Every message shown passes here: the answers to one question are grouped as versions.
  shown(msg, el) {
    if (!msg.reply_to || !this.list.isAi(msg)) return;
    const question = Number(msg.reply_to);
    const id = Number(msg.message_id);
    this.questionEl(question)?.querySelector(".unanswered")?.remove();
    let group = this.groups.get(question);
    if (!group) {
      group = { ids: [], shown: id };
      this.groups.set(question, group);
    }
    if (!group.ids.includes(id)) {
      group.ids.push(id);
      group.ids.sort((a, b) => a - b);
      // A new answer replaces the one on screen; an older one loaded later does not.
      if (id === group.ids[group.ids.length - 1]) group.shown = id;
    }
    if (group.ids.length > 1) this.renderGroup(question);
  }

  choose(question, index) {
    const group = this.groups.get(Number(question));
    if (!group || !group.ids[index]) return;
    group.shown = group.ids[index];
    this.renderGroup(Number(question));
  }

  // The first answer's place shows the chosen one; the others' places stay empty.
  renderGroup(question) {
    const group = this.groups.get(question);
    const [first, ...later] = group.ids;
    const slot = this.list.byId.get(first);
    if (!slot) return;
    for (const id of later) {
      const el = this.list.byId.get(id);
      if (el) el.hidden = true;
    }
    const chosen = this.list.data.get(group.shown) || this.list.data.get(first);
    const view = this.list.element(chosen);
    slot.replaceChildren(...view.childNodes);
    slot.hidden = [...this.streams.values()].some((s) => s.slot === slot);
  }

  questionEl(id) {
    return id ? this.list.byId.get(Number(id)) || null : null;
  }

  slotOf(question) {
    const group = question ? this.groups.get(Number(question)) : null;
    return group ? this.list.byId.get(group.ids[0]) || null : null;
  }

  // A question whose answer failed before any text: said under it, with Retry.
  unanswered(question) {
    const el = this.questionEl(question);
    if (!el || el.querySelector(".unanswered")) return;
    const retry = h("button", { type: "button", class: "quiet small" }, gettext("Retry"));
    retry.addEventListener("click", () => this.regenerate(question));
    el.append(h("p", { class: "unanswered" }, gettext("%(name)s could not answer.", { name: this.live.aiName }), " ", retry));
  }

  // --- the queue ---------------------------------------------------------------------------

  setQueue(frame) {
    this.pending = frame.pending || [];
    this.renderQueue();
  }

  renderQueue() {
    if (!this.queueBox) return;
    const pending = this.pending;
    this.queueBox.hidden = pending.length === 0;
    if (!pending.length) {
      this.queueBox.replaceChildren();
      return;
    }
    const items = pending.map((entry) => {
      const mine = entry.username === this.live.me;
      const text = questionText(this.list, entry.message_id) || entry.username;
      let withdraw = null;
      if (mine) {
        withdraw = h("button", { type: "button", class: "quiet small withdraw" }, gettext("Withdraw"));
        withdraw.addEventListener("click", () => {
          if (this.ask({ type: "cancel_reply", message_id: entry.message_id })) withdraw.disabled = true;
        });
      }
      return h("li", { dataset: { messageId: String(entry.message_id) } }, h("span", { class: "queued" }, text), withdraw);
    });
    this.queueBox.replaceChildren(
      h("p", { class: "queue-title" }, ngettext("%(count)s question waiting", "%(count)s questions waiting", pending.length)),
      h("ol", {}, ...items),
    );
  }
}
