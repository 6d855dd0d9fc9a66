// The dashboard: every page is this script over the read-only JSON API of `trellis ui`.

import { diffView } from "./diff.js";
import { append, clear, formatTime, h, table } from "./dom.js";
import { graphView, lineageGraph } from "./graph.js";
import { notebookView } from "./notebook.js";
import { codeView, runView } from "./run.js";
import { runsView } from "./runs.js";

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

const api = {
  series: (name, runs) => getJson(`/api/series?${new URLSearchParams([["name", name], ...runs.map((r) => ["run", r])])}`),
};

function contentOf(entry) {
  return fetch(`/objects/${encodeURIComponent(entry.object)}`, { credentials: "same-origin" }).then((response) => {
    if (!response.ok) throw new Error(`output not found (${response.status})`);
    return response.text();
  });
}

const NAVIGATION = [["/", "runs"], ["/notebooks", "notebooks"], ["/lineage", "lineage"], ["/diff", "diff"]];

export async function dashboard(root) {
  const path = window.location.pathname;
  const query = new URLSearchParams(window.location.search);
  const main = h("main", { class: "page" });
  append(clear(root),
    h("nav", { class: "top" }, h("strong", null, "trellis"), NAVIGATION.map(([href, title]) =>
      h("a", { href, class: (href === "/" ? path === "/" || path.startsWith("/runs") : path.startsWith(href)) ? "current" : "" }, title))),
    main);
  try {
    await page(main, path, query);
  } catch (error) {
    append(clear(main), h("p", { class: "error page-error" }, error.message));
    main.dataset.rendered = "error";
  }
}

async function page(main, path, query) {
  let match;
  if (path === "/") return runsView(main, await getJson("/api/runs"), api);
  if ((match = path.match(/^\/runs\/([0-9a-f-]+)\/code$/))) {
    return codeView(main, await getJson(`/api/runs/${match[1]}/code?${new URLSearchParams({ path: query.get("path") || "" })}`));
  }
  if ((match = path.match(/^\/runs\/([0-9a-f-]+|latest)$/))) return runView(main, await getJson(`/api/runs/${match[1]}`), api);
  if (path === "/notebooks") return notebooksPage(main, await getJson("/api/notebooks"));
  if (path === "/notebook") {
    const notebook = query.get("path") || "";
    const data = await getJson(`/api/notebook?${new URLSearchParams({ path: notebook })}`);
    const box = h("div", { class: "notebook-box" });
    append(main, h("h1", null, data.notebook), data.file_found ? null : h("p", { class: "warning" }, "The notebook file is not in the project any more: no cell is marked deleted."), box);
    notebookView(box, data, { contentOf });
    main.dataset.rendered = "true";
    return null;
  }
  if (path === "/lineage") return lineagePage(main, query);
  if (path === "/diff") return diffPage(main, query);
  throw new Error(`no page at ${path}`);
}

function notebooksPage(main, notebooks) {
  append(main, h("h1", null, "Notebooks"), notebooks.length
    ? table(["notebook", "epochs", "executions", "last session"], notebooks.map((n) => [
      h("a", { href: `/notebook?${new URLSearchParams({ path: n.notebook })}` }, n.notebook),
      String(n.epochs), String(n.executions), formatTime(n.last)]))
    : h("p", { class: "muted" }, "No notebook session recorded yet: `trellis kernel install`, or `trellis run NB.ipynb`."));
  main.dataset.rendered = "true";
}

async function lineagePage(main, query) {
  const target = query.get("target") || "";
  const downstream = query.get("downstream") === "1";
  const form = h("form", { class: "toolbar", method: "get", action: "/lineage" },
    h("input", { name: "target", value: target, placeholder: "a file path, run:<id> or notebook.ipynb:variable", size: 50, "aria-label": "lineage of" }),
    h("label", null, h("input", { type: "checkbox", name: "downstream", value: "1", checked: downstream }), " downstream"),
    h("button", { type: "submit" }, "show"));
  append(main, h("h1", null, "Lineage"), form);
  if (!target) {
    const files = await getJson("/api/files");
    append(main, h("p", null, "What was each file built from? Files written by recorded runs:"),
      h("ul", { class: "file-list" }, files.map((f) => h("li", null, h("a", { href: `/lineage?${new URLSearchParams({ target: f })}` }, f)))));
    main.dataset.rendered = "true";
    return;
  }
  const graph = lineageGraph(await getJson(`/api/lineage?${new URLSearchParams({ target, downstream: downstream ? "1" : "0" })}`));
  const box = h("div", { class: "lineage-box" });
  append(main, box);
  graphView(box, graph);
  main.dataset.rendered = "true";
}

async function diffPage(main, query) {
  const a = query.get("a") || "";
  const b = query.get("b") || "";
  append(main, h("form", { class: "toolbar", method: "get", action: "/diff" },
    h("input", { name: "a", value: a, placeholder: "run, epoch or EPOCH/N", "aria-label": "a" }),
    h("input", { name: "b", value: b, placeholder: "run, epoch or EPOCH/N", "aria-label": "b" }),
    h("button", { type: "submit" }, "compare")));
  if (!a || !b) {
    append(main, h("p", { class: "muted" }, "Two run ids (or prefixes, or latest), or two executions as EPOCH/N. Select two runs in the runs table to get here."));
    main.dataset.rendered = "true";
    return;
  }
  const box = h("div");
  append(main, box);
  diffView(box, await getJson(`/api/diff?${new URLSearchParams({ a, b })}`));
  main.dataset.rendered = "true";
}
