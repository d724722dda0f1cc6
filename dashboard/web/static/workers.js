// The workers table: one row per live worker, keyed by pid and updated in place once a
// second. Rows keep the server's order (generation, then slot). A click selects a row (for
// the `k` key); the kill button in a row asks the app to kill that worker.

import * as fmt from "./format.js";
import { h, setText } from "./dom.js";

// what the empty table says: before the first worker, and when the app failed to start
const NONE_YET = "no workers yet";
const NONE_FAILED = "no worker serves: the app failed to start (the banner above says why)";

// the cells of a row, in the order of the table's header (the kill button comes after)
const COLUMNS = [
  ["pid", (w) => String(w.pid)],
  ["slot", (w) => String(w.slot)],
  ["gen", (w) => String(w.generation)],
  ["state", (w) => (w.retiring ? `${w.state} (${w.retiring})` : w.state)],
  ["up", (w) => fmt.uptime(w.uptime)],
  ["reqs", (w) => fmt.count(w.requests)],
  ["rps", (w) => fmt.count(fmt.window_(w, "10s").rps)],
  ["h2", h2Share],
  ["inflight", (w) => String(w.in_flight)],
  ["p50", (w) => fmt.millis(fmt.window_(w, "10s").p50)],
  ["p99", (w) => fmt.millis(fmt.window_(w, "10s").p99)],
  ["rss", (w) => fmt.memory(w.rss)],
  ["cpu", (w) => fmt.percent(w.cpu_percent)],
  ["restarts", (w) => String(w.restarts)],
];

/** The share of the worker's HTTP requests that came over HTTP/2 (a dash before any). */
function h2Share(worker) {
  const { h1 = 0, h2 = 0 } = worker.protocols || {};
  return fmt.share(h2, h1 + h2);
}

export class WorkersTable {
  /** onKill(pid) when a row's kill button is pressed. */
  constructor(table, { onKill }) {
    this.body = table.tBodies[0];
    this.emptyHint = table.parentNode.querySelector(".empty-hint");
    this.rows = new Map(); // pid → <tr>
    this.selected = null;
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-pid]");
      if (!row) return;
      const pid = Number(row.dataset.pid);
      if (event.target.closest('[data-action="kill"]')) onKill(pid);
      else this.select(pid);
    });
  }

  /** serverState: the snapshot's server.state, for what an empty table says. */
  draw(workers, serverState) {
    const live = new Set();
    let previous = null;
    for (const worker of workers) {
      live.add(worker.pid);
      const row = this.rows.get(worker.pid) || this.makeRow(worker.pid);
      this.fill(row, worker);
      // keep the server's order, moving a row only when it is out of place
      const wanted = previous ? previous.nextSibling : this.body.firstChild;
      if (row !== wanted) this.body.insertBefore(row, wanted);
      previous = row;
    }
    for (const [pid, row] of this.rows) {
      if (!live.has(pid)) {
        row.remove();
        this.rows.delete(pid);
      }
    }
    if (this.selected != null && !this.rows.has(this.selected)) this.selected = null;
    this.body.parentNode.classList.toggle("empty", this.rows.size === 0);
    setText(this.emptyHint, serverState === "failed" ? NONE_FAILED : NONE_YET);
  }

  makeRow(pid) {
    const cells = COLUMNS.map(([name]) => h("td", { className: name }));
    const kill = h(
      "button",
      {
        type: "button",
        className: "control kill",
        title: `kill worker ${pid} (it is replaced at once)`,
        dataset: { action: "kill", pid: String(pid) },
      },
      "kill",
    );
    const actions = h("td", { className: "actions" }, kill);
    const row = h("tr", { dataset: { pid: String(pid) } }, ...cells, actions);
    this.rows.set(pid, row);
    return row;
  }

  fill(row, worker) {
    if (row.dataset.state !== worker.state) row.dataset.state = worker.state;
    COLUMNS.forEach(([, value], index) => setText(row.cells[index], value(worker)));
  }

  select(pid) {
    this.selected = this.selected === pid ? null : pid;
    for (const [rowPid, row] of this.rows) {
      row.classList.toggle("selected", rowPid === this.selected);
    }
  }

  clear() {
    this.rows.forEach((row) => row.remove());
    this.rows.clear();
    this.selected = null;
  }
}
