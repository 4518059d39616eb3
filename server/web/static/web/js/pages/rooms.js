// The rooms I am a member of, live (unread and mention badges, last message, latest activity
// first: sidebar.js), and creating one.
import { api } from "../api.js";
import { gettext } from "../i18n.js";
import { sentence } from "../notices.js";
import { RoomList, notificationOffer } from "../sidebar.js";

const form = document.getElementById("create-room");
const formError = form.querySelector(".form-error");

new RoomList(document.getElementById("room-list"), {
  detailed: true,
  emptyText: gettext("You are not in any room yet. Create one, or ask a room's owner to add you."),
});
const offer = notificationOffer();
if (offer) document.getElementById("rooms-title").after(offer);

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
    formError.textContent = sentence(err.code, { message: err.message });
    formError.hidden = false;
    button.disabled = false;
  }
});

