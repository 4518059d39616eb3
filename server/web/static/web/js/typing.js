// "alice is typing…" (SPEC 9.3): this page says `typing` at most every SEND_EVERY_MS while its
// user types, and shows who else is typing until SHOW_MS pass without news of them or their
// message arrives. The server passes on at most one per person per 2 s and stores nothing.
import { gettext } from "./i18n.js";

const SEND_EVERY_MS = 3000;
const SHOW_MS = 6000;

export class Typing {
  constructor(line, { send }) {
    this.line = line;
    this.send = send;
    this.sentAt = 0;
    this.typists = new Map();
  }

  // The user typed: tell the others, unless this page told them less than 3 s ago.
  typed() {
    const now = Date.now();
    if (now - this.sentAt < SEND_EVERY_MS) return;
    if (this.send({ type: "typing" })) this.sentAt = now;
  }

  // The user's message went: the next keystroke is news again.
  sent() {
    this.sentAt = 0;
  }

  heard(username) {
    clearTimeout(this.typists.get(username));
    this.typists.set(
      username,
      setTimeout(() => this.gone(username), SHOW_MS),
    );
    this.render();
  }

  gone(username) {
    if (!this.typists.has(username)) return;
    clearTimeout(this.typists.get(username));
    this.typists.delete(username);
    this.render();
  }

  clear() {
    for (const timer of this.typists.values()) clearTimeout(timer);
    this.typists.clear();
    this.render();
  }

  render() {
    const names = [...this.typists.keys()];
    let text = "";
    if (names.length === 1) text = gettext("%(name)s is typing…", { name: names[0] });
    else if (names.length === 2) text = gettext("%(first)s and %(second)s are typing…", { first: names[0], second: names[1] });
    else if (names.length > 2) text = gettext("Several people are typing…");
    this.line.textContent = text;
    this.line.classList.toggle("on", names.length > 0);
  }
}
