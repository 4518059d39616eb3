// A small syntax highlighter for the code blocks of AI replies. It splits code into tokens
// with sticky regular expressions and returns text nodes and <span class="tok-..."> elements:
// the code is never parsed as HTML. Unknown languages are shown plain.

function words(list) {
  return new Set(list.split(/\s+/).filter(Boolean));
}

const JS_KEYWORDS = words(`
  async await break case catch class const continue debugger default delete do else enum export
  extends finally for from function if implements import in instanceof interface let new of
  package private protected public return static super switch this throw try type typeof var void
  while with yield as declare namespace readonly keyof satisfies`);
const JS_LITERALS = words("true false null undefined NaN Infinity");
const PY_KEYWORDS = words(`
  and as assert async await break class continue def del elif else except finally for from global
  if import in is lambda match case nonlocal not or pass raise return try while with yield`);
const PY_LITERALS = words("True False None self cls");
const PY_BUILTINS = words(`
  print len range enumerate zip map filter sorted reversed list dict set tuple str int float bool
  bytes open isinstance issubclass super type object min max sum any all abs round repr iter next
  getattr setattr hasattr id hash input format vars dir Exception ValueError TypeError KeyError`);
const C_KEYWORDS = words(`
  auto break case catch char class const constexpr continue default delete do double else enum
  explicit extern final float for friend func go goto if impl import include inline int interface
  let long loop match mod move mut namespace new operator override package private protected pub
  public register return short signed sizeof static struct super switch template this throw trait
  try typedef typename union unsigned use using var virtual void volatile where while defer chan
  map range select fallthrough fn crate dyn ref as in is val fun object when data sealed internal
  extends implements abstract synchronized throws instanceof boolean byte string bool`);
const C_LITERALS = words("true false null nullptr nil None Some Ok Err self Self iota");
const SH_KEYWORDS = words(`
  if then else elif fi for while until do done case esac in function return local export unset
  readonly shift source alias set exit echo cd sudo`);
const SQL_KEYWORDS = words(`
  select from where and or not insert into values update set delete create table drop alter add
  column index primary key foreign references join left right inner outer full cross on as group
  by order having limit offset distinct union all exists in is null like between case when then
  else end begin commit rollback transaction view returning with default unique constraint asc
  desc count sum avg min max`);

const NUMBER = /0[xX][0-9a-fA-F_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[a-zA-Z%]*/y;
const IDENT = /[A-Za-z_$][\w$]*/y;
const SPACE = /\s+/y;

function stringRule(quotes) {
  const parts = quotes.map((q) => {
    const e = q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return q.length === 3 ? `${e}[\\s\\S]*?(?:${e}|$)` : `${e}(?:\\\\[\\s\\S]|(?!${e})[^\\\\\\n])*(?:${e}|$)`;
  });
  return new RegExp(parts.join("|"), "y");
}

function codeLanguage({ line, block, quotes, keywords, literals = new Set(), builtins = new Set(), caseless = false, extra = [] }) {
  const rules = [];
  if (block) rules.push(["comment", new RegExp(`${block[0]}[\\s\\S]*?(?:${block[1]}|$)`, "y")]);
  if (line) rules.push(["comment", new RegExp(`${line}[^\\n]*`, "y")]);
  rules.push(...extra);
  rules.push(["string", stringRule(quotes)]);
  rules.push(["number", NUMBER]);
  return { rules, keywords, literals, builtins, caseless };
}

const JS = codeLanguage({ line: "//", block: ["/\\*", "\\*/"], quotes: ['"', "'", "`"], keywords: JS_KEYWORDS, literals: JS_LITERALS });
const PY = codeLanguage({
  line: "#",
  quotes: ['"""', "'''", '"', "'"],
  keywords: PY_KEYWORDS,
  literals: PY_LITERALS,
  builtins: PY_BUILTINS,
  extra: [["meta", /@[\w.]+/y]],
});
const C = codeLanguage({
  line: "//",
  block: ["/\\*", "\\*/"],
  quotes: ['"', "'", "`"],
  keywords: C_KEYWORDS,
  literals: C_LITERALS,
  extra: [["meta", /#\s*[a-z]+|@\w+/y]],
});
const SH = codeLanguage({ line: "#", quotes: ['"', "'"], keywords: SH_KEYWORDS, extra: [["variable", /\$\{[^}\n]*\}|\$[\w@#?*!-]/y]] });
const SQL = codeLanguage({ line: "--", block: ["/\\*", "\\*/"], quotes: ["'", '"'], keywords: SQL_KEYWORDS, literals: words("true false null"), caseless: true });
const JSON_LANG = codeLanguage({ quotes: ['"'], keywords: new Set(), literals: words("true false null"), extra: [["attr", /"(?:\\.|[^"\\\n])*"(?=\s*:)/y]] });
const YAML = codeLanguage({ line: "#", quotes: ['"', "'"], keywords: new Set(), literals: words("true false null yes no on off"), extra: [["attr", /[\w.-]+(?=\s*[:=])/y]] });
const CSS = codeLanguage({ block: ["/\\*", "\\*/"], quotes: ['"', "'"], keywords: new Set(), extra: [["attr", /[\w-]+(?=\s*:)/y], ["meta", /@[\w-]+|#[0-9a-fA-F]{3,8}\b/y]] });
const MARKUP = {
  rules: [
    ["comment", /<!--[\s\S]*?(?:-->|$)/y],
    ["keyword", /<\/?[A-Za-z][\w:-]*|\/?>/y],
    ["attr", /[A-Za-z_:][\w:.-]*(?==)/y],
    ["string", /"[^"]*"?|'[^']*'?/y],
  ],
  keywords: new Set(),
  literals: new Set(),
  builtins: new Set(),
};
const DIFF = {
  rules: [
    ["inserted", /^\+[^\n]*/my],
    ["deleted", /^-[^\n]*/my],
    ["meta", /^@@[^\n]*/my],
  ],
  keywords: new Set(),
  literals: new Set(),
  builtins: new Set(),
};

const LANGUAGES = {
  js: JS, javascript: JS, jsx: JS, mjs: JS, cjs: JS, ts: JS, typescript: JS, tsx: JS, node: JS,
  py: PY, python: PY, python3: PY, py3: PY,
  c: C, h: C, cpp: C, "c++": C, cc: C, hpp: C, java: C, go: C, golang: C, rust: C, rs: C, cs: C,
  csharp: C, kotlin: C, kt: C, swift: C, scala: C, dart: C, php: C,
  sh: SH, bash: SH, shell: SH, zsh: SH, console: SH, shellsession: SH,
  sql: SQL, postgres: SQL, postgresql: SQL, sqlite: SQL, mysql: SQL,
  json: JSON_LANG, jsonc: JSON_LANG,
  yaml: YAML, yml: YAML, toml: YAML, ini: YAML, env: YAML, dockerfile: SH,
  css: CSS, scss: CSS, less: CSS,
  html: MARKUP, xml: MARKUP, svg: MARKUP, vue: MARKUP,
  diff: DIFF, patch: DIFF,
};

export function isKnownLanguage(name) {
  return Object.hasOwn(LANGUAGES, name);
}

function span(kind, text) {
  const el = document.createElement("span");
  el.className = `tok-${kind}`;
  el.textContent = text;
  return el;
}

export function highlight(code, languageName) {
  const fragment = document.createDocumentFragment();
  const language = Object.hasOwn(LANGUAGES, languageName) ? LANGUAGES[languageName] : null;
  if (!language) {
    fragment.append(code);
    return fragment;
  }
  let plain = "";
  const flush = () => {
    if (plain) fragment.append(plain);
    plain = "";
  };
  let pos = 0;
  while (pos < code.length) {
    let matched = false;
    for (const [kind, rule] of language.rules) {
      rule.lastIndex = pos;
      const m = rule.exec(code);
      if (m && m[0].length > 0) {
        flush();
        fragment.append(span(kind, m[0]));
        pos += m[0].length;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    SPACE.lastIndex = pos;
    const space = SPACE.exec(code);
    if (space) {
      plain += space[0];
      pos += space[0].length;
      continue;
    }
    IDENT.lastIndex = pos;
    const ident = IDENT.exec(code);
    if (ident) {
      const word = ident[0];
      const key = language.caseless ? word.toLowerCase() : word;
      const kind = language.keywords.has(key)
        ? "keyword"
        : language.literals.has(word)
          ? "literal"
          : language.builtins.has(word)
            ? "builtin"
            : code[pos + word.length] === "("
              ? "function"
              : null;
      if (kind) {
        flush();
        fragment.append(span(kind, word));
      } else {
        plain += word;
      }
      pos += word.length;
      continue;
    }
    plain += code[pos];
    pos += 1;
  }
  flush();
  return fragment;
}
