// The runs table: sortable by any column, filtered by text, with rows to select for comparing:
// their logged values charted together, and a diff of two.

import { chart } from "./chart.js";
import { append, clear, formatSeconds, formatTime, formatValue, h, short } from "./dom.js";

export function runsView(root, table, api) {
  const columns = [
    { key: "run", title: "run", value: (r) => r.run_id, show: (r) => h("a", { href: `/runs/${r.run_id}` }, short(r.run_id)) },
    { key: "file", title: "file", value: (r) => r.filename || r.kind },
    { key: "status", title: "status", value: (r) => r.status, show: (r) => h("span", { class: `status ${r.status}` }, r.status) },
    { key: "started", title: "started", value: (r) => r.started || "", show: (r) => formatTime(r.started) },
    { key: "duration", title: "duration", value: (r) => r.duration, show: (r) => formatSeconds(r.duration), numeric: true },
    { key: "target", title: "make target", value: (r) => r.target || "" },
    ...table.params.map((name) => ({ key: `param:${name}`, title: name, param: true, value: (r) => r.params[name], show: (r) => formatValue(r.params[name]), numeric: true })),
    ...table.names.map((name) => ({ key: `last:${name}`, title: name, logged: true, value: (r) => r.last[name], show: (r) => formatValue(r.last[name]), numeric: true })),
  ];
  const state = { sort: "started", descending: true, filter: "", selected: new Set() };
  const filter = h("input", { type: "search", class: "filter", placeholder: "filter: file, status, id, param or value", "aria-label": "filter runs" });
  const nameSelect = h("select", { class: "chart-name", "aria-label": "value to chart" }, table.names.map((n) => h("option", { value: n }, n)));
  const compare = h("button", { type: "button", class: "compare", disabled: true }, "chart selected");
  const diffLink = h("a", { class: "diff-link hidden", href: "#" }, "diff the two selected");
  const shown = h("span", { class: "counts" });
  const body = h("tbody");
  const head = h("thead");
  const charts = h("div", { class: "charts" });
  append(clear(root), h("div", { class: "runs-view" },
    h("div", { class: "toolbar" }, filter, shown, h("span", { class: "spacer" }),
      table.names.length ? [h("label", null, "value ", nameSelect), compare] : null, diffLink),
    h("div", { class: "table-scroll" }, h("table", { class: "grid runs" }, head, body)),
    charts));

  filter.addEventListener("input", () => { state.filter = filter.value.trim().toLowerCase(); render(); });
  compare.addEventListener("click", () => drawCharts());
  nameSelect.addEventListener("change", () => { if (state.selected.size) drawCharts(); });

  function sortedRows() {
    const column = columns.find((c) => c.key === state.sort);
    const words = state.filter.split(/\s+/).filter(Boolean);
    const rows = table.runs.filter((run) => {
      if (!words.length) return true;
      const text = columns.map((c) => (c.param ? `${c.title}=${formatValue(c.value(run))}` : formatValue(c.value(run)))).join(" ").toLowerCase();
      return words.every((word) => text.includes(word));
    });
    const direction = state.descending ? -1 : 1;
    return rows.sort((a, b) => direction * compareValues(column.value(a), column.value(b)));
  }

  function render() {
    append(clear(head), h("tr", null,
      h("th", null, h("input", { type: "checkbox", class: "select-all", "aria-label": "select all shown", onchange: (event) => {
        for (const run of sortedRows()) event.target.checked ? state.selected.add(run.run_id) : state.selected.delete(run.run_id);
        render();
      } })),
      columns.map((c) => h("th", {
        class: `${c.numeric ? "numeric" : ""} ${c.param ? "param" : ""} ${c.logged ? "logged" : ""} ${state.sort === c.key ? (state.descending ? "sorted-down" : "sorted-up") : ""}`,
        dataset: { key: c.key }, title: c.param ? "param" : c.logged ? "last value logged" : "",
        onclick: () => {
          state.descending = state.sort === c.key ? !state.descending : c.numeric;
          state.sort = c.key;
          render();
        },
      }, c.title))));
    const rows = sortedRows();
    append(clear(body), ...rows.map((run) => h("tr", { dataset: { run: run.run_id }, class: state.selected.has(run.run_id) ? "selected" : "" },
      h("td", null, h("input", { type: "checkbox", class: "select", checked: state.selected.has(run.run_id), "aria-label": `select ${short(run.run_id)}`,
        onchange: (event) => { event.target.checked ? state.selected.add(run.run_id) : state.selected.delete(run.run_id); render(); } })),
      columns.map((c) => h("td", { class: c.numeric ? "numeric" : "" }, c.show ? c.show(run) : formatValue(c.value(run)))))));
    shown.textContent = `${rows.length} of ${table.runs.length} runs${state.selected.size ? `, ${state.selected.size} selected` : ""}`;
    compare.disabled = state.selected.size === 0;
    const pair = [...state.selected];
    diffLink.classList.toggle("hidden", pair.length !== 2);
    if (pair.length === 2) diffLink.setAttribute("href", `/diff?a=${encodeURIComponent(pair[0])}&b=${encodeURIComponent(pair[1])}`);
    root.dataset.rows = String(rows.length);
    root.dataset.rendered = "true";
  }

  async function drawCharts() {
    const runs = [...state.selected];
    const name = nameSelect.value;
    append(clear(charts), h("p", { class: "muted" }, `loading ${name}…`));
    try {
      const series = await api.series(name, runs);
      append(clear(charts), chart(series, Math.min(960, Math.max(360, root.clientWidth - 40))));
    } catch (error) {
      append(clear(charts), h("p", { class: "error" }, error.message));
    }
  }

  render();
}

function compareValues(a, b) {
  const missingA = a === null || a === undefined || a === "";
  const missingB = b === null || b === undefined || b === "";
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? -1 : 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}
