// Translations come from Django's JavaScript catalog (/jsi18n/, loaded before the modules),
// so the page's language is the one Django chose for the request.
const catalog = globalThis.django;

function fill(text, params) {
  if (!params) return text;
  return text.replace(/%\((\w+)\)s/g, (whole, key) => (key in params ? String(params[key]) : whole));
}

export function gettext(msgid, params) {
  return fill(catalog ? catalog.gettext(msgid) : msgid, params);
}

export function ngettext(singular, plural, count, params) {
  const text = catalog ? catalog.ngettext(singular, plural, count) : count === 1 ? singular : plural;
  return fill(text, { count, ...params });
}

export const lang = document.documentElement.lang || "ko";
