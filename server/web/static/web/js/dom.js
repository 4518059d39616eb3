// DOM building without HTML parsing: every string becomes a text node or an attribute value,
// so text from users or the model can never turn into markup. The page's CSP requires Trusted
// Types, so an accidental innerHTML would be refused by the browser as well.

const SAFE_SCHEMES = new Set(["http:", "https:"]);

// An absolute http(s) URL, or a path on this site; anything else (javascript:, data:, ...) is not.
export function safeUrl(raw) {
  if (typeof raw !== "string") return null;
  const value = raw.trim();
  if (value.startsWith("/") && !value.startsWith("//") && !value.startsWith("/\\")) return value;
  try {
    const url = new URL(value);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

// h("a", {href, class: "x", onclick: fn, dataset: {id: 1}}, "text", child...)
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "href" || key === "src") {
      const url = safeUrl(value);
      if (url !== null) el.setAttribute(key, url);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  return append(el, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(key, String(value));
  }
  return append(el, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : {};
}

export function show(el, visible) {
  el.hidden = !visible;
}

// A message id the server has never seen, so a resend after a dropped connection is
// recognised (SPEC 4.1). crypto.randomUUID needs a secure context; getRandomValues does not.
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Enter that sends: without Shift (a new line), and not the Enter that ends an input method's
// composition (Korean, Japanese...: `isComposing`, or keyCode 229 in some browsers).
export function isSendKey(event) {
  return event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229;
}

// A text as one line of at most `max` characters, cut with "…" (as the server's
// `chat.selectors.preview` makes a room's last message).
export function oneLine(text, max) {
  const line = String(text || "").split(/\s+/).filter(Boolean).join(" ");
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}
