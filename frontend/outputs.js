import { append, h } from "./dom.js";

// The order in which an output's representations are preferred, as Jupyter does.
const PREFERRED = ["image/png", "image/jpeg", "image/gif", "text/html", "image/svg+xml",
  "application/json", "text/plain"];

// A cell's outputs, each as its richest representation, safely: images as data URLs, HTML and
// SVG inside a frame sandboxed with no permissions (no script, no same origin, no forms), text as
// text. `contentOf(entry)` resolves to the stored content of one representation.
export function renderOutputs(outputs, contentOf) {
  if (!outputs || !outputs.length) return h("p", { class: "muted" }, "no outputs");
  return h("div", { class: "outputs" }, outputs.map((output) => renderOutput(output, contentOf)));
}

function renderOutput(output, contentOf) {
  const data = output.data || {};
  const mime = PREFERRED.find((m) => data[m] && (data[m].object || data[m].text !== undefined))
    || Object.keys(data)[0];
  const box = h("div", { class: "output", dataset: { mime: mime || "" } },
    h("div", { class: "output-type muted" }, `${output.output_type || "output"} · ${mime || "no data"}`));
  const entry = mime ? data[mime] : null;
  if (!entry || (!entry.object && entry.text === undefined)) {
    append(box, h("pre", null, output.preview || `(${entry && entry.size ? entry.size + " bytes, " : ""}not kept)`));
    return box;
  }
  const placeholder = h("pre", { class: "muted" }, output.preview || "loading…");
  append(box, placeholder);
  contentOf(entry).then((text) => {
    placeholder.replaceWith(show(mime, text, output.preview));
  }).catch((error) => {
    placeholder.textContent = `${output.preview || ""}\n(${error.message})`;
  });
  return box;
}

function show(mime, text, preview) {
  if (text === null || text === undefined) return h("pre", null, preview || "");
  if (mime.startsWith("image/") && mime !== "image/svg+xml") {
    return h("img", { class: "output-image", alt: preview || mime, src: `data:${mime};base64,${text.replace(/\s/g, "")}` });
  }
  if (mime === "text/html" || mime === "image/svg+xml") return sandboxed(text);
  return h("pre", null, text);
}

function sandboxed(html) {
  const frame = document.createElement("iframe");
  // the sandbox is set before any content: the frame never exists with permissions
  frame.setAttribute("sandbox", "");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.className = "output-html";
  frame.title = "HTML output (scripts disabled)";
  frame.srcdoc = html;
  return frame;
}
