// trellis.diff() rendered: two runs or epochs, or two executions of a cell.

import { append, clear, formatValue, h, hashText, section, short, table } from "./dom.js";

export function diffView(root, result) {
  const parts = [
    h("h1", null, "What changed"),
    table(["", "which"], [["a", identity(result.a)], ["b", identity(result.b)]]),
    result.note ? h("p", { class: "warning" }, result.note) : null,
    section("code", code(result.code)),
  ];
  if (result.status) parts.push(section("status", `${result.status.a} → ${result.status.b}`));
  if (result.params) parts.push(section("params", changes(result.params)));
  if (result.variables) parts.push(section("variables", changes(result.variables)));
  if (result.values) parts.push(section("logged values", values(result.values)));
  parts.push(section("files", files(result.files)));
  if (result.environment) {
    parts.push(section("environment", result.environment.same
      ? h("p", null, "same environment")
      : [h("h3", null, "packages"), changes(result.environment.packages), h("h3", null, "system"), changes(result.environment.system)]));
  }
  if (result.outputs) {
    parts.push(section("outputs", result.outputs.length
      ? result.outputs.map((o) => h("div", null, h("p", null, `output ${o.output} ${o.mime}: `, hashText(o.a), " → ", hashText(o.b)),
        o.diff ? unified(o.diff) : null))
      : h("p", null, "same outputs")));
  }
  append(clear(root), h("div", { class: "diff-view" }, parts));
  root.dataset.rendered = "true";
}

function identity(side) {
  if (side.ref) return `execution ${side.ref} of cell ${side.cell_id} in ${side.notebook} (${side.status})`;
  return h("span", null, h("a", { href: `/runs/${side.run_id}` }, short(side.run_id)), ` ${side.filename || side.kind} (${side.kind}, ${side.status})`);
}

function code(found) {
  if (found.available === false) return h("p", { class: "muted" }, `not comparable: ${found.reason}`);
  const data = found.data_files && found.data_files.length
    ? h("p", { class: "data-files" }, `data files in the snapshots, changed: ${found.data_files.join(", ")}`) : null;
  if (found.same) return [h("p", null, "same code"), data];
  const texts = found.diff !== undefined ? [found.diff] : Object.values(found.cells || {});
  return [
    data,
    ...texts.map(unified),
    found.new_cells && found.new_cells.length ? h("p", null, `new cells: ${found.new_cells.join(", ")}`) : null,
    found.gone_cells && found.gone_cells.length ? h("p", null, `cells gone: ${found.gone_cells.join(", ")}`) : null,
  ];
}

function unified(text) {
  return h("pre", { class: "diff" }, text.replace(/\n$/, "").split("\n").map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "file"
      : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
    return [h("span", { class: kind }, line), "\n"];
  }));
}

function changes(found) {
  const rows = [
    ...Object.entries(found.changed || {}).map(([k, v]) => [k, formatValue(v.a), formatValue(v.b)]),
    ...Object.entries(found.added || {}).map(([k, v]) => [k, h("span", { class: "muted" }, "absent"), formatValue(v)]),
    ...Object.entries(found.removed || {}).map(([k, v]) => [k, formatValue(v), h("span", { class: "muted" }, "absent")]),
  ];
  return rows.length ? table(["name", "a", "b"], rows) : h("p", null, "no changes");
}

function values(found) {
  const rows = Object.entries(found.changed).map(([name, change]) => [
    name, formatValue(change.a.last), formatValue(change.b.last),
    change.delta !== undefined ? `${change.delta >= 0 ? "+" : ""}${formatValue(change.delta)}` : "",
    `${change.a.count} → ${change.b.count}`,
  ]);
  for (const [name, entry] of Object.entries(found.added)) rows.push([name, h("span", { class: "muted" }, "not logged"), formatValue(entry.last), "", `0 → ${entry.count}`]);
  for (const [name, entry] of Object.entries(found.removed)) rows.push([name, formatValue(entry.last), h("span", { class: "muted" }, "not logged"), "", `${entry.count} → 0`]);
  return [
    rows.length ? table(["name", "last a", "last b", "change", "count"], rows) : null,
    found.same.length ? h("p", null, `same: ${found.same.join(", ")}`) : null,
  ];
}

function files(found) {
  const rows = [];
  for (const [mode, entry] of Object.entries(found || {})) {
    for (const [path, hashes] of Object.entries(entry.changed)) rows.push([mode, path, h("span", null, hashText(hashes.a), " → ", hashText(hashes.b))]);
    for (const path of entry.new) rows.push([mode, path, "only in b"]);
    for (const path of entry.gone) rows.push([mode, path, "only in a"]);
  }
  return rows.length ? table(["", "path", "change"], rows) : h("p", null, "same files");
}
