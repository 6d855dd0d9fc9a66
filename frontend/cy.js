import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";

cytoscape.use(dagre);

export const COLOURS = {
  cell: "#dbe4ee",
  failed: "#f4a09c",
  reads: "#fdbe85",
  outputs: "#b5dfa8",
  file: "#fee6ce",
  output: "#e5f5e0",
  stale: "#c58a00",
  library: "#c6dbef",
  edge: "#8a8f98",
  dataEdge: "#e6781e",
  libraryEdge: "#2b7bba",
  selected: "#1f2a44",
};

export function createGraph(container, elements, style, layout) {
  return cytoscape({
    container,
    elements,
    style: [...BASE_STYLE, ...style],
    // laid out afterwards (layOut): fitting nodes that all sit at 0,0 would measure every label
    layout: layout || { name: "preset", fit: false },
    minZoom: 0.05,
    maxZoom: 4,
    boxSelectionEnabled: false,
    // drawing every frame while panning is what makes big graphs feel slow
    textureOnViewport: true,
    hideEdgesOnViewport: true,
    pixelRatio: 1,
  });
}

const NODE = { width: 180, height: 40 };
const SPACING = { node: 18, rank: 50 };

function dagreLayout(direction) {
  return { name: "dagre", rankDir: direction, nodeSep: SPACING.node, rankSep: SPACING.rank, edgeSep: 8, animate: false, fit: false };
}

// Above this many nodes dagre's layout (hundreds of milliseconds at 100 nodes, growing faster
// than the graph) gives way to a plain layered one that costs a few milliseconds.
const DAGRE_UP_TO = 60;

// Left to right reads best, unless the graph is so long that top to bottom lets it be drawn
// bigger in the space there is: which one is judged from the ranks before laying out. `place`
// positions what the layout leaves out. Small graphs are not blown up.
export function layOut(elements, place = null) {
  const cy = elements.cy();
  const ranks = rank(elements);
  const counts = new Map();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) || 0) + 1);
  const deep = Math.max(1, counts.size);
  const widest = Math.max(1, ...counts.values());
  const zoom = (w, h) => Math.min(cy.width() / w, cy.height() / h);
  const across = zoom(deep * (NODE.width + SPACING.rank), widest * (NODE.height + SPACING.node));
  const down = zoom(widest * (NODE.width + SPACING.node), deep * (NODE.height + SPACING.rank));
  const direction = down > across * 1.2 ? "TB" : "LR";
  if (elements.nodes().length <= DAGRE_UP_TO) elements.layout(dagreLayout(direction)).run();
  else layered(elements, ranks, direction);
  if (place) place(nodeBox(elements.nodes()));
  fit(cy);
}

// Fit the shown nodes from their positions and sizes: the graph's own fit measures every label
// and edge first, which costs more than the whole layout.
export function fit(cy) {
  const box = nodeBox(cy.nodes().not(".hidden"));
  if (!Number.isFinite(box.x1)) return;
  const padding = 20;
  const zoom = Math.min(1.4, (cy.width() - 2 * padding) / Math.max(box.w, 1), (cy.height() - 2 * padding) / Math.max(box.h, 1));
  cy.viewport({
    zoom,
    pan: { x: (cy.width() - zoom * (box.x1 + box.x2)) / 2, y: (cy.height() - zoom * (box.y1 + box.y2)) / 2 },
  });
}

// Labels are 11 px at zoom 1: below this zoom they are too small to read.
const READABLE_ZOOM = 0.8;

// A graph too big to read whole opens on ``id`` at a readable size, centred; "fit" shows it all.
export function focus(cy, id) {
  const node = id ? cy.getElementById(id) : null;
  if (cy.zoom() >= READABLE_ZOOM || !node || node.empty()) return;
  cy.zoom(READABLE_ZOOM);
  cy.center(node);
}

function nodeBox(nodes) {
  const box = { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
  nodes.forEach((node) => {
    const { x, y } = node.position();
    const halfWidth = node.numericStyle("width") / 2;
    const halfHeight = node.numericStyle("height") / 2;
    box.x1 = Math.min(box.x1, x - halfWidth);
    box.x2 = Math.max(box.x2, x + halfWidth);
    box.y1 = Math.min(box.y1, y - halfHeight);
    box.y2 = Math.max(box.y2, y + halfHeight);
  });
  return { ...box, w: box.x2 - box.x1, h: box.y2 - box.y1 };
}

// Each node's rank: the length of the longest path to it (edges that close a cycle ignored).
function rank(elements) {
  const incoming = new Map(elements.nodes().map((n) => [n.id(), []]));
  elements.edges().forEach((edge) => {
    const list = incoming.get(edge.target().id());
    if (list && incoming.has(edge.source().id())) list.push(edge.source().id());
  });
  const ranks = new Map();
  const visiting = new Set();
  for (const start of incoming.keys()) {
    const stack = [start];
    while (stack.length) {
      const id = stack[stack.length - 1];
      if (ranks.has(id)) { stack.pop(); continue; }
      visiting.add(id);
      const pending = incoming.get(id).find((s) => !ranks.has(s) && !visiting.has(s));
      if (pending) { stack.push(pending); continue; }
      ranks.set(id, 1 + Math.max(-1, ...incoming.get(id).filter((s) => ranks.has(s)).map((s) => ranks.get(s))));
      visiting.delete(id);
      stack.pop();
    }
  }
  return ranks;
}

// Nodes in columns (rows, top to bottom) by rank, each ordered by where its predecessors sit.
function layered(elements, ranks, direction) {
  const columns = [];
  elements.nodes().forEach((node) => {
    const r = ranks.get(node.id());
    (columns[r] ||= []).push(node);
  });
  const place = new Map();
  for (const column of columns) {
    if (!column) continue;
    const weight = (node) => {
      const before = node.incomers("node").filter((n) => place.has(n.id()));
      return before.length ? before.reduce((sum, n) => sum + place.get(n.id()), 0) / before.length : Infinity;
    };
    const keyed = column.map((node, i) => ({ node, key: weight(node), i }));
    keyed.sort((a, b) => (a.key === b.key ? a.i - b.i : a.key - b.key));
    keyed.forEach(({ node }, i) => place.set(node.id(), i - (keyed.length - 1) / 2));
  }
  elements.nodes().positions((node) => {
    const along = ranks.get(node.id());
    const across = place.get(node.id());
    return direction === "LR"
      ? { x: along * (NODE.width + SPACING.rank), y: across * (NODE.height + SPACING.node) }
      : { x: across * (NODE.width + SPACING.node), y: along * (NODE.height + SPACING.rank) };
  });
}

const BASE_STYLE = [
  {
    selector: "node",
    style: {
      shape: "round-rectangle",
      label: "data(label)",
      "text-wrap": "wrap",
      "text-max-width": 170,
      "text-valign": "center",
      "text-halign": "center",
      "font-size": 11,
      "font-family": "system-ui, sans-serif",
      // text too small to read is not drawn: a large graph fitted to the screen draws fast
      "min-zoomed-font-size": 5,
      width: 180,
      height: 40,
      "background-color": COLOURS.cell,
      "border-width": 1,
      "border-color": "#5b6675",
      color: "#1b1f24",
    },
  },
  {
    selector: "edge",
    style: {
      width: 1.4,
      "curve-style": "bezier",
      "target-arrow-shape": "triangle",
      "arrow-scale": 0.9,
      "line-color": COLOURS.edge,
      "target-arrow-color": COLOURS.edge,
      label: "data(label)",
      "font-size": 9,
      "text-rotation": "autorotate",
      "text-background-color": "#ffffff",
      "text-background-opacity": 0.85,
      "text-background-padding": 1,
      "min-zoomed-font-size": 5,
      color: "#39414d",
    },
  },
  { selector: ".hidden", style: { display: "none" } },
  { selector: ":selected", style: { "border-width": 3, "border-color": COLOURS.selected, "line-color": COLOURS.selected, "target-arrow-color": COLOURS.selected } },
];
