// A room's monthly AI budget (SPEC 11.2): what is left, where the room's members look (the
// room's side panel and each session's), and a form for the owner.
import { api } from "./api.js";
import { budgetText, usd } from "./figures.js";
import { gettext } from "./i18n.js";
import { h } from "./dom.js";
import { sentence } from "./notices.js";

export class RoomBudget {
  // container: where it is drawn; editable: show the owner's form when the API allows it.
  constructor(container, roomId, { editable = false } = {}) {
    this.container = container;
    this.roomId = roomId;
    this.editable = editable;
    this.budget = null;
  }

  get path() {
    return `/api/llm/rooms/${this.roomId}/budget/`;
  }

  async load() {
    try {
      this.budget = (await api(this.path)).budget;
      this.render();
    } catch (err) {
      this.container.replaceChildren(h("p", { class: "form-error" }, sentence(err.code, { message: err.message })));
    }
  }

  async save(value, error) {
    error.hidden = true;
    try {
      this.budget = (await api(this.path, { method: "PUT", body: { monthly_usd: value } })).budget;
      this.render();
    } catch (err) {
      error.textContent = sentence(err.code, { message: err.message });
      error.hidden = false;
    }
  }

  render() {
    const b = this.budget;
    const spent = gettext("Spent this month: %(spent)s", { spent: usd(b.spent_usd) });
    const parts = [h("p", { class: "budget-left", dataset: { remaining: b.remaining_usd ?? "" } }, budgetText(b)), h("p", { class: "help" }, spent)];
    if (b.monthly_usd !== null && b.remaining_usd !== null) {
      const used = Math.min(1, (Number(b.monthly_usd) - Number(b.remaining_usd)) / Math.max(Number(b.monthly_usd), 1e-9));
      parts.push(h("meter", { class: "budget-meter", min: 0, max: 1, value: used.toFixed(4), "aria-label": gettext("Share of the budget spent") }));
    }
    if (this.editable && b.can_edit) parts.push(this.form(b));
    this.container.replaceChildren(...parts);
  }

  form(b) {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const input = h("input", { id: "budget-usd", name: "monthly_usd", type: "number", min: "0", max: b.max_usd, step: "0.01", inputmode: "decimal", value: b.monthly_usd ?? "", required: true });
    const form = h(
      "form",
      { class: "inline-form", id: "budget-form" },
      h("label", { for: "budget-usd" }, gettext("Monthly budget in USD (at most %(max)s)", { max: usd(b.max_usd) })),
      h("div", { class: "row" }, input, h("button", { type: "submit" }, gettext("Save"))),
      b.monthly_usd !== null ? h("button", { type: "button", class: "link", id: "budget-remove", onclick: () => this.save(null, error) }, gettext("Remove the budget")) : null,
      error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save(input.value.trim(), error);
    });
    return form;
  }
}
