// One run: what it was given (params, environment, code snapshot, build target), what it did
// (values, files, checkpoints, output streams) and where it came from.

import { chart } from "./chart.js";
import { append, clear, formatSeconds, formatTime, formatValue, h, hashText, keyValues, section, short, table } from "./dom.js";

export function runView(root, run, api) {
  const environment = run.environment || {};
  const packages = Object.entries(environment.packages || {});
  const git = run.git || {};
  const build = run.build || {};
  const written = run.files.filter((f) => f.mode === "write");
  const read = run.files.filter((f) => f.mode === "read");
  const charts = h("div", { class: "charts" });
  append(clear(root), h("div", { class: "run-view" },
    h("h1", null, `${run.filename || run.kind} `, h("span", { class: `status ${run.status}` }, run.status)),
    keyValues([
      ["run", run.run_id], ["kind", run.kind], ["started", formatTime(run.started)], ["ended", formatTime(run.ended)],
      ["duration", formatSeconds(run.duration)], ["host", run.host], ["argv", run.argv ? run.argv.join(" ") : ""],
      ["notebook", run.kind === "notebook" && run.filename ? h("a", { href: `/notebook?path=${encodeURIComponent(run.filename)}` }, "provenance graph") : ""],
      ["lineage", h("a", { href: `/lineage?target=${encodeURIComponent(`run:${run.run_id}`)}` }, "what this run was built from")],
    ]),
    run.error ? h("pre", { class: "error" }, run.error) : null,
    run.problems.length ? section("problems while recording", h("ul", null, run.problems.map((p) => h("li", null, String(p))))) : null,
    section("params", Object.keys(run.params).length
      ? table(["name", "value"], Object.entries(run.params).map(([k, v]) => [k, formatValue(v)]))
      : h("p", { class: "muted" }, "none")),
    section("logged values", Object.keys(run.logged).length
      ? table(["name", "values", "replayed", ""], Object.entries(run.logged).map(([name, origins]) => [
        name, String(origins.forward || 0),
        origins.replay ? h("span", { class: "replayed" }, `${origins.replay} replayed`) : "",
        h("button", { type: "button", class: "chart-button", dataset: { name }, onclick: () => drawChart(name) }, "chart")]))
      : h("p", { class: "muted" }, "none"),
    charts),
    section("code snapshot", git.commit
      ? [keyValues([["commit", h("code", null, git.commit)], ["branch", git.branch], ["HEAD then", git.head ? short(git.head, 10) : ""],
        ["uncommitted changes", git.dirty ? "yes (in the snapshot)" : "no"]]),
      h("p", null, run.filename ? h("a", { href: `/runs/${run.run_id}/code?path=${encodeURIComponent(run.filename)}`, class: "code-link" }, `${run.filename} as it ran`) : null,
        ` · ${run.snapshot.files.length} files in the snapshot`)]
      : h("p", { class: "muted" }, git.error ? `no snapshot: ${git.error}` : "recorded outside git")),
    section("build", build.target || build.kind === "make"
      ? keyValues([["make target", build.target], ["prerequisites", (build.prerequisites || []).join(" ")],
        ["recipe", build.recipe ? h("pre", null, [].concat(build.recipe).join("\n")) : ""], ["makefile", build.makefile]])
      : keyValues([["started by", (build.parent_command || []).join(" ") || "unknown"]])),
    section("artifacts written", written.length ? fileTable(written, true) : h("p", { class: "muted" }, "none")),
    section("data read", read.length ? fileTable(read, false) : h("p", { class: "muted" }, "none")),
    section("checkpoints", run.checkpoints.length
      ? table(["loop", "iteration", "name", "format", "bytes", "seconds", "object"], run.checkpoints.map((c) =>
        [c.loop, String(c.iteration), c.name, c.format, String(c.size), String(c.seconds), hashText(c.object)]))
      : h("p", { class: "muted" }, "none")),
    run.inputs.length ? section("values read from other runs", table(["run", "via", "what"], run.inputs.map((i) =>
      [h("a", { href: `/runs/${i.run_id}` }, short(i.run_id)), i.via, i.detail || ""]))) : null,
    section("environment", keyValues([
      ["python", `${environment.python_implementation || ""} ${environment.python_version || ""}`],
      ["system", [environment.os, environment.release, environment.machine].filter(Boolean).join(" ")],
      ["host", environment.hostname], ["CPUs", environment.cpu_count],
      ["environment variables", Object.entries(environment.env_vars || {}).map(([k, v]) => `${k}=${v}`).join(" ")],
    ]), h("details", null, h("summary", null, `${packages.length} packages`), table(["package", "version"], packages))),
    section("stdout", run.stdout ? h("pre", { class: "stream" }, run.stdout) : h("p", { class: "muted" }, "empty")),
    section("stderr", run.stderr ? h("pre", { class: "stream" }, run.stderr) : h("p", { class: "muted" }, "empty"))));
  root.dataset.rendered = "true";

  async function drawChart(name) {
    try {
      append(clear(charts), chart(await api.series(name, [run.run_id])));
    } catch (error) {
      append(clear(charts), h("p", { class: "error" }, error.message));
    }
  }
}

function fileTable(files, lineage) {
  return table(["path", "sha256", "bytes", "at", ""], files.map((f) => [
    f.path, hashText(f.hash), f.size ?? "", formatTime(f.at),
    lineage ? h("a", { href: `/lineage?target=${encodeURIComponent(f.path)}` }, "lineage") : "",
  ]));
}

export function codeView(root, code) {
  append(clear(root), h("div", { class: "code-view" },
    h("h1", null, code.path),
    h("p", null, "as run by ", h("a", { href: `/runs/${code.run_id}` }, short(code.run_id)), " (snapshot ", h("code", null, short(code.commit, 10)), ")"),
    h("pre", { class: "source numbered" }, code.text.replace(/\n$/, "").split("\n").map((line, i) => h("span", { class: "line", dataset: { n: String(i + 1) } }, line, "\n")))));
  root.dataset.rendered = "true";
}
