// A WebSocket that comes back: after a drop it reconnects with exponential backoff and jitter,
// and tells the page, which then fetches what it missed (SPEC 4). Closes that mean "stop
// trying" (signed out, no longer a member, no such room, session ended) are final. Frames
// numbered by the server (`seq`) that skip a number, or a `resync` frame, mean events were
// lost on the way: the page is told to fetch history again, as after a reconnect.

export const CLOSE = Object.freeze({
  NOT_AUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  SESSION_ENDED: 4410,
});

const FINAL = new Set([CLOSE.NOT_AUTHENTICATED, CLOSE.FORBIDDEN, CLOSE.NOT_FOUND, CLOSE.SESSION_ENDED]);
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class LiveSocket {
  constructor(path, { onFrame, onOpen, onState, onFinal, onGap }) {
    this.url = `${window.location.protocol === "https:" ? "wss" : "ws"}://${window.location.host}${path}`;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onState = onState || (() => {});
    this.onFinal = onFinal || (() => {});
    this.onGap = onGap || (() => {});
    this.seq = null;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.opened = 0;
    this.stopped = false;
    const hurry = () => {
      if (this.timer !== null && document.visibilityState === "visible") this.connectNow();
    };
    window.addEventListener("online", hurry);
    document.addEventListener("visibilitychange", hurry);
  }

  start() {
    this.connect();
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.ws.close(1000);
  }

  connectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.onState(this.opened ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.seq = null;
      const reconnect = this.opened > 0;
      this.opened += 1;
      this.onState("open");
      this.onOpen(reconnect);
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (typeof frame.seq === "number") {
        const gap = this.seq !== null && frame.seq !== this.seq + 1;
        this.seq = frame.seq;
        if (gap) this.onGap();
      }
      if (frame.type === "resync") this.onGap();
      else this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FINAL.has(event.code)) {
        this.stopped = true;
        this.onState("closed");
        this.onFinal(event.code);
        return;
      }
      this.schedule();
    });
  }

  schedule() {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.onState("waiting", delay);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }
}
