// Markdown for AI replies, rendered straight into DOM nodes. Nothing is ever parsed as HTML:
// tags in the text stay text, and a link becomes an <a> only when its target is an absolute
// http(s) URL (a `javascript:` or `data:` link is shown as the text it was written as).
// Unclosed code fences render as code, so a reply being streamed looks right as it grows.
import { h } from "./dom.js";
import { highlight, isKnownLanguage } from "./highlight.js";
import { gettext } from "./i18n.js";

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`\n]*$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const QUOTE = /^ {0,3}>[ \t]?(.*)$/;
const BULLET = /^( {0,3})([-*+])[ \t]+(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})[.)][ \t]+(.*)$/;
const TABLE_DIVIDER = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const MAX_DEPTH = 8;
// Past this size a paragraph is shown as plain text: inline parsing is quadratic at worst.
const MAX_INLINE_CHARS = 20000;

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), fragment, 0);
  return fragment;
}

function startsBlock(line) {
  return (
    FENCE_OPEN.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || BULLET.test(line) || ORDERED.test(line)
  );
}

function blocks(lines, parent, depth) {
  if (depth > MAX_DEPTH) {
    parent.append(h("p", {}, lines.join("\n")));
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    let m = FENCE_OPEN.exec(line);
    if (m) {
      const fence = m[1];
      const body = [];
      let closed = false;
      i += 1;
      while (i < lines.length) {
        const close = FENCE_CLOSE.exec(lines[i]);
        i += 1;
        if (close && close[1][0] === fence[0] && close[1].length >= fence.length) {
          closed = true;
          break;
        }
        body.push(lines[i - 1]);
      }
      parent.append(codeBlock(body.join("\n"), m[2].toLowerCase(), closed));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // Headings inside a message sit below the page's own h1 and h2.
      parent.append(inline(m[2] || "", h(`h${Math.min(m[1].length + 2, 6)}`), 0));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(h("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && lines[i].trim()) {
        const q = QUOTE.exec(lines[i]);
        inner.push(q ? q[1] : lines[i]);
        i += 1;
      }
      const quote = h("blockquote");
      blocks(inner, quote, depth + 1);
      parent.append(quote);
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) {
      i = list(lines, i, parent, depth);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      i = table(lines, i, parent);
      continue;
    }
    const para = [line];
    i += 1;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
      para.push(lines[i]);
      i += 1;
    }
    parent.append(inline(para.join("\n"), h("p"), 0));
  }
}

function list(lines, start, parent, depth) {
  const ordered = ORDERED.test(lines[start]);
  const pattern = ordered ? ORDERED : BULLET;
  const first = pattern.exec(lines[start]);
  const el = h(ordered ? "ol" : "ul");
  if (ordered && first[2] !== "1") el.setAttribute("start", String(Number(first[2])));
  let i = start;
  while (i < lines.length) {
    const m = pattern.exec(lines[i]);
    if (!m) break;
    const contentIndent = m[0].length - m[3].length;
    const body = [m[3]];
    i += 1;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        let j = i + 1;
        while (j < lines.length && !lines[j].trim()) j += 1;
        if (j < lines.length && /^[ \t]{2,}\S/.test(lines[j])) {
          body.push("");
          i += 1;
          continue;
        }
        break;
      }
      const indent = next.length - next.trimStart().length;
      if (indent >= 2) {
        body.push(next.slice(Math.min(indent, contentIndent)));
      } else if (startsBlock(next)) {
        break;
      } else {
        body.push(next);
      }
      i += 1;
    }
    const item = h("li");
    if (body.length === 1) inline(body[0], item, 0);
    else blocks(body, item, depth + 1);
    el.append(item);
    // A blank line between two items of the same list keeps them in one list.
    let j = i;
    while (j < lines.length && !lines[j].trim()) j += 1;
    if (j < lines.length && pattern.test(lines[j])) i = j;
  }
  parent.append(el);
  return i;
}

function cells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function table(lines, start, parent) {
  const head = cells(lines[start]);
  const aligns = cells(lines[start + 1]).map((c) => (c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : null));
  const thead = h("thead", {}, h("tr", {}, head.map((c, k) => inline(c, h("th", { class: aligns[k] ? `align-${aligns[k]}` : null }), 0))));
  const tbody = h("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
    const row = cells(lines[i]);
    tbody.append(h("tr", {}, head.map((_, k) => inline(row[k] || "", h("td", { class: aligns[k] ? `align-${aligns[k]}` : null }), 0))));
    i += 1;
  }
  parent.append(h("div", { class: "table-wrap" }, h("table", {}, thead, tbody)));
  return i;
}

export function codeBlock(code, language, closed = true) {
  const known = isKnownLanguage(language);
  const codeEl = h("code", { class: known ? `lang-${language}` : null });
  codeEl.append(highlight(code, language));
  const copy = h("button", { type: "button", class: "copy quiet" }, gettext("Copy"));
  copy.addEventListener("click", () => copyText(code, copy));
  return h(
    "div",
    { class: closed ? "codeblock" : "codeblock open" },
    h("div", { class: "codebar" }, h("span", { class: "lang" }, language || gettext("code")), copy),
    h("pre", { tabindex: "0" }, codeEl),
  );
}

async function copyText(text, button) {
  let done = false;
  try {
    await navigator.clipboard.writeText(text);
    done = true;
  } catch {
    // Outside a secure context there is no clipboard API: copy from a selected textarea.
    const area = h("textarea", { class: "sr-only", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    done = document.execCommand("copy");
    area.remove();
  }
  button.textContent = done ? gettext("Copied") : gettext("Copy failed");
  button.classList.toggle("done", done);
  setTimeout(() => {
    button.textContent = gettext("Copy");
    button.classList.remove("done");
  }, 1500);
}

// --- inline --------------------------------------------------------------------------------

const LINK_TARGET = "(<[^<>\\n]*>|[^\\s()<>]*(?:\\([^\\s()<>]*\\)[^\\s()<>]*)*)";
const INLINE_RULES = [
  ["escape", /\\([!-/:-@[-`{-~])/g],
  ["code", /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g],
  ["link", new RegExp(`(!?)\\[((?:[^\\[\\]\\n]|\\[[^\\[\\]\\n]*\\])*)\\]\\(\\s*${LINK_TARGET}(?:\\s+(?:"[^"\\n]*"|'[^'\\n]*'))?\\s*\\)`, "g")],
  ["autolink", /<(https?:\/\/[^\s<>]+)>/g],
  ["url", /\bhttps?:\/\/[^\s<>"'`]+/g],
  ["strong", /\*\*(?=\S)([\s\S]*?\S)\*\*|(?<![\p{L}\p{N}_])__(?=\S)([\s\S]*?\S)__(?![\p{L}\p{N}_])/gu],
  ["em", /\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<![\p{L}\p{N}_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\p{L}\p{N}_])/gu],
  ["strike", /~~(?=\S)([\s\S]*?\S)~~/g],
  ["break", /\n/g],
];

function httpUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function anchor(href, children) {
  return h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow ugc" }, children);
}

// A bare URL ends before trailing punctuation, and before a ")" it did not open.
function trimUrl(url) {
  let end = url.length;
  while (end > 0) {
    const ch = url[end - 1];
    if (".,;:!?'\"*_~]".includes(ch)) end -= 1;
    else if (ch === ")" && (url.slice(0, end).match(/\(/g) || []).length < (url.slice(0, end).match(/\)/g) || []).length) end -= 1;
    else break;
  }
  return url.slice(0, end);
}

export function inline(text, parent, depth) {
  if (depth > MAX_DEPTH || text.length > MAX_INLINE_CHARS) {
    parent.append(text);
    return parent;
  }
  let pos = 0;
  let plain = "";
  // Each rule's leftmost match at or after `pos` stays valid until `pos` passes it, so every
  // rule scans the text about once, not once per token.
  const ahead = new Map();
  while (pos < text.length) {
    let best = null;
    for (const [kind, rule] of INLINE_RULES) {
      let m = ahead.get(kind);
      if (m === undefined || (m !== null && m.index < pos)) {
        rule.lastIndex = pos;
        m = rule.exec(text);
        ahead.set(kind, m);
      }
      if (m && (best === null || m.index < best.m.index)) best = { kind, m };
    }
    if (best === null) break;
    const { kind, m } = best;
    plain += text.slice(pos, m.index);
    let consumed = m[0].length;
    let node = null;
    switch (kind) {
      case "escape":
        plain += m[1];
        break;
      case "code":
        node = h("code", {}, m[2].length > 2 && m[2].startsWith(" ") && m[2].endsWith(" ") ? m[2].slice(1, -1) : m[2]);
        break;
      case "link": {
        const target = m[3].startsWith("<") ? m[3].slice(1, -1) : m[3];
        const href = httpUrl(target);
        if (href === null) {
          plain += m[0];
        } else if (m[1] === "!") {
          // Images are not loaded (privacy, and the page's CSP): the reply links to them.
          node = anchor(href, [gettext("Image"), ": ", m[2] || target]);
        } else {
          node = inline(m[2] || target, anchor(href, []), depth + 1);
        }
        break;
      }
      case "autolink": {
        const href = httpUrl(m[1]);
        node = href ? anchor(href, [m[1]]) : null;
        if (!node) plain += m[0];
        break;
      }
      case "url": {
        const url = trimUrl(m[0]);
        consumed = url.length;
        const href = httpUrl(url);
        if (href) node = anchor(href, [url]);
        else plain += url;
        break;
      }
      case "strong":
        node = inline(m[1] ?? m[2], h("strong"), depth + 1);
        break;
      case "em":
        node = inline(m[1] ?? m[2], h("em"), depth + 1);
        break;
      case "strike":
        node = inline(m[1], h("del"), depth + 1);
        break;
      case "break":
        node = h("br");
        break;
    }
    if (node) {
      if (plain) parent.append(plain);
      plain = "";
      parent.append(node);
    }
    pos = m.index + consumed;
  }
  plain += text.slice(pos);
  if (plain) parent.append(plain);
  return parent;
}

// People's messages: plain text, with http(s) URLs made into links and line breaks kept.
export function renderPlain(text) {
  const fragment = document.createDocumentFragment();
  const rule = /\bhttps?:\/\/[^\s<>"'`]+/g;
  let pos = 0;
  let m;
  while ((m = rule.exec(text))) {
    const url = trimUrl(m[0]);
    const href = httpUrl(url);
    if (!href) continue;
    fragment.append(text.slice(pos, m.index), anchor(href, [url]));
    pos = m.index + url.length;
    rule.lastIndex = pos;
  }
  fragment.append(text.slice(pos));
  return fragment;
}
