// A logged name over its loop coordinates, one line per run, overlaid on shared axes.

import uPlot from "uplot";
import { append, h } from "./dom.js";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

export function chart(series, width = 640) {
  const lines = series.runs.filter((run) => run.points.some((p) => typeof p.y === "number"));
  const xs = [...new Set(lines.flatMap((run) => run.points.map((p) => p.x)))].sort((a, b) => a - b);
  const position = new Map(xs.map((x, i) => [x, i]));
  const columns = lines.map((run) => {
    const column = new Array(xs.length).fill(null);
    for (const point of run.points) if (typeof point.y === "number") column[position.get(point.x)] = point.y;
    return column;
  });
  const points = lines.reduce((sum, run) => sum + run.points.filter((p) => typeof p.y === "number").length, 0);
  const loops = [...new Set(lines.flatMap((run) => run.loops))];
  const axis = loops.length === 1 ? loops[0] : loops.length ? `position in the run (${loops.join(" › ")})` : "position in the run";
  const box = h("figure", { class: "chart", dataset: { name: series.name, points: String(points), runs: String(lines.length) } },
    h("figcaption", null, `${series.name} over ${axis}`));
  if (!lines.length) {
    append(box, h("p", { class: "muted" }, `no numeric values of ${series.name} in these runs`));
    return box;
  }
  const plot = new uPlot({
    width,
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: axis }, { label: series.name }],
    series: [
      { label: axis },
      ...lines.map((run, i) => ({
        label: `${run.filename || ""} ${run.run_id.slice(0, 8)}`,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        points: { show: xs.length <= 200, size: 4 },
      })),
    ],
  }, [xs, ...columns]);
  append(box, plot.root);
  append(box, h("ul", { class: "chart-runs" }, lines.map((run) =>
    h("li", { dataset: { run: run.run_id, points: String(run.points.length) } },
      `${run.run_id.slice(0, 8)} ${run.filename || ""}: ${run.points.length} points`))));
  return box;
}
