// The assistant's replies while they are written (SPEC 4.2, 4.3): "thinking…", then the text
// growing from ai_stream_start and its deltas, until ai_stream_end and the stored reply as an
// ordinary chat_message. Installed on a LiveConversation by any page whose socket carries
// these frames; it drives the thinking line and the Stop button of _conversation.html.
import { $, h } from "./dom.js";
import { gettext } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { finishNote, timeElement } from "./messages.js";

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

    live.on("ai_joined", () => this.greet());
    live.on("ai_thinking", () => this.setThinking(true));
    live.on("ai_stream_start", (frame) => this.start(frame));
    live.on("ai_stream_delta", (frame) => this.delta(frame));
    live.on("ai_stream_end", (frame) => this.end(frame));
    live.on("ai_error", (frame) => {
      this.setThinking(false);
      live.reportError(frame);
    });
    live.on("chat_message", (frame) => {
      // Replies are written one at a time: the stored reply ends whatever was streaming.
      if (this.list.isAi(frame)) this.clear();
    });
    live.onOpen((reconnect) => {
      // The server re-sends a reply in progress (ai_stream_start with the text so far); what
      // finished while we were away comes with the history.
      if (reconnect) this.clear();
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
        body,
      );
      stream = { el, body, text: "", lastIndex: -1, frame: 0, timestamp: frame.timestamp };
      this.streams.set(frame.stream_id, stream);
      this.list.showInTail(el);
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
      });
    } else if (stream && stream.text) {
      // Not stored: the text stays in the tail, with the reason it ended.
      stream.el.classList.remove("streaming");
      stream.el.removeAttribute("aria-busy");
      stream.el.querySelector(".state").textContent = finishNote(frame.finish_reason) || "";
      this.render(stream);
      this.list.showInTail(stream.el);
    }
    this.setThinking(false);
    this.onReplyEnd();
  }

  // Forget every reply being written (a reconnect re-sends them; an ended session has none).
  clear() {
    for (const id of [...this.streams.keys()]) this.drop(id);
    this.setThinking(false);
  }
}
