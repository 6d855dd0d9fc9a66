// Building the page from data that came from the store: cell sources, outputs, names, paths and
// values are user content. Everything goes in as text nodes or attribute values; nothing from the
// store is ever parsed as HTML here (HTML outputs are shown in a sandboxed frame, see outputs.js).

export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "class") {
      element.className = value;
    } else if (key === "href" || key === "src") {
      element.setAttribute(key, safeUrl(value));
    } else if (key in element && typeof value !== "string") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, ...children);
  return element;
}

export function append(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Links are built by this code from paths and ids; a stored value cannot smuggle in a
// javascript: URL.
function safeUrl(url) {
  const text = String(url);
  return /^(https?:|data:image\/(png|jpeg|gif);|\/|\?|#)/.test(text) ? text : "#";
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function short(id, length = 8) {
  return id ? String(id).slice(0, length) : "";
}

export function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1e5 || (Math.abs(value) < 1e-3 && value !== 0)
      ? value.toExponential(3)
      : String(Number(value.toPrecision(5)));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (seconds < 120) return `${seconds.toFixed(2)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

export function formatTime(stamp) {
  return stamp ? String(stamp).replace("T", " ").replace(/([+-]\d\d:\d\d|Z)$/, "") : "";
}

export function table(columns, rows, options = {}) {
  return h("table", { class: options.class || "grid" },
    h("thead", null, h("tr", null, columns.map((c) => h("th", null, c)))),
    h("tbody", null, rows.map((row) => h("tr", null, row.map((cell) => h("td", null, cell))))));
}

export function keyValues(entries) {
  return h("dl", { class: "kv" }, entries
    .filter(([, value]) => value !== undefined && value !== null && value !== "")
    .map(([key, value]) => [h("dt", null, key), h("dd", null, value)]));
}

export function section(title, ...children) {
  return h("section", { class: "block" }, h("h2", null, title), ...children);
}

export function hashText(hash) {
  return hash ? h("code", { class: "hash", title: hash }, short(hash, 12)) : h("span", { class: "muted" }, "not hashed");
}
