// Charts drawn as inline SVG by hand: vertical bars over time (optionally stacked) and
// horizontal bars for categories. Each bar carries a <title> (shown on hover, read by screen
// readers) and every chart comes with its numbers as a table.
import { h, svg } from "./dom.js";
import { gettext } from "./i18n.js";

const HEIGHT = 220;
const MARGIN = { top: 10, right: 10, bottom: 34 };
// Room for text, at the charts' 11px font, without measuring it in the page.
const CHAR_PX = 7;

// Round numbers for the axis: 0, step, 2*step... covering `max`.
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function dataTable(caption, head, rows) {
  return h(
    "details",
    { class: "chart-data" },
    h("summary", {}, gettext("Show the numbers")),
    h(
      "div",
      { class: "table-wrap" },
      h("table", {}, h("caption", { class: "sr-only" }, caption), h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c))))))),
    ),
  );
}

function legend(series) {
  if (series.length < 2) return null;
  return h(
    "ul",
    { class: "legend" },
    series.map((s, i) => h("li", {}, h("span", { class: `swatch s${i}`, "aria-hidden": "true" }), s.name)),
  );
}

function empty(container) {
  if (container._chartObserver) container._chartObserver.disconnect();
  container.replaceChildren(h("p", { class: "empty" }, gettext("No usage in this period.")));
}

// Redraw when the container's width changes (phone rotation, window resize).
function responsive(container, draw) {
  let width = 0;
  const redraw = () => {
    const now = Math.max(260, Math.floor(container.clientWidth));
    if (now !== width) {
      width = now;
      draw(width);
    }
  };
  if (container._chartObserver) container._chartObserver.disconnect();
  container._chartObserver = new ResizeObserver(redraw);
  container._chartObserver.observe(container);
  redraw();
}

// labels: x categories; series: [{name, values}]; format: value -> text.
export function columnChart(container, { title, labels, series, format, stacked = true }) {
  const totals = labels.map((_, i) => (stacked ? series.reduce((sum, s) => sum + s.values[i], 0) : Math.max(...series.map((s) => s.values[i]))));
  if (!labels.length || totals.every((t) => t === 0)) {
    empty(container);
    return;
  }
  const table = dataTable(title, [gettext("Day"), ...series.map((s) => s.name)], labels.map((label, i) => [label, ...series.map((s) => format(s.values[i]))]));
  responsive(container, (width) => {
    const ticks = niceTicks(Math.max(...totals));
    const top = ticks[ticks.length - 1];
    const left = 12 + CHAR_PX * Math.max(...ticks.map((t) => format(t).length));
    const plotW = width - left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const y = (v) => MARGIN.top + plotH - (v / top) * plotH;
    const band = plotW / labels.length;
    const barW = Math.max(2, Math.min(48, band * 0.7));
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(plotW / 56))));
    const root = svg("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img", "aria-label": title, class: "chart-svg" });
    for (const t of ticks) {
      root.append(
        svg("line", { class: "grid", x1: left, x2: width - MARGIN.right, y1: y(t), y2: y(t) }),
        svg("text", { class: "tick", x: left - 6, y: y(t), dy: "0.32em", "text-anchor": "end" }, format(t)),
      );
    }
    labels.forEach((label, i) => {
      const x = left + band * i + (band - barW) / 2;
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i];
        if (!(v > 0)) return;
        const y0 = stacked ? base : 0;
        const y1 = y0 + v;
        base = y1;
        root.append(
          svg(
            "rect",
            { class: `bar s${k}`, x, y: y(y1), width: barW, height: Math.max(1, y(y0) - y(y1)), "data-value": v, "data-label": label },
            svg("title", {}, `${label} · ${s.name}: ${format(v)}`),
          ),
        );
      });
      if (i % every === 0) {
        root.append(svg("text", { class: "tick", x: x + barW / 2, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle" }, label));
      }
    });
    root.append(svg("line", { class: "axis", x1: left, x2: width - MARGIN.right, y1: y(0), y2: y(0) }));
    container.replaceChildren(root, legend(series) || "", table);
  });
}

// rows: [{label, value, note}] drawn as horizontal bars, largest first, each under its text.
export function barList(container, { title, rows, format, valueName, noteName }) {
  const sorted = [...rows].sort((a, b) => b.value - a.value);
  if (!sorted.length || sorted.every((r) => !(r.value > 0))) {
    empty(container);
    return;
  }
  const table = dataTable(title, [title, valueName, noteName], sorted.map((r) => [r.label, format(r.value), r.note]));
  responsive(container, (width) => {
    const rowH = 42;
    const height = sorted.length * rowH;
    const max = sorted[0].value;
    const fit = Math.floor(width / CHAR_PX);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart-svg" });
    sorted.forEach((r, i) => {
      const y = i * rowH;
      const w = Math.max(2, (r.value / max) * (width - 2));
      let text = `${r.label} · ${format(r.value)} · ${r.note}`;
      if (text.length > fit) text = `${text.slice(0, fit - 1)}…`;
      root.append(
        svg("text", { class: "tick label", x: 0, y: y + 13 }, text),
        svg("rect", { class: "bar s0", x: 0, y: y + 19, width: w, height: 14, rx: 2, "data-value": r.value, "data-label": r.label }, svg("title", {}, `${r.label}: ${format(r.value)} · ${r.note}`)),
      );
    });
    container.replaceChildren(root, table);
  });
}
