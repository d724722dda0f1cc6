// The live request stream: newest row at the bottom, following the tail. Scrolled up, the
// table holds still (at 200 records a second the rows being read would be gone in seconds)
// and counts what came, until the operator scrolls back down or presses p twice. Records are
// kept (up to KEPT) so a new filter or a resume can refill the table; the table holds at most
// SHOWN rows. Arriving records are buffered and drawn once a frame in one fragment.

import * as fmt from "./format.js";
import { SLOW_MS, parseFilter } from "./filter.js";
import { atBottom, h, setText } from "./dom.js";
import { schedule } from "./frame.js";

const KEPT = 2000;
const SHOWN = 500;
const NO_REQUESTS = "no requests yet: each one the app serves shows here (its address is above)";

export class RequestStream {
  /** onInspect(record) when a row is clicked. */
  constructor(root, { onInspect }) {
    this.root = root;
    this.table = root.querySelector("#requests");
    this.body = this.table.tBodies[0];
    this.scroller = root.querySelector(".scroll");
    this.status = root.querySelector("[data-field=requests-status]");
    this.emptyHint = root.querySelector("[data-field=requests-empty]");
    this.pauseButton = root.querySelector('[data-action="pause"]');
    this.kept = [];
    this.fresh = []; // arrived, not drawn yet
    this.shown = new Map(); // record id → record, for the rows in the table
    this.filter = parseFilter("");
    this.filterText = "";
    this.paused = false;
    this.missed = 0; // records that came while paused
    this.held = 0; // records that came while scrolled up
    // whether the view is at the tail, as the operator's last scroll left it: a pane that
    // shrinks (a banner appears) leaves the tail out of view but must keep following it
    this.following = true;
    const columns = ["time", "pid", "method", "path", "status", "duration", "bytes"];
    this.template = h("tr", {}, ...columns.map((name) => h("td", { className: name })));
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (row && this.shown.has(row.dataset.id)) onInspect(this.shown.get(row.dataset.id));
    });
    this.status.addEventListener("click", () => {
      if (this.held) this.refill(); // "… new below": a click goes back to the tail
    });
    this.scroller.addEventListener("scroll", () => {
      this.following = atBottom(this.scroller);
      if (this.following && this.held) this.refill(); // back at the tail: catch up
    });
  }

  add(records) {
    // a batch sent again (after reconnecting) must not show twice
    records = records.filter((record) => !this.shown.has(record.id));
    records.sort((a, b) => a.start - b.start);
    this.kept.push(...records);
    // trimmed in bulk, not a record at a time
    if (this.kept.length > KEPT * 1.25) this.kept.splice(0, this.kept.length - KEPT);
    if (this.paused) {
      this.missed += records.length;
      this.drawStatus();
      return;
    }
    this.fresh.push(...records);
    if (this.fresh.length > SHOWN) this.fresh.splice(0, this.fresh.length - SHOWN);
    schedule("requests", () => this.drawFresh());
  }

  drawFresh() {
    if (this.paused) return; // drawn in the frame after a pause: the resume shows them
    const records = this.fresh.filter(this.filter);
    this.fresh = [];
    if (!records.length) return;
    if (!this.following) {
      this.held += records.length; // they are in the kept records for the catch-up
      this.drawStatus();
      return;
    }
    const rows = document.createDocumentFragment();
    for (const record of records) rows.append(this.row(record));
    this.body.append(rows);
    this.trim();
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.drawStatus();
  }

  /** Drops the oldest rows beyond SHOWN. */
  trim() {
    let extra = this.body.rows.length - SHOWN;
    while (extra-- > 0) {
      const row = this.body.firstElementChild;
      this.shown.delete(row.dataset.id);
      row.remove();
    }
  }

  row(record) {
    const row = this.template.cloneNode(true);
    const cells = row.cells;
    row.dataset.id = record.id;
    cells[0].textContent = fmt.clock(record.start);
    cells[1].textContent = record.pid;
    cells[2].textContent = record.method || (record.type === "websocket" ? "WS" : "");
    cells[3].textContent = fmt.target(record);
    cells[3].title = cells[3].textContent; // the whole path when the cell cuts it
    cells[4].textContent = record.status;
    cells[4].className = "status " + fmt.statusClass(record.status);
    cells[5].textContent = fmt.millis(record.duration);
    if (record.duration >= SLOW_MS) cells[5].classList.add("slow");
    cells[6].textContent = fmt.size(record.bytes_out);
    if (record.trace) row.classList.add("traced");
    if (record.status >= 500) row.classList.add("error");
    this.shown.set(record.id, record);
    return row;
  }

  /** Refills the table from the kept records: after a filter change or a resume. While
   * paused only a new filter does (a scroll or a click must not end the pause), and what
   * came meanwhile is then shown: the operator asked for a new view. */
  refill({ filterChanged = false } = {}) {
    if (this.paused && !filterChanged) return;
    if (this.paused) this.missed = 0;
    this.fresh = [];
    this.held = 0;
    this.following = true;
    this.shown.clear();
    const records = this.kept.filter(this.filter).slice(-SHOWN);
    this.body.replaceChildren(...records.map((record) => this.row(record)));
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.drawStatus();
  }

  /** The pids of the kept records (the inspector can still open those). */
  keptPids() {
    return new Set(this.kept.map((record) => record.pid));
  }

  setFilter(text) {
    this.filter = parseFilter(text);
    this.filterText = text.trim();
    this.root.classList.toggle("filtered", !this.filter.empty);
    // own key: new records must not replace it
    schedule("requests-refill", () => this.refill({ filterChanged: true }));
  }

  togglePause() {
    this.paused = !this.paused;
    this.missed = 0;
    // what came meanwhile, held or not drawn yet, is in the kept records: a resume refills
    this.held = 0;
    this.fresh = [];
    if (!this.paused) this.refill();
    this.drawStatus();
  }

  drawStatus() {
    const paused = this.paused;
    this.root.classList.toggle("paused", paused);
    const rows = this.body.rows.length;
    let text = `live · ${rows} shown`;
    if (paused) text = `paused · ${this.missed} new`;
    else if (this.held) text = `scrolled up · ${this.held} new below ↓`;
    setText(this.status, text);
    this.root.classList.toggle("held", this.held > 0 && !paused);
    setText(this.pauseButton.querySelector("span"), paused ? "resume" : "pause");
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.drawEmpty(rows === 0);
  }

  /** An empty table says why: nothing came yet, or the filter hides what came. */
  drawEmpty(empty) {
    this.table.classList.toggle("empty", empty);
    if (!empty) return;
    const hidden = this.kept.length && !this.filter.empty;
    setText(this.emptyHint, hidden ? `no request matches “${this.filterText}”` : NO_REQUESTS);
  }

  clear() {
    this.kept = [];
    this.fresh = [];
    this.held = 0;
    this.following = true;
    this.shown.clear();
    this.body.replaceChildren();
    this.drawStatus();
  }
}
