// Ctrl+K (Cmd+K on a Mac) jumps to a room or an AI session by name (SPEC 9.5): a dialog with a
// filter box and the matching places, arrow keys to choose, Enter to go. The rooms come live
// from workspace.js; the active AI sessions are asked for as the dialog opens.
import { api } from "./api.js";
import { h } from "./dom.js";
import { gettext } from "./i18n.js";
import { workspace } from "./workspace.js";

const MAX_SHOWN = 30;

function fold(text) {
  return text.normalize("NFKC").toLowerCase();
}

class Switcher {
  constructor() {
    this.sessions = [];
    this.places = [];
    this.active = 0;
    this.retyped = false;
    this.input = h("input", {
      type: "search",
      id: "switcher-input",
      autocomplete: "off",
      spellcheck: "false",
      role: "combobox",
      "aria-controls": "switcher-list",
      "aria-expanded": "true",
      "aria-label": gettext("Room or AI session"),
      placeholder: gettext("Jump to a room or AI session…"),
    });
    this.list = h("ul", { class: "switcher-list", id: "switcher-list", role: "listbox" });
    this.dialog = h(
      "dialog",
      { class: "switcher", id: "switcher", "aria-label": gettext("Jump to") },
      this.input,
      this.list,
      h("p", { class: "hint" }, gettext("↑ ↓ to choose, Enter to go, Esc to close.")),
    );
    document.body.append(this.dialog);
    this.input.addEventListener("input", () => {
      this.active = 0;
      this.retyped = true;
      this.render();
    });
    // Rooms that arrive while it is open are offered at once.
    workspace?.on((event) => {
      if (this.dialog.open && ["rooms", "room_added", "room_removed", "room_updated"].includes(event.type)) this.render();
    });
    this.input.addEventListener("keydown", (event) => this.key(event));
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close();
    });
  }

  async open() {
    if (this.dialog.open) return;
    this.input.value = "";
    this.active = 0;
    this.dialog.showModal();
    this.render();
    try {
      this.sessions = (await api("/api/llm/sessions/", { query: { active: true } })).sessions;
    } catch {
      this.sessions = [];
    }
    if (this.dialog.open) this.render();
  }

  candidates() {
    const rooms = (workspace ? workspace.sorted() : []).map((room) => ({
      kind: gettext("Room"),
      name: room.name,
      detail: room.unread_count ? gettext("%(count)s unread", { count: room.unread_count }) : "",
      url: `/rooms/${room.id}/`,
    }));
    const sessions = this.sessions.map((session) => ({
      kind: gettext("AI session"),
      name: session.room_name,
      detail: gettext("started by %(name)s", { name: session.created_by }),
      url: `/ai/${session.session_id}/`,
    }));
    return [...rooms, ...sessions];
  }

  render() {
    const wanted = fold(this.input.value.trim());
    const chosen = this.places[this.active]?.url;
    this.places = this.candidates()
      .filter((place) => !wanted || fold(place.name).includes(wanted))
      .slice(0, MAX_SHOWN);
    // The place chosen stays chosen when the list changes under it (sessions or rooms arrive).
    const kept = this.places.findIndex((place) => place.url === chosen);
    this.active = kept >= 0 && !this.retyped ? kept : Math.min(this.active, Math.max(0, this.places.length - 1));
    this.retyped = false;
    if (!this.places.length) {
      this.list.replaceChildren(h("li", { class: "empty" }, gettext("Nothing matches.")));
      this.input.removeAttribute("aria-activedescendant");
      return;
    }
    this.list.replaceChildren(
      ...this.places.map((place, index) => {
        const item = h(
          "li",
          { role: "option", id: `switch-${index}`, "aria-selected": String(index === this.active), class: index === this.active ? "active" : "" },
          h("span", { class: "kind" }, place.kind),
          " ",
          h("span", { class: "name" }, place.name),
          place.detail ? h("span", { class: "detail" }, place.detail) : null,
        );
        item.addEventListener("click", () => this.go(place));
        return item;
      }),
    );
    this.input.setAttribute("aria-activedescendant", `switch-${this.active}`);
    this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
  }

  key(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!this.places.length) return;
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.places.length) % this.places.length;
      this.render();
    } else if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      const place = this.places[this.active];
      if (place) this.go(place);
    } else if (event.key === "Escape") {
      // The dialog's own Escape is skipped by browsers that judge it unrequested.
      event.preventDefault();
      this.dialog.close();
    }
  }

  go(place) {
    this.dialog.close();
    window.location.assign(place.url);
  }
}

let switcher = null;

export function installSwitcher() {
  const open = () => {
    switcher ??= new Switcher();
    switcher.open();
  };
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
      event.preventDefault();
      open();
    }
  });
  document.getElementById("jump")?.addEventListener("click", open);
}
