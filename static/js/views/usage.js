// The usage page (#/usage): totals, a small bar chart of tokens per day, and a table
// of tokens and cost per day, from GET /api/v1/usage.

import { budgetLines } from "../budget.js";
import { byTestId, h, setText, show } from "../util/dom.js";
import { cost, describeError } from "../util/format.js";

const SVG = "http://www.w3.org/2000/svg";
const DAYS_SHOWN = 30;
const integer = new Intl.NumberFormat();

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

/** Tokens per day as bars (oldest left); attributes only, no inline styles (CSP). */
export function chart(days) {
  const list = [...days].reverse().slice(-DAYS_SHOWN);
  const width = 600;
  const height = 160;
  const gap = 4;
  // Room above the bars for the "max" label: on a phone its font is 20 units (app.css).
  const top = 24;
  // At most 40 units wide: a single day is a bar, not a wall.
  const bar = Math.min(40, Math.max(4, (width - gap * (list.length + 1)) / Math.max(list.length, 1)));
  const max = Math.max(1, ...list.map((d) => d.prompt_tokens + d.completion_tokens));
  const root = svg("svg", { viewBox: `0 0 ${width} ${top + height + 24}`, class: "usage-chart", role: "img",
    "aria-label": `Tokens per day for the last ${list.length} days with usage` });
  list.forEach((day, i) => {
    const total = day.prompt_tokens + day.completion_tokens;
    const barHeight = Math.max(1, Math.round((total / max) * height));
    const x = gap + i * (bar + gap);
    const title = svg("title");
    title.textContent = `${day.day}: ${integer.format(total)} tokens, ${cost(day.cost_usd)}`;
    root.append(svg("rect", { x, y: top + height - barHeight, width: bar, height: barHeight, rx: 2, class: "usage-bar" }, title));
  });
  if (list.length) {
    const right = gap + list.length * (bar + gap) - gap;
    const first = svg("text", { x: gap, y: top + height + 19, class: "usage-axis" });
    first.textContent = list[0].day;
    const most = svg("text", { x: width - gap, y: top - 6, class: "usage-axis", "text-anchor": "end" });
    most.textContent = `max ${integer.format(max)} tokens/day`;
    root.append(first, most);
    if (list.length > 1) {
      const last = svg("text", { x: right, y: top + height + 19, class: "usage-axis", "text-anchor": "end" });
      last.textContent = list.at(-1).day;
      root.append(last);
    }
  }
  return root;
}

export class UsageView {
  constructor(root, { api }) {
    this.root = root;
    this.api = api;
    this.totals = byTestId(root, "usage-totals");
    this.budget = byTestId(root, "usage-budget");
    this.chartBox = byTestId(root, "usage-chart");
    this.table = byTestId(root, "usage-table");
    this.empty = byTestId(root, "usage-empty");
    this.error = byTestId(root, "usage-error");
  }

  async open() {
    show(this.root, true);
    show(this.error, false);
    setText(this.totals, "Loading…");
    try {
      this.render(await this.api.usage());
    } catch (err) {
      setText(this.totals, "");
      setText(this.error, `Could not load your usage: ${describeError(err)}`);
      show(this.error, true);
    }
  }

  close() {
    show(this.root, false);
  }

  render(summary) {
    const days = Array.isArray(summary?.days) ? summary.days : [];
    const tokens = (summary?.prompt_tokens || 0) + (summary?.completion_tokens || 0);
    setText(this.totals, `${integer.format(tokens)} tokens in ${integer.format(summary?.calls || 0)} model calls · ${cost(summary?.cost_usd)} in total`);
    const budget = budgetLines(summary?.budget);
    setText(this.budget, budget.join(" "));
    show(this.budget, budget.length > 0);
    this.budget.classList.toggle("usage-budget-spent", Boolean(summary?.budget?.exceeded || summary?.budget?.global_exceeded));
    show(this.empty, days.length === 0);
    show(this.table, days.length > 0);
    this.chartBox.replaceChildren(days.length ? chart(days) : "");
    const rows = days.map((d) => h("tr", { testid: "usage-row" },
      h("th", { scope: "row", text: d.day }),
      h("td", { class: "align-right", text: integer.format(d.prompt_tokens) }),
      h("td", { class: "align-right", text: integer.format(d.completion_tokens) }),
      h("td", { class: "align-right", text: integer.format(d.calls) }),
      h("td", { class: "align-right", text: cost(d.cost_usd) })));
    this.table.querySelector("tbody").replaceChildren(...rows);
  }
}
