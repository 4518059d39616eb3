// The rooms I am a member of, and creating one.
import { api } from "../api.js";
import { h } from "../dom.js";
import { gettext, ngettext } from "../i18n.js";
import { sentence } from "../notices.js";
import { timeElement } from "../messages.js";

const list = document.getElementById("room-list");
const form = document.getElementById("create-room");
const formError = form.querySelector(".form-error");

function roomCard(room) {
  const members = room.participants.length + 1;
  return h(
    "li",
    { class: "room" },
    h("a", { href: `/rooms/${room.id}/`, class: "room-link" }, h("span", { class: "room-name" }, room.name)),
    h(
      "span",
      { class: "room-meta" },
      room.is_owner ? h("span", { class: "badge" }, gettext("Owner")) : gettext("Owner: %(name)s", { name: room.owner }),
      " · ",
      ngettext("%(count)s member", "%(count)s members", members),
      " · ",
      timeElement(room.created_at),
    ),
  );
}

async function load() {
  try {
    const data = await api("/api/chat/my-rooms/");
    if (!data.rooms.length) {
      list.replaceChildren(h("p", { class: "empty" }, gettext("You are not in any room yet. Create one, or ask a room's owner to add you.")));
    } else {
      list.replaceChildren(h("ul", { class: "rooms" }, data.rooms.map(roomCard)));
    }
  } catch (err) {
    list.replaceChildren(h("p", { class: "form-error" }, sentence(err.code, { message: err.message })));
  }
  list.setAttribute("aria-busy", "false");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.hidden = true;
  const name = form.name.value.trim();
  if (!name) {
    formError.textContent = gettext("Give the room a name.");
    formError.hidden = false;
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const data = await api("/api/chat/rooms/", { method: "POST", body: { name } });
    window.location.assign(`/rooms/${data.room.id}/`);
  } catch (err) {
    formError.textContent = err.code === "validation_error" ? err.message : sentence(err.code, { message: err.message });
    formError.hidden = false;
    button.disabled = false;
  }
});

load();
