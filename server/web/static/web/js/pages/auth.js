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
    // Validation messages (taken name, weak password) are the server's own, already in the
    // request's language where Django translates them.
    showError(err.code === "validation_error" ? err.message : sentence(err.code, { message: err.message }));
  }
  button.disabled = false;
});
