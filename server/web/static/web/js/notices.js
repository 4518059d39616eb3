// What went wrong, said as what to do about it: one sentence per error code of the API and
// the sockets (SPEC 3, 4.2), and the rate-limit countdown from `retry_after`.
import { gettext } from "./i18n.js";
import { h } from "./dom.js";

export function sentence(code, extra = {}) {
  switch (code) {
    case "ai_not_configured":
      return gettext("The AI assistant is not set up on this server. Ask the administrator to set OPENAI_API_KEY, then try again.");
    case "upstream_auth":
      return gettext("The AI provider refused this server's API key. Ask the administrator to check OPENAI_API_KEY.");
    case "upstream_rate_limited":
      return gettext("The AI provider is overloaded right now. Wait a minute, then send your message again.");
    case "upstream_timeout":
      return gettext("The AI provider took too long to answer. Send your message again in a moment.");
    case "upstream_unavailable":
      return gettext("The AI provider cannot be reached at the moment. Try again in a few minutes.");
    case "budget_exceeded":
      return gettext("The AI usage budget has been used up. Wait until it resets, or ask the administrator to raise it.");
    case "session_inactive":
      return gettext("This AI session has ended. Go back to the room and start a new one.");
    case "rate_limited":
      return gettext("You are sending messages too fast. Wait a moment before sending again.");
    case "empty_message":
      return gettext("Type something before sending.");
    case "message_too_long":
      return gettext("This message is too long. Shorten it to %(max)s characters or fewer.", { max: extra.max ?? "" });
    case "not_authenticated":
      return gettext("Your sign-in has expired. Sign in again.");
    case "invalid_credentials":
      return gettext("That username and password do not match. Check them and try again.");
    case "forbidden":
      return gettext("You are not allowed to do that here.");
    case "not_found":
      return gettext("It does not exist, or you are no longer a member of its room.");
    case "service_unavailable":
      return gettext("A service the server depends on is down for the moment. Try again in a minute.");
    case "internal_error":
      return gettext("The server hit an error of its own; it has been logged. Try again, and tell the administrator if it happens again.");
    case "network_error":
      return gettext("The server could not be reached. Check your connection and try again.");
    case "invalid_json":
    case "unknown_type":
    case "unsupported_media_type":
      return gettext("The server could not understand this page's request. Reload the page and try again.");
    default:
      return extra.message || gettext("Something went wrong. Try again.");
  }
}

// A dismissable notice; with `retryAfter` it counts down and calls `onExpire` at zero.
export class Notices {
  constructor(container) {
    this.container = container;
    this.byKey = new Map();
  }

  show(text, { kind = "error", key = text, retryAfter = null, onExpire = null } = {}) {
    this.dismiss(key);
    const textNode = h("span", { class: "notice-text" }, text);
    const countdown = h("span", { class: "countdown" });
    const close = h("button", { type: "button", class: "quiet close", "aria-label": gettext("Dismiss") }, "×");
    const el = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", dataset: { key } }, textNode, " ", countdown, close);
    const entry = { el, timer: null };
    close.addEventListener("click", () => this.dismiss(key));
    if (retryAfter !== null) {
      const until = Date.now() + retryAfter * 1000;
      el.dataset.retryAfter = String(retryAfter);
      const tick = () => {
        const left = Math.ceil((until - Date.now()) / 1000);
        if (left <= 0) {
          clearInterval(entry.timer);
          entry.timer = null;
          countdown.textContent = gettext("You can send again now.");
          el.classList.replace("error", "info");
          if (onExpire) onExpire();
          return;
        }
        countdown.textContent = gettext("You can send again in %(seconds)s s.", { seconds: left });
      };
      tick();
      entry.timer = setInterval(tick, 250);
    }
    this.byKey.set(key, entry);
    this.container.append(el);
    return el;
  }

  dismiss(key) {
    const entry = this.byKey.get(key);
    if (!entry) return;
    clearInterval(entry.timer);
    entry.el.remove();
    this.byKey.delete(key);
  }
}
