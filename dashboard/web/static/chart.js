// One time-series chart on a <canvas>, drawn by hand (no library, works offline). It knows
// nothing of devserve: it draws layers of [t, value] points between t0 and t1, and a cursor.
// The time axis is labelled relative to t1 ("-2m" … "now"), at a step that suits the span and
// the width. The value axis is linear from 0, or logarithmic (for latencies, whose p50 and p99
// are often a thousand times apart: on a linear axis the p50 would lie flat on the floor).
// The backing store is sized in device pixels so lines stay crisp on HiDPI screens.

const GAP_SECONDS = 2.5; // points further apart than this are not joined: the data has a hole
const PAD = { top: 4, right: 2, bottom: 14, left: 2 }; // the bottom holds the time labels
const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600]; // seconds between time grid lines
const TICK_SPACE = 56; // CSS pixels a time label needs, its gap included
const LOG_DECADES = 4; // a log axis spans at most this many powers of ten below its top

export class Chart {
  /** format(value) writes the y-axis label; unit: the axis top is a round number of these
   * (2 ** 20 for memory, so that it reads "96M", not "95M"); log: a logarithmic value axis,
   * a grid line and a label at each power of ten. */
  constructor(canvas, { format, unit = 1, log = false }) {
    this.canvas = canvas;
    this.format = format;
    this.unit = unit;
    this.log = log;
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
    const plotWidth = this.width - PAD.left - PAD.right;
    const x = (t) => PAD.left + ((t - view.t0) / (view.t1 - view.t0)) * plotWidth;
    const axis = this.log ? this.logAxis(view.layers) : this.linearAxis(view.layers);
    const bottom = this.height - PAD.bottom;
    const y = (v) => bottom - axis.share(v) * (bottom - PAD.top);
    this.grid(ctx, view, x, y, axis.lines);
    for (const layer of view.layers) {
      if (layer.kind === "band") this.band(ctx, layer, x, y);
      else this.line(ctx, layer, x, y);
    }
    if (view.cursor != null) this.cursor(ctx, view, x(view.cursor));
    this.labels(ctx, view, y, axis.labels);
  }

  /** From 0 to a round top: grid lines at half and at the top, the top labelled. */
  linearAxis(layers) {
    const top = niceMax(maxValue(layers) / this.unit) * this.unit;
    return { share: (v) => v / top, lines: [top / 2, top], labels: [top] };
  }

  /** From a power of ten to a power of ten (at most LOG_DECADES apart), each one labelled;
   * a value under the floor lies on the floor. */
  logAxis(layers) {
    const most = maxValue(layers);
    const high = most > 0 ? Math.ceil(Math.log10(most)) : 0;
    const least = minPositive(layers);
    const low = Math.max(high - LOG_DECADES, least ? Math.floor(Math.log10(least)) : high - 1);
    const floor = Math.min(low, high - 1); // at least one decade
    const share = (v) => (Math.log10(Math.max(v, 10 ** floor)) - floor) / (high - floor);
    const decades = [];
    for (let power = floor + 1; power <= high; power++) decades.push(10 ** power);
    return { share, lines: decades, labels: decades };
  }

  /** The time (unix seconds) under a CSS-pixel x offset, for hover read-outs. */
  timeAt(offsetX) {
    if (!this.view) return null;
    const { t0, t1 } = this.view;
    const share = (offsetX - PAD.left) / (this.width - PAD.left - PAD.right);
    return t0 + Math.min(1, Math.max(0, share)) * (t1 - t0);
  }

  grid(ctx, view, x, y, values) {
    ctx.strokeStyle = view.colors.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const v of values) {
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

  /** Each value's label just under its grid line, at the left. */
  labels(ctx, view, y, values) {
    ctx.font = "10px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillStyle = view.colors.text;
    for (const v of values) {
      ctx.fillText(this.format(v), PAD.left + 3, Math.max(y(v) + 2, PAD.top));
    }
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

/** The smallest value above 0 in the layers, or null when there is none. */
function minPositive(layers) {
  let least = null;
  for (const layer of layers) {
    for (const point of layer.points) {
      const v = point[point.length - 1];
      if (v != null && v > 0 && (least == null || v < least)) least = v;
    }
  }
  return least;
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
