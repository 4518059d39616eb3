// Usage figures as every page shows them (SPEC 11.1): one rule for money and one for token
// counts, so that a call reads the same in the session panel, the room and the usage page as
// in the API, the admin and `manage.py llm_usage`.
import { gettext, lang, ngettext } from "./i18n.js";

const counts = new Intl.NumberFormat(lang);
const MONEY = /^(\d+)(?:\.(\d+))?$/;

// The API writes a cost as USD with 6 decimals, rounded up, so that nothing that cost money
// reads as $0. A page shows that same figure, only without the zeros after the cents:
// "0.000555" -> "$0.000555", "1.500000" -> "$1.50". A number (a chart's axis) is first
// written the API's way. Anything else (an unknown cost) is a dash, never $0.
export function usd(value) {
  let text = value;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) return "—";
    // toFixed(3) first: 0.1 * 1e6 is 100000.00000000001, which must not round up.
    text = (Math.ceil(Number((value * 1e6).toFixed(3))) / 1e6).toFixed(6);
  }
  const match = typeof text === "string" ? MONEY.exec(text) : null;
  if (!match) return "—";
  const cents = (match[2] || "").replace(/0+$/, "").padEnd(2, "0");
  return `$${counts.format(Number(match[1]))}.${cents}`;
}

export function tokens(value) {
  return counts.format(Math.round(Number(value) || 0));
}

// What part of a total is estimated (calls the provider gave no usage for), or null.
export function estimatedNote(totals) {
  const n = totals.estimated_requests || 0;
  if (!n) return null;
  return ngettext(
    "%(count)s call estimated: %(tokens)s tokens, %(cost)s",
    "%(count)s calls estimated: %(tokens)s tokens, %(cost)s",
    n,
    { tokens: tokens(totals.estimated_tokens), cost: usd(totals.estimated_cost_usd) },
  );
}

// A cost total, with the calls of a model that has no price said plainly.
export function costText(totals) {
  const unpriced = totals.unpriced_requests || 0;
  const cost = usd(totals.cost_usd);
  return unpriced ? `${cost} ${ngettext("(+%(count)s call without a price)", "(+%(count)s calls without a price)", unpriced)}` : cost;
}

export function budgetText(budget) {
  if (budget.monthly_usd === null) return gettext("No monthly AI budget.");
  return gettext("%(left)s left of %(budget)s this month", { left: usd(budget.remaining_usd), budget: usd(budget.monthly_usd) });
}
