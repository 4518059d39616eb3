// Sign-in and sign-up: the JSON API signs the browser in (session cookie), then on to `next`.
import { api } from "../api.js";
import { gettext } from "../i18n.js";
import { sentence } from "../notices.js";

const form = document.getElementById("auth-form");
const error = document.getElementById("form-error");
const mode = form.dataset.mode;
const next = form.dataset.next || "/rooms/";

function showError(text) {
  error.textContent = text;
  error.hidden = !text;
}

let retryTimer = null;

// Why the server refused a field (`reasons` of a validation_error), said in the page's language.
function reasonText(reason) {
  switch (reason) {
    case "taken":
      return gettext("That username is taken. Choose another.");
    case "reserved":
      return gettext("That username is reserved. Choose another.");
    case "lookalike":
      return gettext("That username looks too much like an existing one. Choose another.");
    case "invalid":
      return gettext("A username may hold only letters, digits and @ . + - _ characters.");
    case "required":
      return gettext("Enter a username and a password.");
    case "too_long":
      return gettext("A username has at most 150 characters.");
    case "password_too_short":
      return gettext("The password is too short: use at least 8 characters.");
    case "password_too_common":
      return gettext("This password is too common. Choose one that is harder to guess.");
    case "password_entirely_numeric":
      return gettext("The password cannot be only digits.");
    case "password_too_similar":
      return gettext("The password is too much like the username.");
    default:
      return null;
  }
}

// A refused field as sentences the reader understands; the server's own text (without the
// field's name in front) for a reason this page does not know.
function validationText(err) {
  const known = (err.body.reasons || []).map(reasonText).filter(Boolean);
  if (known.length) return known.join(" ");
  return err.message.replace(/^\w+: /, "");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    showError(gettext("Enter a username and a password."));
    return;
  }
  if (mode === "signup" && password !== form.password2.value) {
    showError(gettext("The two passwords differ. Type the same password twice."));
    form.password2.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api(mode === "signup" ? "/api/auth/signup/" : "/api/auth/login/", { method: "POST", body: { username, password } });
    window.location.assign(next);
    return;
  } catch (err) {
    if (err.code === "rate_limited" && err.retryAfter) {
      const until = Date.now() + err.retryAfter * 1000;
      clearInterval(retryTimer);
      const tick = () => {
        const left = Math.ceil((until - Date.now()) / 1000);
        if (left <= 0) {
          clearInterval(retryTimer);
          showError("");
          button.disabled = false;
          return;
        }
        showError(gettext("Too many failed attempts. Try again in %(seconds)s s.", { seconds: left }));
      };
      tick();
      retryTimer = setInterval(tick, 500);
      return;
    }
    showError(err.code === "validation_error" ? validationText(err) : sentence(err.code, { message: err.message }));
  }
  button.disabled = false;
});

// The form can be sent now that it goes to the API (the page renders its button disabled).
form.querySelector("button[type=submit]").disabled = false;
