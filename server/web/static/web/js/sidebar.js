// The user's rooms, live from `/ws/me/` (workspace.js): each with its last message and its
// unread and mention badges, the one with the latest activity first. Drawn as the sidebar of
// the chat pages and as the list of the rooms page; both offer, once, to turn on notifications.
import { h } from "./dom.js";
import { gettext, ngettext } from "./i18n.js";
import { timeElement } from "./messages.js";
import { sentence } from "./notices.js";
import { workspace } from "./workspace.js";

function badges(room) {
  const out = [];
  if (room.mention_count > 0) {
    out.push(
      h(
        "span",
        { class: "count mention", title: ngettext("%(count)s unread mention", "%(count)s unread mentions", room.mention_count) },
        `@${room.mention_count}`,
      ),
    );
  }
  if (room.unread_count > 0) {
    out.push(
      h(
        "span",
        { class: "count", title: ngettext("%(count)s unread message", "%(count)s unread messages", room.unread_count) },
        room.unread_count > 99 ? "99+" : String(room.unread_count),
      ),
    );
  }
  return out;
}

function lastLine(room) {
  const last = room.last_message;
  if (!last) return h("span", { class: "preview muted" }, gettext("No messages yet"));
  return h("span", { class: "preview" }, h("span", { class: "who" }, `${last.username}: `), last.preview);
}

export function roomItem(room, { current = null, detailed = false } = {}) {
  const unread = room.unread_count > 0;
  const link = h(
    "a",
    {
      href: `/rooms/${room.id}/`,
      class: `room-link${unread ? " unread" : ""}`,
      "aria-current": room.id === current ? "page" : null,
      dataset: { roomId: room.id },
    },
    h("span", { class: "room-top" }, h("span", { class: "room-name" }, room.name), h("span", { class: "badges" }, badges(room))),
    h("span", { class: "room-line" }, lastLine(room), room.last_message ? timeElement(room.last_message.timestamp) : null),
  );
  if (!detailed) return h("li", { class: "room" }, link);
  const people = room.participants.length + 1;
  return h(
    "li",
    { class: "room" },
    link,
    h(
      "span",
      { class: "room-meta" },
      room.is_owner ? h("span", { class: "badge" }, gettext("Owner")) : gettext("Owner: %(name)s", { name: room.owner }),
      " · ",
      ngettext("%(count)s member", "%(count)s members", people),
      " · ",
      ngettext("%(count)s online", "%(count)s online", room.online.length),
    ),
  );
}

// Offer to turn on browser notifications for mentions: shown until the user has answered,
// asked from this click only (never on load).
export function notificationOffer() {
  if (!workspace || !workspace.canAsk()) return null;
  const button = h("button", { type: "button", class: "quiet small notify-offer", id: "notify-offer" }, gettext("Notify me of mentions"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    await workspace.askForNotifications();
    button.remove();
  });
  return button;
}

export class RoomList {
  constructor(container, { current = null, detailed = false, emptyText }) {
    Object.assign(this, { container, current, detailed, emptyText });
    if (!workspace) return;
    workspace.on((event) => {
      if (event.type === "error" && !workspace.loaded) {
        this.container.setAttribute("aria-busy", "false");
        this.container.replaceChildren(h("p", { class: "form-error" }, sentence(event.error.code, { message: event.error.message })));
        return;
      }
      if (["rooms", "room_added", "room_removed", "room_updated", "room_activity", "room_changed", "room_shown", "read", "member_added", "member_removed", "presence"].includes(event.type)) {
        this.render();
      }
    });
    if (workspace.loaded) this.render();
  }

  render() {
    this.container.setAttribute("aria-busy", "false");
    const rooms = workspace.sorted();
    if (!rooms.length) {
      this.container.replaceChildren(h("p", { class: "empty" }, this.emptyText));
      return;
    }
    this.container.replaceChildren(h("ul", { class: `rooms${this.detailed ? "" : " compact"}` }, rooms.map((room) => roomItem(room, this))));
  }
}
