// The charts pane: requests per second, p50/p99 latency and each worker's memory (stacked)
// over the last 5 or 15 minutes of the snapshot history. Hovering any chart moves one shared
// cursor over all three, and the legends then read that second instead of the latest. Until
// the window's worth is collected, the time axis spans what there is (at least MIN_SPAN), so
// a fresh server's first minute is not a sliver at the right edge; the legend says so.

import * as fmt from "./format.js";
import { Chart } from "./chart.js";
import { h, setText } from "./dom.js";
import { schedule } from "./frame.js";

const PALETTE_SIZE = 8; // --series-0 … --series-7 in app.css
const LEGEND_WORKERS = 4; // memory chips shown (the newest workers); more still draw
const MIN_SPAN = 30; // seconds: the shortest time axis (a few points still read as a line)

export class ChartsPane {
  constructor(root) {
    this.root = root;
    this.history = [];
    this.seconds = 300;
    this.cursor = null; // unix time under the mouse, or null: the latest second
    this.colorOf = new Map(); // pid → palette index, for the pids in the window (oldest first)
    this.chipsFor = "";
    this.charts = {};
    const kinds = [
      ["rps", { format: fmt.count }],
      ["latency", { format: axisMillis, log: true }],
      ["rss", { format: fmt.memory, unit: 2 ** 20 }],
    ];
    for (const [name, options] of kinds) {
      const canvas = root.querySelector(`canvas[data-chart="${name}"]`);
      this.charts[name] = new Chart(canvas, options);
      this.follow(canvas, this.charts[name]);
    }
    this.legend = {};
    for (const node of root.querySelectorAll("[data-legend]")) {
      this.legend[node.dataset.legend] = node;
    }
    this.watchColors();
    this.watchPixelRatio();
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-window]");
      if (button) this.setWindow(Number(button.dataset.window));
    });
  }

  /** The history changed (a snapshot came): redraw in the next frame. */
  update(history) {
    this.history = history;
    this.redraw();
  }

  clear() {
    this.history = [];
    this.colorOf.clear();
    this.redraw();
  }

  redraw() {
    schedule("charts", () => this.draw());
  }

  setWindow(seconds) {
    this.seconds = seconds;
    for (const button of this.root.querySelectorAll("[data-window]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.window) === seconds));
    }
    this.redraw();
  }

  /** Canvases redraw when their box changes size, and track the mouse for the cursor. */
  follow(canvas, chart) {
    new ResizeObserver(() => this.redraw()).observe(canvas);
    canvas.addEventListener("mousemove", (event) => {
      this.cursor = chart.timeAt(event.offsetX);
      this.redraw();
    });
    canvas.addEventListener("mouseleave", () => {
      this.cursor = null;
      this.redraw();
    });
  }

  /** Moving the window to a screen of another density changes no size, so no ResizeObserver
   * fires: redraw for the new devicePixelRatio, then watch for the next change. */
  watchPixelRatio() {
    matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener(
      "change",
      () => {
        this.redraw();
        this.watchPixelRatio();
      },
      { once: true },
    );
  }

  /** Chart colours come from app.css, so they follow the light or dark scheme. */
  watchColors() {
    const read = () => {
      const style = getComputedStyle(document.documentElement);
      const get = (name) => style.getPropertyValue(name).trim();
      this.colors = {
        grid: get("--chart-grid"), axis: get("--chart-axis"), text: get("--muted"),
        cursor: get("--chart-cursor"), rps: get("--chart-rps"), p50: get("--chart-p50"),
        p99: get("--chart-p99"),
        series: Array.from({ length: PALETTE_SIZE }, (_, i) => get(`--series-${i}`)),
      };
    };
    read();
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      read();
      this.chipsFor = ""; // the swatches carry colours too
      this.redraw();
    });
  }

  draw() {
    const history = this.history;
    const latest = history.length ? history[history.length - 1].t : Date.now() / 1000;
    const span = this.span(history, latest);
    const t0 = latest - span;
    const points = history.filter((point) => point.t > t0);
    const at = this.pointAt(points);
    const cursor = this.cursor == null || !at ? null : at.t;
    const base = { t0, t1: latest, cursor, colors: this.colors };
    const series = (key) => points.map((point) => [point.t, point[key] ?? null]);
    this.charts.rps.draw({
      ...base,
      layers: [{ kind: "area", color: this.colors.rps, points: series("rps") }],
    });
    this.charts.latency.draw({
      ...base,
      layers: [
        { kind: "line", color: this.colors.p99, points: series("p99") },
        { kind: "line", color: this.colors.p50, points: series("p50") },
      ],
    });
    const pids = this.pidsIn(points);
    this.charts.rss.draw({ ...base, layers: this.memoryBands(points, pids) });
    this.drawLegends(at, pids, span);
  }

  /** Seconds the time axis spans: the window, or what is collected so far when less. */
  span(history, latest) {
    const collected = history.length ? latest - history[0].t : 0;
    return Math.min(this.seconds, Math.max(MIN_SPAN, collected));
  }

  /** The point under the cursor (the nearest second), or the latest one. */
  pointAt(points) {
    if (!points.length) return null;
    if (this.cursor == null) return points[points.length - 1];
    let best = points[0];
    for (const point of points) {
      if (Math.abs(point.t - this.cursor) < Math.abs(best.t - this.cursor)) best = point;
    }
    return best;
  }

  pidsIn(points) {
    const pids = new Set();
    for (const point of points) for (const pid of Object.keys(point.workers || {})) pids.add(pid);
    const live = Object.keys(points[points.length - 1]?.workers || {});
    this.assignColors(pids, live);
    return [...pids].sort((a, b) => this.order(a) - this.order(b)); // oldest workers at the bottom
  }

  /** Forgets the pids that left the window, then gives each new one the lowest palette index
   * no pid in the window has (a count of every pid ever seen would, after 8 replacements,
   * give two live workers one colour); with more than 8 in the window, the lowest that no
   * live worker has: a dead worker's band may share a colour, two live ones do not. */
  assignColors(pids, live) {
    for (const pid of this.colorOf.keys()) if (!pids.has(pid)) this.colorOf.delete(pid);
    for (const pid of pids) {
      if (this.colorOf.has(pid)) continue;
      const inWindow = new Set(this.colorOf.values());
      const liveNow = new Set(live.map((other) => this.colorOf.get(other)));
      this.colorOf.set(pid, lowestFree(inWindow) ?? lowestFree(liveNow) ?? 0);
    }
  }

  order(pid) {
    return [...this.colorOf.keys()].indexOf(pid);
  }

  /** Each worker's RSS as a band stacked on the ones below it: the top edge is the total. */
  memoryBands(points, pids) {
    const bands = pids.map((pid) => ({ kind: "band", color: this.colorFor(pid), points: [] }));
    for (const point of points) {
      let below = 0;
      pids.forEach((pid, i) => {
        const rss = point.workers?.[pid]?.rss;
        bands[i].points.push([point.t, below, rss == null ? null : below + rss]);
        if (rss != null) below += rss;
      });
    }
    return bands;
  }

  /** Coloured through the CSSOM: the page's Content-Security-Policy refuses style attributes. */
  swatch(pid) {
    const swatch = h("i");
    swatch.style.background = this.colorFor(pid);
    return swatch;
  }

  colorFor(pid) {
    return this.colors.series[this.colorOf.get(pid) ?? 0];
  }

  drawLegends(at, pids, span) {
    const legend = this.legend;
    const hovered = this.cursor != null && at;
    setText(legend.time, hovered ? `at ${fmt.clock(at.t, false)}` : this.spanText(span));
    setText(legend.rps, fmt.count(at?.rps));
    setText(legend.p50, fmt.millis(at?.p50));
    setText(legend.p99, fmt.millis(at?.p99));
    const live = pids.filter((pid) => at?.workers?.[pid]);
    const total = live.reduce((sum, pid) => sum + (at.workers[pid].rss || 0), 0);
    setText(legend.rss, fmt.memory(total));
    this.drawChips(live.slice(-LEGEND_WORKERS), live.length - LEGEND_WORKERS, at);
  }

  /** "last 5 min", or while less is collected: "last 1 min 12 s (all so far)". */
  spanText(span) {
    if (span >= this.seconds) return `last ${this.seconds / 60} min`;
    const whole = Math.round(span);
    const [minutes, seconds] = [Math.floor(whole / 60), whole % 60];
    const text = minutes ? `${minutes} min` + (seconds ? ` ${seconds} s` : "") : `${seconds} s`;
    return `last ${text} (all so far)`;
  }

  /** One swatch and value per worker, then "+3 more" for the older ones left out (their
   * bands still draw); rebuilt only when the set of workers changes. */
  drawChips(pids, more, at) {
    const key = `${pids.join(",")}+${more}`;
    if (key !== this.chipsFor) {
      this.chipsFor = key;
      const chips = pids.map((pid) =>
        h("span", { className: "chip", dataset: { pid } }, this.swatch(pid), pid + " ", h("b")),
      );
      if (more > 0) chips.unshift(h("span", { className: "chip more" }, `+${more} more`));
      this.legend.workers.replaceChildren(...chips);
    }
    for (const chip of this.legend.workers.querySelectorAll(".chip[data-pid]")) {
      setText(chip.querySelector("b"), fmt.memory(at?.workers?.[chip.dataset.pid]?.rss));
    }
  }
}

/** A power of ten of milliseconds, short: "0.1 ms", "1 ms", "100 ms", "1 s". */
function axisMillis(value) {
  return value >= 1000 ? `${value / 1000} s` : `${Number(value.toPrecision(1))} ms`;
}

/** The lowest palette index not in `taken`, or undefined when all are. */
function lowestFree(taken) {
  for (let i = 0; i < PALETTE_SIZE; i++) if (!taken.has(i)) return i;
  return undefined;
}
