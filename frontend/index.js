// One bundle, three hosts: the `trellis ui` dashboard (a page with #trellis-app), a static page
// from `trellis export --format html` (#trellis-app plus its data in #trellis-data), and the
// notebook widget (anywidget calls `render`).

import uplotStyle from "uplot/dist/uPlot.min.css";
import { dashboard } from "./app.js";
import { append, h } from "./dom.js";
import { graphView } from "./graph.js";
import { notebookView } from "./notebook.js";
import style from "./style.css";

function addStyle(document) {
  if (document.getElementById("trellis-style")) return;
  const element = document.createElement("style");
  element.id = "trellis-style";
  element.textContent = `${uplotStyle}\n${style}`;
  document.head.append(element);
}

function staticPage(root, data) {
  append(root, [h("h1", null, data.title), data.subtitle ? h("p", null, data.subtitle) : null]);
  const box = h("div", data.view === "notebook" ? { class: "notebook-box" } : null);
  append(root, box);
  if (data.view === "notebook") notebookView(box, data.notebook);
  else graphView(box, data.graph);
}

// The widget: the notebook's graph, redrawn when the kernel sends new history.
function render({ model, el }) {
  addStyle(document);
  el.classList.add("trellis", "trellis-widget");
  const parse = () => JSON.parse(model.get("data") || "{}");
  let data = parse();
  const box = h("div");
  const message = h("p", { class: "warning" });
  append(el, message, box);
  const showMessage = () => { message.textContent = model.get("message") || ""; };
  showMessage();
  const view = notebookView(box, data);
  const onData = () => { data = parse(); view.update(data); };
  model.on("change:data", onData);
  model.on("change:message", showMessage);
  return () => {
    model.off("change:data", onData);
    model.off("change:message", showMessage);
    view.destroy();
  };
}

export default { render };

if (typeof document !== "undefined") {
  const root = document.getElementById("trellis-app");
  if (root) {
    addStyle(document);
    root.classList.add("trellis");
    const embedded = document.getElementById("trellis-data");
    if (embedded) staticPage(root, JSON.parse(embedded.textContent));
    else dashboard(root);
  }
}
