// A notebook's provenance graph: a node per cell (grouping its executions), edges for the
// variables and files that flow between cells, or for the order the cells ran in. The sliders
// choose which executions count: one kernel session (epoch) or all, and the first N of them, to
// replay the history one execution at a time. The graph is laid out once for all executions and
// the sliders only show and hide, so nothing moves while scrubbing and 2,000 executions stay
// responsive.

import { createTwoFilesPatch } from "diff";
import { COLOURS, createGraph, fit, layOut } from "./cy.js";
import { append, clear, formatSeconds, formatTime, h, hashText, keyValues, section, short, table } from "./dom.js";
import { renderOutputs } from "./outputs.js";

const STYLE = [
  { selector: "node.cell.reads", style: { "background-color": COLOURS.reads } },
  { selector: "node.cell.outputs", style: { "background-color": COLOURS.outputs } },
  { selector: "node.cell.reads.outputs", style: { "background-color": COLOURS.reads, "border-color": "#3d8b37", "border-width": 3 } },
  { selector: "node.cell.failed", style: { "background-color": COLOURS.failed, "border-color": "#b3261e", "border-width": 2 } },
  { selector: "node.cell.stale", style: { "border-color": COLOURS.stale, "border-width": 4, "border-style": "double" } },
  { selector: "node.cell.deleted", style: { opacity: 0.35, "border-style": "dashed" } },
  { selector: "node.file", style: { shape: "tag", "background-color": COLOURS.file, "border-color": COLOURS.dataEdge, width: 150, height: 30 } },
  { selector: "node.file.output", style: { "background-color": COLOURS.output, "border-color": COLOURS.outputs } },
  { selector: "node.library", style: { shape: "hexagon", "background-color": COLOURS.library, "border-color": COLOURS.libraryEdge, width: 110, height: 30 } },
  { selector: "node.library.unused", style: { "border-style": "dashed", opacity: 0.7 } },
  { selector: "edge.source", style: { "line-color": COLOURS.dataEdge, "target-arrow-color": COLOURS.dataEdge } },
  { selector: "edge.writes", style: { "line-color": COLOURS.dataEdge, "target-arrow-color": COLOURS.dataEdge } },
  { selector: "edge.via-file", style: { "line-color": COLOURS.dataEdge, "target-arrow-color": COLOURS.dataEdge, "line-style": "dashed" } },
  { selector: "edge.library", style: { "line-color": COLOURS.libraryEdge, "target-arrow-color": COLOURS.libraryEdge, width: 1, label: "" } },
  { selector: "edge.library.unused", style: { "line-style": "dotted" } },
  { selector: "edge.order", style: { "line-color": "#6b5ca5", "target-arrow-color": "#6b5ca5", "curve-style": "bezier" } },
];

const LEGEND = [
  [COLOURS.cell, "cell"], [COLOURS.reads, "reads data"], [COLOURS.outputs, "has outputs"],
  [COLOURS.failed, "failed"], [COLOURS.stale, "out of date (border)"], ["#eeeeee", "deleted (faded)"], [COLOURS.file, "data source"],
  [COLOURS.output, "file written, read by no cell"], [COLOURS.library, "library"],
];

export function notebookView(root, initial, options = {}) {
  let data = index(initial);
  const state = { mode: "data", epoch: 0, upto: null, libraries: false, panel: null };
  let cy = null;

  const counts = h("div", { class: "counts" });
  const epochSlider = h("input", { type: "range", min: 0, step: 1, class: "epoch-slider", "aria-label": "epoch" });
  const epochLabel = h("span", { class: "slider-label epoch-label" });
  const executionSlider = h("input", { type: "range", min: 0, step: 1, class: "execution-slider", "aria-label": "execution" });
  const executionLabel = h("span", { class: "slider-label execution-label" });
  const modeSelect = h("select", { class: "mode", "aria-label": "edges" },
    h("option", { value: "data" }, "data dependencies"),
    h("option", { value: "order" }, "execution order"));
  const graphBox = h("div", { class: "graph" });
  const panel = h("aside", { class: "panel" });
  const view = h("div", { class: "notebook-view" },
    h("div", { class: "toolbar" },
      h("label", null, "edges ", modeSelect),
      h("button", { type: "button", class: "fit", onclick: () => cy && fit(cy) }, "fit"),
      h("button", { type: "button", class: "libraries-button", onclick: () => showPanel("libraries") }, "libraries"),
      h("button", { type: "button", class: "environment-button", onclick: () => showPanel("environment") }, "environment")),
    h("div", { class: "sliders" },
      h("label", null, "epoch ", epochSlider, epochLabel),
      h("label", null, "execution ", executionSlider, executionLabel)),
    counts,
    h("div", { class: "graph-and-panel" }, graphBox, panel),
    h("ul", { class: "legend" }, LEGEND.map(([colour, text]) =>
      h("li", null, h("span", { class: "swatch", style: `background:${colour}` }), text))));
  append(clear(root), view);

  modeSelect.addEventListener("change", () => { state.mode = modeSelect.value; refresh(true); });
  epochSlider.addEventListener("input", () => { state.epoch = Number(epochSlider.value); state.upto = null; refresh(false); });
  executionSlider.addEventListener("input", () => { state.upto = Number(executionSlider.value); refresh(false); });

  function pool() {
    return state.epoch === 0 ? data.executions : data.executions.filter((e) => e.epoch === state.epoch - 1);
  }

  function selection() {
    const all = pool();
    return all.slice(0, state.upto === null ? all.length : state.upto);
  }

  function build() {
    if (cy) cy.destroy();
    cy = createGraph(graphBox, elements(data), STYLE);
    // where nodes are drawn is only known to the graph: scripts and tests that click them ask it
    graphBox.trellisGraph = cy;
    cy.on("tap", "node", (event) => showPanel("node", event.target.id()));
    cy.on("tap", "edge", (event) => showPanel("edge", event.target.id()));
    cy.on("tap", (event) => { if (event.target === cy) showPanel(null); });
    refresh(true);
  }

  function refresh(relayout) {
    const all = pool();
    const chosen = selection();
    epochSlider.max = data.epochs.length;
    epochSlider.value = state.epoch;
    executionSlider.max = all.length;
    executionSlider.value = chosen.length;
    const epoch = state.epoch ? data.epochs[state.epoch - 1] : null;
    epochLabel.textContent = epoch
      ? `${state.epoch} of ${data.epochs.length} (${formatTime(epoch.started)}, ${short(epoch.run_id)})`
      : `all ${data.epochs.length} epochs`;
    const last = chosen[chosen.length - 1];
    executionLabel.textContent = last
      ? `${chosen.length} of ${all.length}: [${last.execution_count ?? " "}] ${cellName(last.cell_id)}`
      : `0 of ${all.length}`;
    const epochsShown = new Set(chosen.map((e) => e.epoch)).size;
    const total = chosen.reduce((sum, e) => sum + (e.duration || 0), 0);
    counts.textContent = `${epochsShown} session${epochsShown === 1 ? "" : "s"} · ${chosen.length} execution${chosen.length === 1 ? "" : "s"} · ${formatSeconds(total)} total execution time`;
    cy.batch(() => show(chosen));
    // shown is what has no "hidden" class: the graph's own :visible lags behind until it redraws
    const shown = cy.elements().not(".hidden");
    const libraries = shown.nodes(".library");
    if (relayout) layOut(shown.not(".library"), libraries.length ? (box) => placeLibraries(libraries, box) : null);
    root.dataset.visibleCells = String(shown.nodes(".cell").length);
    root.dataset.visibleNodes = String(shown.nodes().length);
    root.dataset.visibleEdges = String(shown.edges().length);
    root.dataset.executionsShown = String(chosen.length);
    root.dataset.rendered = "true";
    if (state.panel) showPanel(state.panel.kind, state.panel.id);
  }

  // Which cells, data sources, libraries and edges the chosen executions make visible, and how
  // each cell looks: its last chosen execution's status, whether any read data or had outputs.
  function show(chosen) {
    const cells = new Map();
    for (const execution of chosen) {
      const entry = cells.get(execution.cell_id) || { count: 0, reads: false, outputs: false };
      entry.count += 1;
      entry.last = execution;
      entry.reads ||= execution.reads.length > 0;
      entry.outputs ||= execution.outputs.length > 0;
      cells.set(execution.cell_id, entry);
    }
    const visibleFiles = new Set();
    const readBy = new Set();
    const writtenBy = new Set();
    const dependencyNames = new Map();
    if (state.mode === "data") {
      for (const execution of chosen) {
        for (const read of execution.reads) {
          if (data.written.has(read.path)) continue;
          visibleFiles.add(read.path);
          readBy.add(`source:${read.path}\u0000${execution.cell_id}`);
        }
        for (const write of execution.writes) {
          if (data.read.has(write.path)) continue;  // a later cell's read draws it as a dependency
          visibleFiles.add(write.path);
          writtenBy.add(`writes:${execution.cell_id}\u0000${write.path}`);
        }
        for (const link of execution.depends_on) {
          const earlier = data.byId.get(link.execution);
          if (!earlier || !cells.has(earlier.cell_id) || earlier.cell_id === execution.cell_id || isLibrary(data, link, earlier)) continue;
          const key = dependencyId(earlier.cell_id, execution.cell_id, link.via);
          if (!dependencyNames.has(key)) dependencyNames.set(key, new Set());
          dependencyNames.get(key).add(link.name);
        }
      }
    }
    cy.nodes("node.cell").forEach((node) => {
      const entry = cells.get(node.data("cell"));
      node.toggleClass("hidden", !entry);
      if (!entry) return;
      node.data("label", cellLabel(entry.last, entry.count));
      node.toggleClass("failed", entry.last.status === "error" || entry.last.status === "interrupted");
      node.toggleClass("reads", entry.reads);
      node.toggleClass("outputs", entry.outputs);
      node.toggleClass("stale", Boolean(entry.last.stale));
    });
    cy.nodes("node.file").forEach((node) => node.toggleClass("hidden", !visibleFiles.has(node.data("path"))));
    cy.edges("edge.source").forEach((edge) => edge.toggleClass("hidden", !readBy.has(edge.id())));
    cy.edges("edge.writes").forEach((edge) => edge.toggleClass("hidden", !writtenBy.has(edge.id())));
    cy.edges("edge.dependency").forEach((edge) => {
      const names = dependencyNames.get(edge.id());
      edge.toggleClass("hidden", !names);
      if (names) edge.data("label", abbreviate([...names]));
    });
    const drawn = cy.nodes("node.library").length > 0;
    if (state.libraries && !drawn) cy.add(libraryElements(data));
    if (!state.libraries && drawn) cy.remove("node.library");
    cy.nodes("node.library").forEach((node) => {
      const library = data.libraries.get(node.data("name"));
      const shown = state.libraries && [...library.imported_in, ...library.used_in].some((c) => cells.has(c));
      node.toggleClass("hidden", !shown);
    });
    cy.edges("edge.library").forEach((edge) => {
      edge.toggleClass("hidden", !(state.libraries && cells.has(edge.data("cell"))));
    });
    cy.edges("edge.order").remove();
    if (state.mode === "order") {
      const pairs = new Map();
      chosen.forEach((execution, position) => {
        const previous = chosen[position - 1];
        if (!previous || previous.cell_id === execution.cell_id) return;
        const key = `order:${previous.cell_id}\u0000${execution.cell_id}`;
        if (!pairs.has(key)) pairs.set(key, { from: previous.cell_id, to: execution.cell_id, steps: [] });
        pairs.get(key).steps.push(position + 1);
      });
      cy.add([...pairs.entries()].map(([key, pair]) => ({
        group: "edges", classes: "order",
        data: { id: key, source: cellId(pair.from), target: cellId(pair.to), label: abbreviate(pair.steps.map(String)) },
      })));
    }
  }

  function showPanel(kind, id) {
    state.panel = kind ? { kind, id } : null;
    clear(panel);
    panel.dataset.showing = kind || "";
    if (!kind) {
      append(panel, h("p", { class: "muted" }, "Click a cell, an edge, a data source or a library for its provenance."));
      return;
    }
    append(panel, h("button", { type: "button", class: "close", onclick: () => showPanel(null), "aria-label": "close" }, "×"));
    if (kind === "libraries") append(panel, librariesPanel());
    else if (kind === "environment") append(panel, environmentPanel());
    else if (kind === "diff") append(panel, diffPanel(id));
    else if (kind === "edge") append(panel, edgePanel(cy.getElementById(id)));
    else {
      const node = cy.getElementById(id);
      if (node.empty()) return showPanel(null);
      if (node.hasClass("cell")) append(panel, cellPanel(node.data("cell")));
      else if (node.hasClass("file")) append(panel, filePanel(node.data("path")));
      else append(panel, libraryPanel(data.libraries.get(node.data("name"))));
    }
  }

  function cellPanel(cellIdText) {
    const executions = selection().filter((e) => e.cell_id === cellIdText);
    const cell = data.cells.get(cellIdText);
    const body = h("div", { class: "execution-details" });
    const picker = h("select", { class: "execution-picker", "aria-label": "execution of this cell" },
      executions.map((e, i) => h("option", { value: i },
        `[${e.execution_count ?? " "}] epoch ${e.epoch + 1}, ${formatTime(e.started)} · ${e.status}`)));
    picker.value = String(executions.length - 1);
    const render = () => append(clear(body), executionDetails(executions[Number(picker.value)]));
    picker.addEventListener("change", render);
    render();
    return h("div", { class: "cell-panel" },
      h("h3", null, `Cell ${cellName(cellIdText)}`),
      cell.deleted ? h("p", { class: "warning" }, "This cell is no longer in the notebook.") : null,
      h("p", null, `${executions.length} execution${executions.length === 1 ? "" : "s"} shown `, picker),
      h("button", { type: "button", class: "diff-button", onclick: () => showPanel("diff", cellIdText) }, "code diff"),
      body);
  }

  function executionDetails(execution) {
    if (!execution) return h("p", { class: "muted" }, "no execution");
    const names = (list) => (list.length ? list.map((n) => h("code", { class: "name" }, n)) : h("span", { class: "muted" }, "none"));
    const files = (list) => (list.length
      ? table(["path", "sha256", "bytes"], list.map((f) => [f.path, hashText(f.hash), f.size ?? ""]))
      : h("p", { class: "muted" }, "none"));
    return [
      keyValues([
        ["execution", `${execution.execution_count ?? "?"} (number ${execution.id.split("/").pop()} of epoch ${execution.epoch + 1})`],
        ["status", execution.status],
        ["started", formatTime(execution.started)],
        ["took", formatSeconds(execution.duration)],
        ["source sha256", hashText(execution.source_hash)],
      ]),
      execution.error ? h("pre", { class: "error" }, execution.error) : null,
      execution.stale ? [h("h4", null, "out of date"),
        h("ul", { class: "stale" }, execution.stale.map((reason) => h("li", null, reason.text)))] : null,
      h("h4", null, "source"), h("pre", { class: "source" }, execution.source || ""),
      h("h4", null, "defines"), h("p", null, names([...execution.defined, ...execution.mutated.map((m) => `${m} (changed)`)])),
      h("h4", null, "uses"), h("p", null, names(execution.used)),
      h("h4", null, "data read"), files(execution.reads),
      h("h4", null, "data written"), files(execution.writes),
      h("h4", null, "variables"), execution.variables.length
        ? table(["name", "type", "summary"], execution.variables.map((v) => [v.name, v.type, summarize(v.summary)]))
        : h("p", { class: "muted" }, "none"),
      h("h4", null, "outputs"), renderOutputs(execution.outputs, options.contentOf || inlineContent),
    ];
  }

  function edgePanel(edge) {
    if (edge.empty()) return h("p", { class: "muted" }, "nothing selected");
    if (edge.hasClass("dependency")) {
      const from = edge.data("from");
      const to = edge.data("to");
      const chosen = selection();
      const names = new Set();
      for (const e of chosen) {
        if (e.cell_id !== to) continue;
        for (const link of e.depends_on) {
          const earlier = data.byId.get(link.execution);
          if (earlier && earlier.cell_id === from && link.via === edge.data("via")) names.add(link.name);
        }
      }
      const definers = chosen.filter((e) => e.cell_id === from);
      return h("div", { class: "edge-panel" },
        h("h3", null, `${cellName(from)} → ${cellName(to)}`),
        [...names].map((name) => {
          if (edge.data("via") === "file") {
            const versions = definers.flatMap((e) => e.writes.filter((w) => w.path === name).map((w) => [executionName(e), hashText(w.hash), w.size ?? ""]));
            return section(`file ${name}`, table(["written by", "sha256", "bytes"], versions));
          }
          const versions = definers.flatMap((e) => e.variables.filter((v) => v.name === name).map((v) => ({ e, v })));
          const latest = versions[versions.length - 1];
          return section(`variable ${name}`,
            latest ? keyValues([["type", latest.v.type], ["shape", latest.v.summary.shape ? latest.v.summary.shape.join(" × ") : ""],
              ["dtype", latest.v.summary.dtype], ["length", latest.v.summary.len], ["value", latest.v.summary.value]]) : null,
            h("h4", null, `${versions.length} version${versions.length === 1 ? "" : "s"}`),
            table(["made by", "type", "summary", "fingerprint"], versions.map(({ e, v }) =>
              [executionName(e), v.type, summarize(v.summary), hashText(v.summary.fingerprint)])));
        }));
    }
    if (edge.hasClass("source") || edge.hasClass("writes")) return filePanel(edge.data("path"));
    if (edge.hasClass("library")) return libraryPanel(data.libraries.get(edge.data("name")));
    return h("div", { class: "edge-panel" }, h("h3", null, `ran after: executions ${edge.data("label")}`));
  }

  function filePanel(path) {
    const readers = selection().filter((e) => e.reads.some((r) => r.path === path));
    const writers = selection().filter((e) => e.writes.some((w) => w.path === path));
    if (writers.length && !readers.length) {
      return h("div", { class: "file-panel" },
        h("h3", null, `file written ${path}`),
        table(["written by", "sha256", "bytes"], writers.flatMap((e) => e.writes.filter((w) => w.path === path)
          .map((w) => [executionName(e), hashText(w.hash), w.size ?? ""]))));
    }
    return h("div", { class: "file-panel" },
      h("h3", null, `data source ${path}`),
      table(["read by", "sha256", "bytes"], readers.flatMap((e) => e.reads.filter((r) => r.path === path)
        .map((r) => [executionName(e), hashText(r.hash), r.size ?? ""]))));
  }

  function libraryPanel(library) {
    return h("div", { class: "library-panel" },
      h("h3", null, `library ${library.name}`),
      keyValues([["module", library.module], ["distribution", library.distribution], ["version", library.version],
        ["imported in", library.imported_in.map(cellName).join(", ")],
        ["used in", library.used_in.length ? library.used_in.map(cellName).join(", ") : "never used"]]));
  }

  function librariesPanel() {
    const toggle = h("input", { type: "checkbox", class: "show-libraries", checked: state.libraries });
    toggle.addEventListener("change", () => { state.libraries = toggle.checked; refresh(true); });
    const libraries = [...data.libraries.values()];
    const unused = libraries.filter((l) => l.unused);
    return h("div", { class: "libraries-panel" },
      h("h3", null, "Libraries and modules"),
      h("label", null, toggle, " show in the graph"),
      table(["name", "module", "version", "imported in", "used in"], libraries.map((l) => [
        l.name, l.module, l.version || "", l.imported_in.map(cellName).join(", "),
        l.used_in.length ? l.used_in.map(cellName).join(", ") : h("span", { class: "warning" }, "never used")])),
      h("p", { class: "unused" }, unused.length
        ? `Imported but never used: ${unused.map((l) => l.name).join(", ")}`
        : "Every import is used."));
  }

  function environmentPanel() {
    const epoch = data.epochs[(state.epoch || data.epochs.length) - 1];
    if (!epoch) return h("p", { class: "muted" }, "no epoch recorded");
    const environment = epoch.environment || {};
    const packages = Object.entries(environment.packages || {});
    const kernel = (environment.packages || {}).ipykernel;
    const filter = h("input", { type: "search", placeholder: "filter packages", class: "package-filter" });
    const list = h("div");
    const renderPackages = () => append(clear(list), table(["package", "version"],
      packages.filter(([name]) => name.toLowerCase().includes(filter.value.toLowerCase()))));
    filter.addEventListener("input", renderPackages);
    renderPackages();
    return h("div", { class: "environment-panel" },
      h("h3", null, `Environment of epoch ${data.epochs.indexOf(epoch) + 1}`),
      keyValues([
        ["session", `${short(epoch.run_id)} · ${formatTime(epoch.started)} · ${epoch.status}`],
        ["kernel", kernel ? `IPython kernel (ipykernel ${kernel})` : "IPython kernel"],
        ["language", `${environment.python_implementation || "Python"} ${environment.python_version || ""}`],
        ["system", [environment.os, environment.release, environment.machine].filter(Boolean).join(" ")],
        ["platform", environment.platform],
        ["host", environment.hostname],
        ["CPUs", environment.cpu_count],
        ["memory", environment.memory_total ? `${(environment.memory_total / 2 ** 30).toFixed(1)} GiB` : ""],
        ["GPUs", (environment.gpus || []).map((g) => g.model || JSON.stringify(g)).join(", ")],
      ]),
      h("h4", null, `${packages.length} packages`), filter, list);
  }

  function diffPanel(cellIdText) {
    const executions = data.executions.filter((e) => e.cell_id === cellIdText);
    const slider = (value) => h("input", { type: "range", min: 0, max: Math.max(0, executions.length - 1), step: 1, value });
    const a = slider(Math.max(0, executions.length - 2));
    const b = slider(executions.length - 1);
    a.classList.add("diff-a");
    b.classList.add("diff-b");
    const labelA = h("span", { class: "slider-label" });
    const labelB = h("span", { class: "slider-label" });
    const output = h("pre", { class: "diff" });
    const render = () => {
      const left = executions[Number(a.value)];
      const right = executions[Number(b.value)];
      labelA.textContent = executionName(left);
      labelB.textContent = executionName(right);
      clear(output);
      if (left.source === right.source) {
        output.append(h("span", { class: "muted" }, "same source"));
        return;
      }
      const patch = createTwoFilesPatch(executionName(left), executionName(right), left.source || "", right.source || "", "", "", { context: 3 });
      const lines = patch.split("\n");
      // the file header and git's "no newline" notes say nothing about a cell
      for (const line of lines.slice(lines.findIndex((l) => l.startsWith("@@"))).filter((l) => !l.startsWith("\\"))) {
        const kind = line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
        output.append(h("span", { class: kind }, line), "\n");
      }
    };
    a.addEventListener("input", render);
    b.addEventListener("input", render);
    render();
    return h("div", { class: "diff-panel" },
      h("h3", null, `Code diff of cell ${cellName(cellIdText)}`),
      h("p", null, `${executions.length} executions over all epochs`),
      h("label", null, "a ", a, labelA), h("label", null, "b ", b, labelB),
      output);
  }

  function executionName(e) {
    return e ? `[${e.execution_count ?? " "}] epoch ${e.epoch + 1} #${e.id.split("/").pop()}` : "";
  }

  build();
  showPanel(null);

  return {
    update(next) {
      const growing = state.upto === null;
      data = index(next);
      if (state.epoch > data.epochs.length) state.epoch = 0;
      if (!growing) state.upto = null;
      build();
    },
    destroy() { if (cy) cy.destroy(); },
  };
}

function index(raw) {
  const executions = raw.executions || [];
  const written = new Set(executions.flatMap((e) => e.writes.map((w) => w.path)));
  const read = new Set(executions.flatMap((e) => e.reads.map((r) => r.path)));
  return {
    ...raw,
    executions,
    epochs: raw.epochs || [],
    written,
    read,
    byId: new Map(executions.map((e) => [e.id, e])),
    cells: new Map((raw.cells || []).map((c) => [c.cell_id, c])),
    libraries: new Map((raw.libraries || []).map((l) => [l.name, l])),
  };
}

// Every cell, data source and edge between them that any selection can show; a selection only
// hides, shows and relabels them.
function elements(data) {
  const items = [];
  for (const cell of data.cells.values()) {
    items.push({ group: "nodes", classes: `cell${cell.deleted ? " deleted" : ""}`, data: { id: cellId(cell.cell_id), cell: cell.cell_id, label: cell.cell_id } });
  }
  const files = new Set();
  const dependencies = new Set();
  const sources = new Set();
  for (const execution of data.executions) {
    for (const read of execution.reads) {
      if (data.written.has(read.path)) continue;
      if (!files.has(read.path)) {
        files.add(read.path);
        items.push({ group: "nodes", classes: "file", data: { id: `file:${read.path}`, path: read.path, label: read.path } });
      }
      const key = `source:${read.path}\u0000${execution.cell_id}`;
      if (!sources.has(key)) {
        sources.add(key);
        items.push({ group: "edges", classes: "source", data: { id: key, source: `file:${read.path}`, target: cellId(execution.cell_id), path: read.path, cell: execution.cell_id, label: "" } });
      }
    }
    // what the notebook wrote and none of its cells read: its outputs (model.pkl)
    for (const write of execution.writes) {
      if (data.read.has(write.path)) continue;
      if (!files.has(write.path)) {
        files.add(write.path);
        items.push({ group: "nodes", classes: "file output", data: { id: `file:${write.path}`, path: write.path, label: write.path } });
      }
      const key = `writes:${execution.cell_id}\u0000${write.path}`;
      if (!sources.has(key)) {
        sources.add(key);
        items.push({ group: "edges", classes: "writes", data: { id: key, source: cellId(execution.cell_id), target: `file:${write.path}`, path: write.path, cell: execution.cell_id, label: "" } });
      }
    }
    for (const link of execution.depends_on) {
      const earlier = data.byId.get(link.execution);
      if (!earlier || earlier.cell_id === execution.cell_id || isLibrary(data, link, earlier)) continue;
      const key = dependencyId(earlier.cell_id, execution.cell_id, link.via);
      if (dependencies.has(key)) continue;
      dependencies.add(key);
      items.push({ group: "edges", classes: `dependency${link.via === "file" ? " via-file" : ""}`, data: { id: key, source: cellId(earlier.cell_id), target: cellId(execution.cell_id), from: earlier.cell_id, to: execution.cell_id, via: link.via, label: "" } });
    }
  }
  return items;
}

// Libraries are drawn only when asked for: most notebooks import a few used nearly everywhere.
function libraryElements(data) {
  const items = [];
  for (const library of data.libraries.values()) {
    items.push({ group: "nodes", classes: `library${library.unused ? " unused" : ""}`, data: { id: `library:${library.name}`, name: library.name, label: library.version ? `${library.name} ${library.version}` : library.name } });
    const cells = library.used_in.length ? library.used_in : library.imported_in;
    for (const cell of cells) {
      if (!data.cells.has(cell)) continue;
      items.push({ group: "edges", classes: `library${library.unused ? " unused" : ""}`, data: { id: `library:${library.name}\u0000${cell}`, source: `library:${library.name}`, target: cellId(cell), name: library.name, cell, label: "" } });
    }
  }
  return items;
}

// A module an import bound is a library, drawn as one (blue) when asked for, not as a variable
// flowing from the cell that imported it to every cell that uses it.
function isLibrary(data, link, earlier) {
  const library = link.via === "variable" && data.libraries.get(link.name);
  return Boolean(library && library.imported_in.includes(earlier.cell_id));
}

// Libraries sit in a row above the cells, outside the layout: their edges reach across the whole
// notebook, and laying those out would cost more than all the rest.
function placeLibraries(libraries, box) {
  const step = Math.max(130, box.w / Math.max(libraries.length, 1));
  libraries.forEach((node, i) => { node.position({ x: box.x1 + 60 + i * step, y: box.y1 - 90 }); });
}

function cellId(cell) {
  return `cell:${cell}`;
}

function dependencyId(from, to, via) {
  return `dependency:${from}\u0000${to}\u0000${via}`;
}

function cellName(cell) {
  return cell && cell.length > 14 && /^[0-9a-f-]+$/.test(cell) ? cell.slice(0, 8) : cell;
}

function cellLabel(execution, count) {
  const line = (execution.source || "").split("\n").find((l) => l.trim()) || "";
  const first = line.length > 30 ? `${line.slice(0, 29)}…` : line;
  return `[${execution.execution_count ?? " "}] ${cellName(execution.cell_id)}${count > 1 ? ` ×${count}` : ""}\n${first}`;
}

function abbreviate(names) {
  return names.length > 3 ? `${names.slice(0, 3).join(", ")} +${names.length - 3}` : names.join(", ");
}

function summarize(summary) {
  if (!summary) return "";
  const parts = [];
  if (summary.shape) parts.push(`shape ${summary.shape.join("×")}`);
  if (summary.dtype) parts.push(summary.dtype);
  if (summary.len !== undefined) parts.push(`len ${summary.len}`);
  if (summary.columns) parts.push(`columns ${summary.columns.slice(0, 6).join(", ")}${summary.columns.length > 6 ? "…" : ""}`);
  if (summary.value !== undefined) parts.push(`= ${summary.value}`);
  if (summary.fitted !== undefined) parts.push(summary.fitted ? "fitted" : "not fitted");
  return parts.join(", ");
}

function inlineContent(entry) {
  return Promise.resolve(entry.text ?? null);
}
