// @mentions in the page (SPEC 9.2, 9.5): the names a message mentions are highlighted in its
// text (the server says which: `mentions` on every message), and the composer offers the
// members' names as one types `@`.
import { h } from "./dom.js";
import { gettext } from "./i18n.js";

// The text before the caret ends with "@" and part of a name (chat/mentions.py's rule: the
// "@" starts the text or follows a character that is not part of a word).
const TYPING_MENTION = /(?:^|[^\w@])@([\w.+-]*)$/u;
const MAX_CHOICES = 8;

function key(name) {
  return name.normalize("NFKC").toLowerCase();
}

// Wrap each "@name" of `mentions` in `body` (outside code) in a highlight; whether `me` is
// one of them.
export function highlightMentions(body, mentions, me) {
  if (!Array.isArray(mentions) || !mentions.length) return false;
  const names = new Map(mentions.map((name) => [key(name), name]));
  const pattern = /(^|[^\w@])@([\w.+-]+)/gu;
  const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement?.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.push(node);
  for (const node of texts) {
    const text = node.nodeValue;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      let name = match[2];
      while (name.endsWith(".")) name = name.slice(0, -1);
      const found = names.get(key(name));
      if (!found) continue;
      const start = match.index + match[1].length;
      parts.push(text.slice(last, start));
      const mine = key(found) === key(me);
      parts.push(h("span", { class: `mention${mine ? " me" : ""}` }, `@${name}`));
      last = start + 1 + name.length;
    }
    if (!parts.length) continue;
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
  return mentions.some((name) => key(name) === key(me));
}

// The list of members offered while one types "@name" in the composer's textarea. Arrow keys
// move, Enter or Tab takes the name, Escape closes it.
export class MentionPicker {
  constructor(input, { me }) {
    this.input = input;
    this.me = me;
    this.members = [];
    this.choices = [];
    this.active = 0;
    this.list = h("ul", { class: "mention-picker", role: "listbox", id: "mention-picker", "aria-label": gettext("Members") });
    this.list.hidden = true;
    input.insertAdjacentElement("beforebegin", this.list);
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", "mention-picker");
    input.addEventListener("input", () => this.refresh());
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    input.addEventListener("click", () => this.refresh());
  }

  setMembers(names) {
    this.members = [...new Set(names)].filter((name) => key(name) !== key(this.me)).sort((a, b) => a.localeCompare(b));
    if (!this.list.hidden) this.refresh();
  }

  typed() {
    const before = this.input.value.slice(0, this.input.selectionStart ?? this.input.value.length);
    const match = TYPING_MENTION.exec(before);
    return match ? match[1] : null;
  }

  refresh() {
    const prefix = this.typed();
    if (prefix === null) {
      this.close();
      return;
    }
    const wanted = key(prefix);
    this.choices = this.members.filter((name) => key(name).startsWith(wanted)).slice(0, MAX_CHOICES);
    if (!this.choices.length) {
      this.close();
      return;
    }
    this.active = Math.min(this.active, this.choices.length - 1);
    this.render();
  }

  render() {
    this.list.replaceChildren(
      ...this.choices.map((name, index) => {
        const item = h("li", { role: "option", id: `mention-${index}`, "aria-selected": String(index === this.active), class: index === this.active ? "active" : "" }, `@${name}`);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          this.take(name);
        });
        return item;
      }),
    );
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.input.setAttribute("aria-activedescendant", `mention-${this.active}`);
  }

  close() {
    this.list.hidden = true;
    this.choices = [];
    this.active = 0;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  get open() {
    return !this.list.hidden;
  }

  // A key the picker handles while open (the composer then does nothing with it).
  handleKey(event) {
    if (!this.open) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.choices.length) % this.choices.length;
      this.render();
      return true;
    }
    if ((event.key === "Enter" || event.key === "Tab") && !event.isComposing) {
      this.take(this.choices[this.active]);
      return true;
    }
    if (event.key === "Escape") {
      this.close();
      return true;
    }
    return false;
  }

  take(name) {
    const caret = this.input.selectionStart ?? this.input.value.length;
    const before = this.input.value.slice(0, caret);
    const after = this.input.value.slice(caret);
    const start = before.lastIndexOf("@");
    const inserted = `@${name} `;
    this.input.value = before.slice(0, start) + inserted + after.replace(/^[\w.+-]*/u, "").replace(/^ /, "");
    const at = start + inserted.length;
    this.input.setSelectionRange(at, at);
    this.close();
    this.input.dispatchEvent(new Event("input"));
    this.input.focus();
  }
}
