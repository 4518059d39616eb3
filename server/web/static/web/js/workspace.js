// Everything outside the open page, live (SPEC 9.1): one `/ws/me/` socket per page keeps the
// signed-in user's rooms (unread and mention counts, last message, who is online) up to date,
// and tells the page's parts through `workspace.on(listener)`. No page polls.
//
// On every (re)connect the rooms are fetched again, and the events that arrived meanwhile are
// applied on top: an event about a message the fetched list already has changes nothing. The
// tab's title counts the unread mentions of every room; a mention that arrives while the tab
// is hidden shows a browser notification, once the user has allowed them from a click.
import { api, toSignIn } from "./api.js";
import { oneLine, pageData } from "./dom.js";
import { gettext } from "./i18n.js";
import { CLOSE, LiveSocket } from "./socket.js";

const ASKED_KEY = "notifications-asked";

function activityOf(room) {
  return room.last_message ? room.last_message.timestamp : room.created_at;
}

// A room's last message as the server gives it (`chat.selectors.PREVIEW_CHARS`).
const PREVIEW_CHARS = 140;

function lastId(room) {
  return room.last_message ? room.last_message.message_id : 0;
}

function members(room) {
  return [room.owner, ...room.participants];
}

class Workspace {
  constructor() {
    this.me = pageData().user?.username;
    this.rooms = new Map();
    // Per room, the last message its counts include (the snapshot's, then `room_activity`).
    this.counted = new Map();
    this.loaded = false;
    this.loading = null;
    this.held = [];
    this.listeners = new Set();
    this.online = new Map();
    this.baseTitle = document.title;
    this.socket = new LiveSocket("/ws/me/", {
      onFrame: (frame) => this.receive(frame),
      onOpen: (reconnect) => {
        this.load();
        if (reconnect) this.emit({ type: "reconnected" });
      },
      onGap: () => this.load(),
      onFinal: (code) => {
        if (code === CLOSE.NOT_AUTHENTICATED) toSignIn();
      },
      onState: (state) => this.emit({ type: "state", state }),
    });
  }

  start() {
    this.socket.start();
  }

  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event) {
    for (const listener of [...this.listeners]) listener(event);
  }

  // The rooms, the one with the latest activity first.
  sorted() {
    return [...this.rooms.values()].sort((a, b) => activityOf(b).localeCompare(activityOf(a)) || a.name.localeCompare(b.name));
  }

  room(id) {
    return this.rooms.get(id) || null;
  }

  isOnline(username) {
    return this.online.get(username) === true;
  }

  // A room page reports the user's own messages as it shows them (`/ws/me/` announces only
  // other people's), so the room's last message in the list is the newest one this tab knows
  // of. Only what is shown changes: the counts follow `/ws/me/` alone (`counted`).
  shown(roomId, message) {
    const room = this.rooms.get(roomId);
    if (!room || message.deleted || lastId(room) >= message.message_id) return;
    room.last_message = {
      message_id: message.message_id,
      username: message.username,
      preview: oneLine(message.message, PREVIEW_CHARS),
      timestamp: message.timestamp,
    };
    this.emit({ type: "room_shown", room_id: roomId });
  }

  async load() {
    const loading = (async () => {
      const data = await api("/api/chat/my-rooms/");
      this.rooms = new Map(data.rooms.map((room) => [room.id, room]));
      this.counted = new Map(data.rooms.map((room) => [room.id, lastId(room)]));
      this.online.clear();
      for (const room of data.rooms) for (const name of room.online) this.online.set(name, true);
    })();
    this.loading = loading;
    try {
      await loading;
    } catch (err) {
      if (this.loading === loading) this.loading = null;
      this.emit({ type: "error", error: err });
      return;
    }
    if (this.loading !== loading) return; // a later load superseded this one
    this.loading = null;
    this.loaded = true;
    const held = this.held;
    this.held = [];
    for (const frame of held) this.apply(frame);
    this.emit({ type: "rooms" });
    this.updateTitle();
  }

  receive(frame) {
    if (this.loading || !this.loaded) {
      this.held.push(frame);
      return;
    }
    this.apply(frame);
    this.updateTitle();
  }

  apply(frame) {
    const room = frame.room_id ? this.rooms.get(frame.room_id) : null;
    switch (frame.type) {
      case "room_added":
      case "room_updated":
        this.rooms.set(frame.room.id, frame.room);
        this.counted.set(frame.room.id, lastId(frame.room));
        for (const name of frame.room.online || []) this.online.set(name, true);
        break;
      case "room_removed":
        this.rooms.delete(frame.room_id);
        break;
      case "room_activity":
        // Counted once: an event about a message the counts already include changes nothing.
        if (!room || frame.message_id <= (this.counted.get(room.id) || 0)) return;
        this.counted.set(room.id, frame.message_id);
        if (frame.message_id > lastId(room)) {
          room.last_message = { message_id: frame.message_id, username: frame.username, preview: frame.preview, timestamp: frame.timestamp };
        }
        room.unread_count = frame.unread_count;
        if (frame.mention) {
          room.mention_count += 1;
          this.notify(room, frame);
        }
        break;
      case "room_changed":
        // A message edited or deleted: the counts as the server now has them, and the last
        // message when it was the one changed.
        if (!room) return;
        room.unread_count = frame.unread_count;
        room.mention_count = frame.mention_count;
        if (frame.last_changed) room.last_message = frame.last_message;
        break;
      case "read":
        if (!room) return;
        room.last_read_message_id = frame.last_read_message_id;
        room.unread_count = frame.unread_count;
        room.mention_count = frame.mention_count;
        break;
      case "member_added":
        if (!room || room.participants.includes(frame.username)) return;
        room.participants = [...room.participants, frame.username].sort();
        break;
      case "member_removed":
        if (!room) return;
        room.participants = room.participants.filter((name) => name !== frame.username);
        break;
      case "presence":
        this.online.set(frame.username, frame.online);
        for (const each of this.rooms.values()) {
          if (!members(each).includes(frame.username)) continue;
          const others = each.online.filter((name) => name !== frame.username);
          each.online = frame.online ? [...others, frame.username].sort() : others;
        }
        break;
      default:
        break;
    }
    this.emit(frame);
  }

  // --- the tab's title and notifications ---------------------------------------------------

  mentionTotal() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.mention_count || 0;
    return total;
  }

  setTitle(base) {
    this.baseTitle = base;
    this.updateTitle();
  }

  updateTitle() {
    const mentions = this.mentionTotal();
    document.title = mentions > 0 ? `(${mentions}) ${this.baseTitle}` : this.baseTitle;
  }

  // Whether the page should offer to turn notifications on (never asked from here before).
  canAsk() {
    if (!("Notification" in window) || Notification.permission !== "default") return false;
    try {
      return localStorage.getItem(ASKED_KEY) === null;
    } catch {
      return true;
    }
  }

  // Asked once, from a click: the browser's own prompt decides.
  async askForNotifications() {
    try {
      localStorage.setItem(ASKED_KEY, "1");
    } catch {
      // private mode: asked once per page instead
    }
    if (!("Notification" in window)) return "denied";
    const answer = await Notification.requestPermission();
    this.emit({ type: "notifications", permission: answer });
    return answer;
  }

  notify(room, frame) {
    if (document.visibilityState !== "hidden") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const note = new Notification(gettext("%(name)s mentioned you in %(room)s", { name: frame.username, room: room.name }), {
      body: frame.preview,
      tag: `mention-${room.id}`,
    });
    note.addEventListener("click", () => {
      window.focus();
      window.location.assign(`/rooms/${room.id}/`);
    });
  }
}

export const workspace = pageData().user ? new Workspace() : null;
