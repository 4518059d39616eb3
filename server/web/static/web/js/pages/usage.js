// AI usage: totals (with the estimated share), tokens and cost by day, by model, by room and
// by session, and (staff) by user; the same figures as a CSV file.
import { api } from "../api.js";
import { $, h, pageData } from "../dom.js";
import { costText, estimatedNote, tokens, usd } from "../figures.js";
import { gettext, lang, ngettext } from "../i18n.js";
import { sentence } from "../notices.js";
import { barList, columnChart } from "../charts.js";

const data = pageData();
const isStaff = Boolean(data.user && data.user.is_staff);
const dayFormat = new Intl.DateTimeFormat(lang, { month: "numeric", day: "numeric", timeZone: "UTC" });

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// Every day of the period, so that days without usage show as gaps, not as missing bars.
function days(since, until) {
  const out = [];
  for (let d = new Date(since); d < until; d.setUTCDate(d.getUTCDate() + 1)) out.push(isoDay(d));
  return out;
}

function card(figure, label, value, detail) {
  return h("div", { class: "stat", dataset: { figure } }, h("span", { class: "stat-label" }, label), h("span", { class: "stat-value" }, value), detail ? h("span", { class: "stat-detail" }, detail) : null);
}

async function fetchGroups(groupBy, since) {
  return api("/api/llm/usage/", { query: { since, group_by: groupBy } });
}

async function load() {
  const error = $("#usage-error");
  error.hidden = true;
  const range = Number($("#range").value);
  const today = new Date();
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (range - 1)));
  const since = isoDay(start);
  const end = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 1));
  try {
    const wanted = ["day", "model", "room", "session", ...(isStaff ? ["user"] : [])];
    const results = await Promise.all(wanted.map((g) => fetchGroups(g, since)));
    const byKind = Object.fromEntries(wanted.map((g, i) => [g, results[i]]));
    const totals = byKind.day.totals;
    $("#totals").replaceChildren(
      card("requests", gettext("Requests"), tokens(totals.requests)),
      card("tokens", gettext("Tokens"), tokens(totals.total_tokens), gettext("%(prompt)s in · %(completion)s out", { prompt: tokens(totals.prompt_tokens), completion: tokens(totals.completion_tokens) })),
      card("cost", gettext("Cost"), costText(totals)),
      card("estimated", gettext("Estimated"), totals.estimated_requests ? usd(totals.estimated_cost_usd) : gettext("None"), estimatedNote(totals) || gettext("Every call has the provider's own figures.")),
    );
    const csv = new URL("/api/llm/usage/", window.location.origin);
    csv.search = new URLSearchParams({ since, format: "csv" }).toString();
    $("#csv").href = csv.pathname + csv.search;
    $("#totals").setAttribute("aria-busy", "false");

    const perDay = new Map(byKind.day.groups.map((g) => [g.key.slice(0, 10), g]));
    const dayKeys = days(start, end);
    const labels = dayKeys.map((d) => dayFormat.format(new Date(`${d}T00:00:00Z`)));
    const pick = (field) => dayKeys.map((d) => Number(perDay.get(d)?.[field] || 0));
    columnChart($("#chart-tokens-day"), {
      title: gettext("Tokens by day"),
      labels,
      series: [
        { name: gettext("Prompt tokens"), values: pick("prompt_tokens") },
        { name: gettext("Completion tokens"), values: pick("completion_tokens") },
      ],
      format: tokens,
    });
    columnChart($("#chart-cost-day"), { title: gettext("Cost by day (USD)"), labels, series: [{ name: gettext("Cost"), values: pick("cost_usd") }], format: usd });
    const rows = (groups) =>
      groups.map((g) => ({
        label: g.label,
        value: Number(g.total_tokens) || 0,
        note: `${usd(g.cost_usd)} · ${ngettext("%(count)s request", "%(count)s requests", g.requests)}${g.estimated_requests ? ` · ${gettext("%(count)s estimated", { count: g.estimated_requests })}` : ""}`,
      }));
    const listOptions = { format: tokens, valueName: gettext("Tokens"), noteName: gettext("Cost and requests") };
    barList($("#chart-model"), { title: gettext("By model"), rows: rows(byKind.model.groups), ...listOptions });
    barList($("#chart-room"), { title: gettext("By room"), rows: rows(byKind.room.groups), ...listOptions });
    barList($("#chart-session"), { title: gettext("By session"), rows: rows(byKind.session.groups), ...listOptions });
    if (isStaff) {
      barList($("#chart-user"), { title: gettext("By user"), rows: rows(byKind.user.groups), ...listOptions });
    }
  } catch (err) {
    error.textContent = sentence(err.code, { message: err.message });
    error.hidden = false;
  }
}

$("#range").addEventListener("change", load);
load();
