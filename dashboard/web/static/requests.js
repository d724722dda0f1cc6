// The live request stream: newest row at the bottom, following the tail unless the operator
// scrolled up. Records are kept (up to KEPT) so a new filter or a resume can refill the table;
// the table itself holds at most SHOWN rows. Arriving records are buffered and drawn once a
// frame in one fragment, since a busy server sends about 200 a second.

import * as fmt from "./format.js";
import { SLOW_MS, parseFilter } from "./filter.js";
import { atBottom, h, setText } from "./dom.js";
import { schedule } from "./frame.js";

const KEPT = 2000;
const SHOWN = 500;

export class RequestStream {
  /** onInspect(record) when a row is clicked. */
  constructor(root, { onInspect }) {
    this.root = root;
    this.table = root.querySelector("#requests");
    this.body = this.table.tBodies[0];
    this.scroller = root.querySelector(".scroll");
    this.status = root.querySelector("[data-field=requests-status]");
    this.pauseButton = root.querySelector('[data-action="pause"]');
    this.kept = [];
    this.fresh = []; // arrived, not drawn yet
    this.shown = new Map(); // record id → record, for the rows in the table
    this.filter = parseFilter("");
    this.paused = false;
    this.missed = 0; // records that came while paused
    this.template = h("tr", {}, ...["time", "pid", "method", "path", "status", "duration", "bytes"].map((name) => h("td", { className: name })));
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (row && this.shown.has(row.dataset.id)) onInspect(this.shown.get(row.dataset.id));
    });
  }

  add(records) {
    records = records.filter((record) => !this.shown.has(record.id)); // a resent batch after reconnecting
    records.sort((a, b) => a.start - b.start);
    this.kept.push(...records);
    if (this.kept.length > KEPT * 1.25) this.kept.splice(0, this.kept.length - KEPT); // trim in bulk
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
    const records = this.fresh.filter(this.filter);
    this.fresh = [];
    if (!records.length) return;
    const follow = atBottom(this.scroller);
    const rows = document.createDocumentFragment();
    for (const record of records) rows.append(this.row(record));
    this.body.append(rows);
    this.trim();
    if (follow) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.drawStatus();
  }

  /** Drops the oldest rows beyond SHOWN (scroll anchoring keeps a scrolled-up view still). */
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

  /** Refills the table from the kept records: after a filter change or a resume. */
  refill() {
    this.fresh = [];
    this.shown.clear();
    const records = this.kept.filter(this.filter).slice(-SHOWN);
    this.body.replaceChildren(...records.map((record) => this.row(record)));
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.drawStatus();
  }

  setFilter(text) {
    this.filter = parseFilter(text);
    this.root.classList.toggle("filtered", !this.filter.empty);
    schedule("requests", () => this.refill());
  }

  togglePause() {
    this.paused = !this.paused;
    this.missed = 0;
    if (!this.paused) this.refill(); // what came meanwhile is in the kept records
    this.drawStatus();
  }

  drawStatus() {
    const paused = this.paused;
    this.root.classList.toggle("paused", paused);
    setText(this.status, paused ? `paused · ${this.missed} new` : `live · ${this.body.rows.length} shown`);
    setText(this.pauseButton.querySelector("span"), paused ? "resume" : "pause");
    this.pauseButton.setAttribute("aria-pressed", String(paused));
  }

  clear() {
    this.kept = [];
    this.fresh = [];
    this.shown.clear();
    this.body.replaceChildren();
    this.drawStatus();
  }
}
