// "Catch me up" on the room page (SPEC 10.4): offered when 10 or more messages are unread, it
// streams a summary of them, written by the assistant for this reader alone, into a panel
// above the conversation. The summary arrives as server-sent events (`delta`, then `done` or
// `error`) read from a POST with fetch; closing the panel ends the call.
import { $, h } from "./dom.js";
import { gettext, ngettext } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";
import { sentence } from "./notices.js";
import { usageLine } from "./threads.js";

export const OFFER_AT_UNREAD = 10;

// The (event, data) pairs complete in `buffer`, and what is left of it.
export function takeEvents(buffer) {
  const events = [];
  let rest = buffer;
  let end = rest.indexOf("\n\n");
  while (end !== -1) {
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length) events.push([name, JSON.parse(data.join("\n"))]);
    end = rest.indexOf("\n\n");
  }
  return [events, rest];
}

export class CatchUp {
  constructor(roomId) {
    this.roomId = roomId;
    this.offerBox = $("#catchup-offer");
    this.panel = $("#catchup");
    this.body = $("#catchup-body");
    this.leftOut = $("#catchup-left-out");
    this.usage = $("#catchup-usage");
    this.since = null;
    this.controller = null;
    this.frame = 0;
    $("#catchup-button").addEventListener("click", () => this.run());
    $("#catchup-close").addEventListener("click", () => this.close());
  }

  // The room as the API gives it: its unread count and the reader's read marker (SPEC 9.2).
  offer(room) {
    const unread = room.unread_count;
    this.since = Number.isInteger(room.last_read_message_id) ? room.last_read_message_id : null;
    const show = Number.isInteger(unread) && unread >= OFFER_AT_UNREAD && this.panel.hidden;
    this.offerBox.hidden = !show;
    if (show) $("#catchup-count").textContent = ngettext("%(count)s unread message", "%(count)s unread messages", unread);
  }

  close() {
    this.controller?.abort();
    this.controller = null;
    this.panel.hidden = true;
  }

  show(text) {
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.body.replaceChildren(renderMarkdown(text)));
  }

  say(text, kind = "help") {
    cancelAnimationFrame(this.frame);
    this.body.replaceChildren(h("p", { class: kind }, text));
  }

  async run() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.offerBox.hidden = true;
    this.panel.hidden = false;
    this.panel.setAttribute("aria-busy", "true");
    this.leftOut.textContent = "";
    this.usage.textContent = "";
    this.say(gettext("Reading what you missed…"));
    let text = "";
    try {
      const response = await fetch(`/api/chat/rooms/${this.roomId}/summary/`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "text/event-stream", "Content-Type": "application/json" },
        body: JSON.stringify(this.since === null ? {} : { since: this.since }),
        signal: controller.signal,
      });
      if (!response.ok || !(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        const error = await response.json().catch(() => ({}));
        this.say(sentence(error.code, { message: error.message }), "form-error");
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let events;
        [events, buffer] = takeEvents(buffer + value);
        for (const [name, data] of events) {
          if (name === "delta") {
            text += data.delta;
            this.show(text);
          } else if (name === "done") {
            this.done(data);
          } else if (name === "error") {
            this.say(sentence(data.code, { message: data.message }), "form-error");
          }
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") this.say(sentence("network_error"), "form-error");
    } finally {
      if (this.controller === controller) this.controller = null;
      this.panel.removeAttribute("aria-busy");
    }
  }

  done(data) {
    if (!data.message_count) {
      this.say(gettext("Nothing new to catch up on."));
      return;
    }
    this.show(data.summary);
    this.leftOut.textContent = data.left_out
      ? ngettext("It covers the latest message; older ones did not fit.", "It covers the latest %(count)s messages; older ones did not fit.", data.message_count)
      : ngettext("It covers %(count)s message.", "It covers %(count)s messages.", data.message_count);
    this.usage.textContent = usageLine({ usage: data.usage })?.textContent || "";
  }
}
