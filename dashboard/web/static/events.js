// The events & logs pane (#events): worker state changes, restart and reload phases (a
// failure's traceback folds open), scale and stop events, the server's and workers' log
// lines, and the dashboard's own notes (connection, refused commands). Newest at the bottom,
// following the tail unless scrolled up, as a log reads.

import { atBottom, folded, h, setText } from "./dom.js";
import { clock } from "./format.js";
import { schedule } from "./frame.js";

const KEPT = 500;
const LOG_LEVELS = { warning: "warn", error: "bad", critical: "bad" };

export class EventsPane {
  constructor(list) {
    this.list = list;
    this.scroller = list.closest(".scroll");
    this.fresh = [];
    this.following = true; // at the tail as the last scroll left it (see requests.js)
    this.scroller.addEventListener("scroll", () => {
      this.following = atBottom(this.scroller);
    });
  }

  /** A control-API event. */
  add(event) {
    const item = describe(event);
    if (event.t) setText(item.querySelector("time"), clock(event.t, false)); // when it happened
    this.push(item);
  }

  /** A line of the dashboard's own: tone is "", "ok", "warn" or "bad". */
  note(text, tone = "") {
    this.push(entry("note", tone, [text]));
  }

  push(item) {
    this.fresh.push(item);
    if (this.fresh.length > KEPT) this.fresh.splice(0, this.fresh.length - KEPT);
    schedule("events", () => this.draw());
  }

  draw() {
    this.list.append(...this.fresh);
    this.fresh = [];
    let extra = this.list.children.length - KEPT;
    while (extra-- > 0) this.list.firstElementChild.remove();
    if (this.following) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

/** One <li>: a time (now; an event's own `t` replaces it), a kind tag, then the parts. */
function entry(kind, tone, parts) {
  const now = Date.now() / 1000;
  return h(
    "li",
    { className: `event ${kind} ${tone}`.trim(), dataset: { kind } },
    h("time", {}, clock(now, false)),
    h("span", { className: "kind" }, kind),
    h("span", { className: "text" }, ...parts),
  );
}

function describe(event) {
  const kind = event.kind;
  switch (kind) {
    case "worker": {
      const parts = [
        `worker ${event.pid} (slot ${event.slot}, gen ${event.generation}) `,
        h("b", { className: `state-${event.state}` }, event.state),
      ];
      if (event.reason) parts.push(h("span", { className: "muted" }, `: ${event.reason}`));
      return entry(kind, "", parts);
    }
    case "reload":
    case "restart":
      return phase(event);
    case "log":
      return logLine(event);
    case "scale":
      return entry(kind, "", [`target ${event.target} workers`]);
    case "ready":
      return entry(kind, "ok", [`serving: generation ${event.generation} ready`]);
    case "crash_loop":
      return entry(kind, "bad", [`crash loop: ${event.message}`]);
    case "stopping":
      return entry(kind, "warn", [
        event.fast ? "stopping now (fast)" : "stopping: finishing in-flight requests",
      ]);
    default:
      return entry(String(kind), "muted", [JSON.stringify(event)]);
  }
}

function phase(event) {
  const parts = [`${event.phase}: generation ${event.generation}`];
  if (event.changed?.length) {
    parts.push(h("span", { className: "muted" }, " — " + event.changed.join(", ")));
  }
  if (event.seconds != null) {
    parts.push(h("span", { className: "ok" }, ` ready in ${Math.round(event.seconds * 1000)} ms`));
  }
  if (event.phase !== "failed") {
    return entry(event.kind, event.phase === "succeeded" ? "ok" : "", parts);
  }
  const where = event.file ? ` (${event.file}${event.line != null ? `:${event.line}` : ""})` : "";
  parts.push(`${where}: ${event.message || ""}`);
  if (event.details) parts.push(folded("traceback", event.details));
  return entry(event.kind, "bad", parts);
}

function logLine(event) {
  const source = event.source === "worker" ? String(event.pid) : "devserve";
  const parts = [h("span", { className: "source" }, source), " ", event.line];
  if (event.details) parts.push(folded(lastLine(event.details), event.details)); // an exception
  return entry("log", LOG_LEVELS[event.level] || "", parts);
}

/** A traceback's last line names the exception: the summary it folds under. */
function lastLine(text) {
  const lines = text.trimEnd().split("\n");
  return lines[lines.length - 1] || "traceback";
}
