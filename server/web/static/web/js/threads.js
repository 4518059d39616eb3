// What the assistant's replies say about themselves (SPEC 10.2), as the message list shows it:
// the question a reply answers ("↳ answering alice: …"), a discreet line with its model, tokens
// and cost, and the notes a conversation keeps about itself ("alice switched the model to …").
import { h, oneLine } from "./dom.js";
import { tokens, usd } from "./figures.js";
import { gettext } from "./i18n.js";

const PREVIEW_CHARS = 80;

// "alice: what is 2+2?" for a message the list shows, or null.
export function questionText(list, id) {
  const msg = list.data.get(Number(id));
  if (!msg) return null;
  return gettext("%(name)s: %(text)s", { name: msg.username, text: oneLine(msg.message, PREVIEW_CHARS) });
}

// The line above a reply that says which question it answers; a click shows the question.
export function threadLine(list, replyTo) {
  if (!replyTo) return null;
  const question = list.data.get(Number(replyTo));
  const label = question
    ? gettext("answering %(name)s: %(text)s", { name: question.username, text: oneLine(question.message, PREVIEW_CHARS) })
    : gettext("answering an earlier message");
  const line = h("button", { type: "button", class: "thread quiet" }, "↳ ", label);
  line.addEventListener("click", () => list.reveal(replyTo, { smooth: true }));
  return line;
}

// "gpt-4o-mini · 1,234 tokens · $0.000412", with "≈" and "estimated" when the provider gave no
// figures.
export function usageLine(msg) {
  const parts = [];
  if (msg.model) parts.push(msg.model);
  const usage = msg.usage;
  if (usage) {
    const known = Number.isInteger(usage.prompt_tokens) && Number.isInteger(usage.completion_tokens);
    if (known) {
      const total = tokens(usage.prompt_tokens + usage.completion_tokens);
      parts.push(usage.estimated ? gettext("≈%(count)s tokens (estimated)", { count: total }) : gettext("%(count)s tokens", { count: total }));
    } else {
      parts.push(gettext("tokens not reported"));
    }
    // A model with no price has no cost (null): nothing is shown rather than $0.
    if (usage.cost_usd !== null) {
      const cost = usd(usage.cost_usd);
      parts.push(usage.estimated ? `≈${cost}` : cost);
    }
  }
  if (!parts.length) return null;
  return h("p", { class: "usage", title: usage && usage.estimated ? gettext("The provider reported no usage for this reply; the figures are an estimate.") : "" }, parts.join(" · "));
}

const NOTE_PHRASES = {
  title: (change) => (change.value ? gettext("renamed the session to “%(value)s”", change) : gettext("removed the session's title")),
  model: (change) => gettext("switched the model to %(value)s", change),
  persona: (change) => gettext("chose the persona %(name)s", change),
  system_prompt: () => gettext("gave the assistant instructions of the session's own"),
};

// A note about the conversation, in the reader's language (`message` holds it in English).
export function noteText(msg) {
  const changes = (msg.note && msg.note.changes) || [];
  const phrases = changes.map((change) => NOTE_PHRASES[change.field]?.(change)).filter(Boolean);
  if (!phrases.length) return msg.message;
  return gettext("%(name)s %(what)s.", { name: msg.username, what: phrases.join(gettext("; ")) });
}
