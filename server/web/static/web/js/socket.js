// A WebSocket that comes back: after a drop it reconnects with exponential backoff and jitter,
// and tells the page, which then fetches what it missed (SPEC 4). Closes that mean "stop
// trying" (signed out, no longer a member, no such room, session ended) are final. Frames
// numbered by the server (`seq`) that skip a number, or a `resync` frame, mean events were
// lost on the way: the page is told to fetch history again, as after a reconnect.
//
// The state it reports is honest (SPEC 9.5): a socket can look open long after its network
// went away, so the browser's `offline` event drops it at once, and a heartbeat (`ping`, which
// the server answers with `pong`) that hears nothing back within HEARTBEAT_TIMEOUT_MS drops it
// and reconnects.

export const CLOSE = Object.freeze({
  NOT_AUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  SESSION_ENDED: 4410,
});

const FINAL = new Set([CLOSE.NOT_AUTHENTICATED, CLOSE.FORBIDDEN, CLOSE.NOT_FOUND, CLOSE.SESSION_ENDED]);
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const HEARTBEAT_EVERY_MS = 15000;
const HEARTBEAT_TIMEOUT_MS = 10000;

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
    this.offline = false;
    this.started = false;
    this.heartbeat = null;
    this.silence = null;
    const hurry = () => {
      if (this.timer !== null && document.visibilityState === "visible") this.connectNow();
    };
    window.addEventListener("online", () => {
      this.offline = false;
      if (this.started && !this.stopped && this.ws === null) this.connectNow();
    });
    window.addEventListener("offline", () => this.wentOffline());
    document.addEventListener("visibilitychange", hurry);
  }

  // The network is gone: the socket may not know yet, the page must.
  wentOffline() {
    if (!this.started || this.stopped) return;
    this.offline = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.drop();
    this.onState("offline");
  }

  // Forget the current socket (its late events are ignored) and close it.
  drop() {
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(4000);
      } catch {
        // already closing
      }
    }
  }

  startHeartbeat(ws) {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify({ type: "ping" }));
      clearTimeout(this.silence);
      // Any frame answers; none within the time-out means the connection is dead.
      this.silence = setTimeout(() => {
        if (this.ws !== ws) return;
        this.drop();
        this.schedule();
      }, HEARTBEAT_TIMEOUT_MS);
    }, HEARTBEAT_EVERY_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    clearTimeout(this.silence);
    this.heartbeat = null;
    this.silence = null;
  }

  start() {
    this.started = true;
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
    this.stopHeartbeat();
    if (this.ws) this.ws.close(1000);
  }

  connectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    if (this.offline || navigator.onLine === false) {
      this.offline = true;
      this.onState("offline");
      return;
    }
    this.onState(this.opened ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.seq = null;
      const reconnect = this.opened > 0;
      this.opened += 1;
      this.startHeartbeat(ws);
      this.onState("open");
      this.onOpen(reconnect);
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      clearTimeout(this.silence);
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
      else if (frame.type !== "pong") this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
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
