// One time-series chart on a <canvas>, drawn by hand (no library, works offline). It knows
// nothing of devserve: it draws layers of [t, value] points between t0 and t1, and a cursor.
// The time axis is labelled relative to t1 ("-2m" … "now"), at a step that suits the span and
// the width. The backing store is sized in device pixels so lines stay crisp on HiDPI screens.

const GAP_SECONDS = 2.5; // points further apart than this are not joined: the data has a hole
const PAD = { top: 4, right: 2, bottom: 14, left: 2 }; // the bottom holds the time labels
const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600]; // seconds between time grid lines
const TICK_SPACE = 56; // CSS pixels a time label needs, its gap included

export class Chart {
  /** format(value) writes the y-axis label; unit: the axis top is a round number of these
   * (2 ** 20 for memory, so that it reads "96M", not "95M"). */
  constructor(canvas, { format, unit = 1 }) {
    this.canvas = canvas;
    this.format = format;
    this.unit = unit;
    this.view = null;
    this.width = 0;
    this.height = 0;
  }

  /** Matches the canvas's backing store to its CSS size × devicePixelRatio; true if changed. */
  fit() {
    const ratio = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    const width = Math.max(1, Math.round(rect.width * ratio));
    const height = Math.max(1, Math.round(rect.height * ratio));
    const same = width === this.canvas.width && height === this.canvas.height;
    if (same && ratio === this.ratio) return false;
    Object.assign(this.canvas, { width, height });
    Object.assign(this, { width: rect.width, height: rect.height, ratio });
    return true;
  }

  /** view: {t0, t1, layers: [{kind: "area"|"line"|"band", color, points}], cursor, colors}.
   * "area" and "line" points are [t, v] (v null: a hole); "band" points are [t, low, high]. */
  draw(view) {
    this.view = view;
    this.fit();
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    const top = niceMax(maxValue(view.layers) / this.unit) * this.unit;
    const plotWidth = this.width - PAD.left - PAD.right;
    const x = (t) => PAD.left + ((t - view.t0) / (view.t1 - view.t0)) * plotWidth;
    const y = (v) => this.height - PAD.bottom - (v / top) * (this.height - PAD.top - PAD.bottom);
    this.grid(ctx, view, x, y, top);
    for (const layer of view.layers) {
      if (layer.kind === "band") this.band(ctx, layer, x, y);
      else this.line(ctx, layer, x, y);
    }
    if (view.cursor != null) this.cursor(ctx, view, x(view.cursor));
    this.labels(ctx, view, y, top);
  }

  /** The time (unix seconds) under a CSS-pixel x offset, for hover read-outs. */
  timeAt(offsetX) {
    if (!this.view) return null;
    const { t0, t1 } = this.view;
    const share = (offsetX - PAD.left) / (this.width - PAD.left - PAD.right);
    return t0 + Math.min(1, Math.max(0, share)) * (t1 - t0);
  }

  grid(ctx, view, x, y, top) {
    ctx.strokeStyle = view.colors.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const v of [top / 2, top]) {
      const py = Math.round(y(v)) + 0.5; // half pixels: a 1px line on a pixel, not across two
      ctx.moveTo(PAD.left, py);
      ctx.lineTo(this.width - PAD.right, py);
    }
    for (const t of this.ticks(view)) {
      const px = Math.round(x(t)) + 0.5; // a faint line at each labelled time, Grafana-like
      ctx.moveTo(px, PAD.top);
      ctx.lineTo(px, this.height - PAD.bottom);
    }
    ctx.stroke();
    ctx.strokeStyle = view.colors.axis;
    ctx.beginPath();
    ctx.moveTo(PAD.left, Math.round(y(0)) + 0.5);
    ctx.lineTo(this.width - PAD.right, Math.round(y(0)) + 0.5);
    ctx.stroke();
  }

  /** Times of the vertical grid lines: whole steps back from t1, as many as the width holds
   * (at least one, so that even a short span says how long it is). */
  ticks(view) {
    const span = view.t1 - view.t0;
    const fits = Math.max(1, Math.floor((this.width - PAD.left - PAD.right) / TICK_SPACE) - 1);
    const step = TIME_STEPS.find((s) => span / s <= fits) ?? TIME_STEPS[TIME_STEPS.length - 1];
    const times = [];
    for (let t = view.t1 - step; t >= view.t0 - 0.001; t -= step) times.push(t);
    return times;
  }

  labels(ctx, view, y, top) {
    ctx.font = "10px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillStyle = view.colors.text;
    ctx.fillText(this.format(top), PAD.left + 3, Math.max(y(top) + 2, PAD.top));
    this.timeLabels(ctx, view);
  }

  /** "now" under the right edge, "-30s", "-2m" … under the grid lines. */
  timeLabels(ctx, view) {
    const plotWidth = this.width - PAD.left - PAD.right;
    const x = (t) => PAD.left + ((t - view.t0) / (view.t1 - view.t0)) * plotWidth;
    const baseline = this.height - 1;
    ctx.textBaseline = "bottom";
    ctx.textAlign = "right";
    ctx.fillText("now", this.width - PAD.right, baseline);
    ctx.textAlign = "center";
    for (const t of this.ticks(view)) {
      const label = ago(view.t1 - t);
      const half = ctx.measureText(label).width / 2;
      ctx.fillText(label, Math.max(PAD.left + half, x(t)), baseline);
    }
    ctx.textAlign = "left";
  }

  line(ctx, layer, x, y) {
    const runs = splitRuns(layer.points);
    ctx.lineJoin = "round";
    if (layer.kind === "area") {
      ctx.fillStyle = withAlpha(layer.color, 0.18);
      for (const run of runs) {
        ctx.beginPath();
        ctx.moveTo(x(run[0][0]), y(0));
        for (const [t, v] of run) ctx.lineTo(x(t), y(v));
        ctx.lineTo(x(run[run.length - 1][0]), y(0));
        ctx.fill();
      }
    }
    ctx.strokeStyle = layer.color;
    ctx.lineWidth = 1.5;
    for (const run of runs) {
      ctx.beginPath();
      run.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      if (run.length === 1) ctx.lineTo(x(run[0][0]) + 1, y(run[0][1])); // a lone point shows
      ctx.stroke();
    }
  }

  band(ctx, layer, x, y) {
    ctx.fillStyle = withAlpha(layer.color, 0.55);
    ctx.strokeStyle = layer.color;
    ctx.lineWidth = 1;
    for (const run of splitRuns(layer.points)) {
      ctx.beginPath();
      run.forEach(([t, , high], i) => (i ? ctx.lineTo(x(t), y(high)) : ctx.moveTo(x(t), y(high))));
      for (let i = run.length - 1; i >= 0; i--) ctx.lineTo(x(run[i][0]), y(run[i][1]));
      ctx.closePath();
      ctx.fill();
      ctx.beginPath();
      run.forEach(([t, , high], i) => (i ? ctx.lineTo(x(t), y(high)) : ctx.moveTo(x(t), y(high))));
      ctx.stroke();
    }
  }

  cursor(ctx, view, px) {
    ctx.strokeStyle = view.colors.cursor;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, PAD.top);
    ctx.lineTo(Math.round(px) + 0.5, this.height - PAD.bottom);
    ctx.stroke();
  }
}

/** A time back from now, short: "-30s", "-2m", "-1m30s". */
function ago(seconds) {
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  const rest = whole % 60;
  if (!minutes) return `-${rest}s`;
  return rest ? `-${minutes}m${rest}s` : `-${minutes}m`;
}

/** Splits points into runs without holes (null values, or seconds missing from the data). */
function splitRuns(points) {
  const runs = [];
  let run = [];
  let last = null;
  for (const point of points) {
    const hole = point[point.length - 1] == null;
    if (hole || (last != null && point[0] - last > GAP_SECONDS)) {
      if (run.length) runs.push(run);
      run = [];
    }
    if (!hole) run.push(point);
    last = point[0];
  }
  if (run.length) runs.push(run);
  return runs;
}

function maxValue(layers) {
  let most = 0;
  for (const layer of layers) {
    for (const point of layer.points) {
      const v = point[point.length - 1];
      if (v != null && v > most) most = v;
    }
  }
  return most;
}

/** Rounds an axis top up to a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × a power of ten):
 * the labels read well, and the line still fills most of the height. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/** "#rrggbb" or "rgb(r, g, b)" with an alpha; other colour forms are returned as they are. */
function withAlpha(color, alpha) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color.trim());
  if (hex) {
    const n = parseInt(hex[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(color.trim());
  return rgb ? `rgba(${rgb[1]}, ${rgb[2]}, ${rgb[3]}, ${alpha})` : color;
}
