// A destructive button asks once more before acting, in place (no modal dialog): the first
// click changes its label to the question, a second click within a few seconds acts.
import { h } from "./dom.js";

const ARMED_MS = 4000;

export function armConfirm(button, question, action) {
  const label = button.textContent;
  let armed = null;
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.classList.remove("armed");
  };
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = question;
      button.classList.add("armed");
      armed = setTimeout(disarm, ARMED_MS);
      return;
    }
    clearTimeout(armed);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      disarm();
    }
  });
  return button;
}

export function confirmButton(label, question, action) {
  return armConfirm(h("button", { type: "button", class: "quiet small" }, label), question, action);
}
