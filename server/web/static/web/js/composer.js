// The box a message is written in: Enter sends, Shift+Enter starts a new line, ↑ in the empty
// box edits one's last message, the counter appears near the limit, and a rate limit holds
// sending until its retry_after has passed. Typing `@` offers the members' names
// (mentions.js); `onType` hears every keystroke that changes the text, so the page can say its
// user is typing.
import { isSendKey } from "./dom.js";
import { gettext } from "./i18n.js";
import { MentionPicker } from "./mentions.js";

export class Composer {
  // `onEditLast()` starts editing one's last message; false when there is none.
  constructor({
    form,
    input,
    sendButton,
    counter,
    max,
    me,
    onSend,
    onType = () => {},
    onEditLast = () => false,
  }) {
    Object.assign(this, { input, sendButton, counter, max, onSend, onType, onEditLast });
    this.enabled = true;
    this.holdTimer = null;
    this.holdUntil = 0;
    this.picker = new MentionPicker(input, { me });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      if (this.picker.handleKey(event)) {
        event.preventDefault();
        return;
      }
      // Enter while an IME is composing (Korean, Japanese...) confirms the syllable, not the message.
      if (isSendKey(event)) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "ArrowUp" && !event.isComposing && this.input.value === "" && this.onEditLast()) {
        event.preventDefault();
      }
    });
    input.addEventListener("input", () => {
      this.refresh();
      if (this.input.value.trim()) this.onType();
    });
    this.refresh();
  }

  // The names `@` offers.
  setMembers(names) {
    this.picker.setMembers(names);
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || !this.canSend()) return;
    if (text.length > this.max) {
      this.refresh();
      return;
    }
    this.onSend(text);
    this.input.value = "";
    this.refresh();
    this.input.focus();
  }

  canSend() {
    return this.enabled && Date.now() >= this.holdUntil;
  }

  setEnabled(enabled, placeholder) {
    this.enabled = enabled;
    this.input.disabled = !enabled;
    if (placeholder) this.input.placeholder = placeholder;
    this.refresh();
  }

  // Hold sending for `seconds` (a rate limit's retry_after).
  hold(seconds) {
    this.holdUntil = Date.now() + seconds * 1000;
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => this.refresh(), seconds * 1000 + 50);
    this.refresh();
  }

  refresh() {
    const length = this.input.value.trim().length;
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
    const over = length > this.max;
    this.sendButton.disabled = !this.canSend() || length === 0 || over;
    this.input.setAttribute("aria-invalid", String(over));
    if (length > this.max * 0.8) {
      this.counter.textContent = gettext("%(used)s / %(max)s characters", { used: length, max: this.max });
      this.counter.classList.toggle("over", over);
    } else {
      this.counter.textContent = "";
    }
  }
}
