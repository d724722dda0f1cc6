// The request inspector (#inspector, a <dialog>): one request record as the terminal panel's
// inspector shows it (dashboard/tui/screens.py): the summary line, the scope fields, the
// headers as the server sent them (already redacted), the exception when the app raised and,
// when traced, the ASGI messages.

import * as fmt from "./format.js";
import { TRACE_NEXT } from "./controls.js";
import { h } from "./dom.js";

const SCOPE_FIELDS = ["type", "protocol", "scheme", "method", "path", "query", "client"];

export class Inspector {
  constructor(dialog) {
    this.dialog = dialog;
    this.content = dialog.querySelector("[data-field=inspector-content]");
    // a click on the backdrop (outside the box) closes it, as Esc does
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
  }

  /** generation: the worker's generation when known (records do not carry it). */
  open(record, generation, { readOnly }) {
    this.content.replaceChildren(
      title(record, generation),
      h("p", { className: "muted" }, `at ${fmt.clock(record.start)} · id ${record.id}`),
      ...exception(record),
      h("h3", {}, "scope"),
      fieldTable(scopeRows(record)),
      h("h3", {}, "headers"),
      fieldTable(record.headers || [], "headers"),
      h("h3", {}, "ASGI messages"),
      record.trace ? timeline(record.trace) : notTraced(readOnly),
    );
    if (!this.dialog.open) this.dialog.showModal();
  }
}

/** What the app raised, first: it is why a 5xx is opened. Text only (textContent). */
function exception(record) {
  if (!record.exception) return [];
  return [h("h3", {}, "exception"), h("pre", { className: "exception" }, record.exception)];
}

function title(record, generation) {
  const where = generation == null ? "" : ` (generation ${generation})`;
  return h(
    "h2",
    { className: "inspector-title" },
    h("span", { className: "request" }, `${record.method || record.type} ${fmt.target(record)}`),
    " → ",
    h("span", { className: "status " + fmt.statusClass(record.status) }, String(record.status)),
    ` in ${fmt.millis(record.duration)} on worker ${record.pid}${where}`,
  );
}

function scopeRows(record) {
  const value = (field) => (field === "protocol" ? fmt.protocol(record) : record[field]);
  const present = SCOPE_FIELDS.filter((field) => value(field) != null && value(field) !== "");
  const rows = present.map((field) => [field, String(value(field))]);
  rows.push(["worker", `pid ${record.pid}, slot ${record.slot}`]);
  rows.push(["bytes", `in ${fmt.size(record.bytes_in)}, out ${fmt.size(record.bytes_out)}`]);
  return rows;
}

/** Name-value rows (scope fields, headers) as a two-column table. */
function fieldTable(rows, className = "") {
  const trs = rows.map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", {}, value)));
  return h("table", { className: "fields " + className }, h("tbody", {}, ...trs));
}

/** One row per ASGI message: time, direction, type and its other fields. */
function timeline(trace) {
  return h("div", { className: "timeline" }, ...trace.map(timelineRow));
}

function timelineRow(event) {
  const incoming = event.call === "receive";
  const fields = (event.keys || []).map((key) => `${key}=${fmt.messageValue(key, event[key])}`);
  const row = h(
    "div",
    { className: "timeline-row " + (incoming ? "receive" : "send") },
    h("span", { className: "t" }, `+${Number(event.t).toFixed(3)} ms`),
    h("span", { className: "call" }, `${event.call} ${incoming ? "→" : "←"}`),
    h("span", { className: "type" }, event.type),
    h("span", { className: "keys" }, fields.join("  ")),
  );
  if (Array.isArray(event.headers) && event.headers.length) {
    row.append(h("details", {}, h("summary", {}, "headers"), fieldTable(event.headers, "headers")));
  }
  return row;
}

function notTraced(readOnly) {
  const press = ` Press t (trace next ${TRACE_NEXT}) and send the request again to see them.`;
  const how = readOnly ? "" : press;
  const what = "Not traced: trace records the ASGI messages of the next requests.";
  return h("p", { className: "hint" }, what + how);
}
