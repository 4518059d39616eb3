// What every page has: the sign-out button and the narrow-screen side-panel toggle; for a
// signed-in user also the live workspace (`/ws/me/`, the tab's title) and Ctrl+K.
import { signOut } from "./api.js";
import { installSwitcher } from "./switcher.js";
import { workspace } from "./workspace.js";

const signOutButton = document.getElementById("sign-out");
if (signOutButton) {
  signOutButton.addEventListener("click", () => {
    signOutButton.disabled = true;
    signOut();
  });
}

// On a phone the side panel covers the conversation; it opens from the header and closes
// from its own button or with Escape.
for (const toggle of document.querySelectorAll(".side-toggle")) {
  const panel = document.getElementById(toggle.getAttribute("aria-controls"));
  if (!panel) continue;
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    panel.classList.toggle("open", open);
  };
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    setOpen(open);
    if (open) panel.querySelector(".side-close")?.focus();
  });
  panel.querySelector(".side-close")?.addEventListener("click", () => {
    setOpen(false);
    toggle.focus();
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panel.classList.contains("open")) {
      setOpen(false);
      toggle.focus();
    }
  });
}

if (workspace) {
  workspace.start();
  installSwitcher();
}
