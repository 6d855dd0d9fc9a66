// A plain provenance graph (a run's lineage, or the export of some runs): nodes of a few kinds,
// laid out left to right in the direction data flowed; clicking a node shows its details.

import { createGraph, fit, focus, layOut } from "./cy.js";
import { append, clear, h, keyValues } from "./dom.js";

const KINDS = {
  run: ["#9ecae1", "run / epoch"],
  execution: ["#c6dbef", "cell execution"],
  file: ["#fdd0a2", "file version"],
  source: ["#fdae6b", "data source (written by no run)"],
  output: ["#fee6ce", "cell output"],
  param: ["#c7e9c0", "param"],
  logged: ["#e5f5e0", "logged value (last)"],
};

const STYLE = [
  ...Object.entries(KINDS).map(([kind, [colour]]) => ({ selector: `node.${kind}`, style: { "background-color": colour } })),
  { selector: "node.run, node.execution", style: { shape: "round-rectangle" } },
  { selector: "node.file, node.source", style: { shape: "tag" } },
  { selector: "node.target", style: { "border-width": 3, "border-color": "#1f2a44" } },
  { selector: "edge.informed", style: { "line-style": "dashed" } },
];

export function graphView(root, graph) {
  const box = h("div", { class: "graph" });
  const panel = h("aside", { class: "panel" }, h("p", { class: "muted" }, "Click a node for its details."));
  const kinds = new Set(graph.nodes.map((n) => n.kind));
  append(clear(root), h("div", { class: "graph-view" },
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "fit", onclick: () => fit(cy) }, "fit"),
      h("span", { class: "counts" }, `${graph.nodes.length} nodes · ${graph.edges.length} edges`)),
    h("div", { class: "graph-and-panel" }, box, panel),
    h("ul", { class: "legend" }, Object.entries(KINDS).filter(([kind]) => kinds.has(kind)).map(([, [colour, text]]) =>
      h("li", null, h("span", { class: "swatch", style: `background:${colour}` }), text)))));
  const details = new Map(graph.nodes.map((n) => [n.id, n]));
  const cy = createGraph(box, [
    ...graph.nodes.map((n) => ({ group: "nodes", classes: `${n.kind}${n.id === graph.target ? " target" : ""}`, data: { id: n.id, label: clip(n.label) } })),
    ...graph.edges.filter((e) => details.has(e.source) && details.has(e.target)).map((e, i) => ({
      group: "edges", classes: e.label === "wasInformedBy" ? "informed" : "",
      data: { id: `edge:${i}`, source: e.source, target: e.target, label: e.label || "" },
    })),
  ], STYLE);
  layOut(cy.elements());
  focus(cy, graph.target);
  box.trellisGraph = cy;
  cy.on("tap", "node", (event) => {
    const node = details.get(event.target.id());
    append(clear(panel), h("h3", null, node.label), keyValues(node.details || []),
      node.text ? h("pre", { class: "source" }, node.text) : null);
    root.dataset.selected = node.id;
  });
  root.dataset.visibleNodes = String(cy.nodes().length);
  root.dataset.visibleEdges = String(cy.edges().length);
  root.dataset.rendered = "true";
  return cy;
}

function clip(label) {
  const text = String(label ?? "");
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

// trellis.lineage()'s graph as nodes and edges for graphView; edges point from what was derived
// to what it was derived from, so they are turned around to follow the data.
export function lineageGraph(lineage) {
  const nodes = lineage.nodes.map((node) => {
    if (node.kind === "files") {
      return {
        id: node.id, kind: "source", label: `${node.count} source files in ${node.folder}/`,
        details: [["folder", node.folder], ["files", node.count], ["source", "yes: no recorded run wrote them"]],
        text: node.paths.join("\n"),
      };
    }
    if (node.kind === "file") {
      return {
        id: node.id, kind: node.source ? "source" : "file", label: node.path,
        details: [["path", node.path], ["sha256", node.hash || "not hashed"], ["bytes", node.size],
          ["source", node.source ? "yes: no recorded run wrote it" : "no"]],
      };
    }
    if (node.kind === "execution") {
      return {
        id: node.id, kind: "execution", label: `[${node.execution_count ?? " "}] ${node.cell_id} (${node.notebook})`,
        details: [["notebook", node.notebook], ["cell", node.cell_id], ["execution count", node.execution_count],
          ["epoch", node.run_id], ["status", node.status], ["started", node.started]],
      };
    }
    const params = Object.entries(node.params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return {
      id: node.id, kind: "run", label: `${node.filename || node.run_kind} ${String(node.run_id).slice(0, 8)}`,
      details: [["run", node.run_id], ["file", node.filename], ["status", node.status], ["started", node.started],
        ["make target", node.build_target], ["code snapshot", node.git_commit], ["params", params]],
      link: `/runs/${node.run_id}`,
    };
  });
  const edges = lineage.edges.map((e) => ({ source: e.to, target: e.from, label: e.relation }));
  return { nodes, edges, target: lineage.target };
}
