// The dashboard page: keeps what the stream told it (the latest snapshot, 15 minutes of
// history, each worker's generation) and hands it to the panes, which draw it in the next
// animation frame. The same panes in the same places as the terminal panel (dashboard/tui).

import { FailureBanner } from "./banner.js";
import { ChartsPane } from "./charts.js";
import { ConnectionBadge } from "./connection.js";
import { Controls } from "./controls.js";
import { EventsPane } from "./events.js";
import { schedule } from "./frame.js";
import { Header } from "./header.js";
import { Inspector } from "./inspector.js";
import { RequestStream } from "./requests.js";
import { describeResult } from "./results.js";
import { pageKey, signOut } from "./session.js";
import { Connection } from "./stream.js";
import { toast } from "./toast.js";
import { WorkersTable } from "./workers.js";

const HISTORY_SECONDS = 15 * 60; // as much as the server keeps

const state = {
  snapshot: null,
  seenAt: 0, // when the latest snapshot came (ms since the epoch): "last seen … ago"
  history: [],
  // pid → generation: records do not carry it, the inspector shows it; rebuilt with every
  // snapshot for its workers and the kept records' pids, so it does not grow with each spawn
  generations: new Map(),
  readOnly: false,
  lastEventAt: 0, // `t` of the newest event shown: the replay after a reconnect skips the rest
  greet: false, // this connection is not greeted yet: done once the replay is over
};

const byId = (id) => document.getElementById(id);
const header = new Header(byId("top"));
const banner = new FailureBanner(byId("failure"));
const charts = new ChartsPane(byId("charts-pane"));
const events = new EventsPane(byId("events"));
const inspector = new Inspector(byId("inspector"));
const requests = new RequestStream(byId("requests-pane"), {
  onInspect: (record) =>
    inspector.open(record, state.generations.get(record.pid), { readOnly: state.readOnly }),
});
const badge = new ConnectionBadge(byId("connection"), byId("notice"));
const connection = new Connection({
  onMessage: receive,
  onState: connectionChanged,
  onBad: (text) => events.note(text, "warn"),
});
const controls = new Controls({
  send,
  view: {
    pause: () => requests.togglePause(),
    focusFilter: () => byId("filter").focus(),
    clearFilter,
    selectedWorker: () => workers.selected,
    readOnly: () => state.readOnly,
    hint: (title, text) => {
      toast(byId("toasts"), title, text, "warn"); // the events pane may be out of view
      events.note(text, "warn");
    },
  },
});
const workers = new WorkersTable(byId("workers"), { onKill: (pid) => controls.kill(pid) });

byId("filter").addEventListener("input", (event) => requests.setFilter(event.target.value));
byId("sign-out").addEventListener("click", () => signOut());

function receive(message) {
  // the replayed events come right after the first snapshot: whatever comes next that is not
  // one of them (a record, a live event, the second snapshot) means the replay is over
  if (state.greet && state.snapshot && !message.recent) greet();
  switch (message.type) {
    case "hello":
      setReadOnly(Boolean(message.read_only));
      break;
    case "snapshot":
      applySnapshot(message.snapshot);
      break;
    case "requests":
      requests.add(message.requests || []);
      break;
    case "event":
      applyEvent(message.event, message.recent === true);
      break;
    case "error": // a refusal whose command is not ours (or no longer waited for)
      events.note(message.error || "error", "bad");
      break;
    default: // a message type this page does not know: ignored, as the API asks
  }
}

function applySnapshot(snapshot) {
  state.snapshot = snapshot;
  state.seenAt = Date.now();
  appendHistory(snapshot.history || []);
  keepGenerations(snapshot.workers || []);
  schedule("snapshot", () => {
    // a reconnect cleared it before this frame came, or the stream broke: the header
    // shows it stale from then on, and must not turn live again from a snapshot drawn late
    if (!state.snapshot || connection.state !== "connected") return;
    header.draw(state.snapshot);
    workers.draw(state.snapshot.workers || [], state.snapshot.server.state);
    banner.fromServer(state.snapshot.server);
  });
  charts.update(state.history);
}

/** The live workers' generations, and those of the gone workers whose records are still
 * kept (an event told them), for the inspector; every other pid is forgotten. */
function keepGenerations(workers) {
  const before = state.generations;
  state.generations = new Map(workers.map((worker) => [worker.pid, worker.generation]));
  for (const pid of requests.keptPids()) {
    if (!state.generations.has(pid) && before.has(pid)) state.generations.set(pid, before.get(pid));
  }
}

/** Later snapshots carry only the new points: append them, keep 15 minutes. */
function appendHistory(points) {
  const last = state.history.length ? state.history[state.history.length - 1].t : -Infinity;
  for (const point of points) if (point.t > last) state.history.push(point);
  if (!state.history.length) return;
  const oldest = state.history[state.history.length - 1].t - HISTORY_SECONDS;
  const stale = state.history.findIndex((point) => point.t > oldest);
  if (stale > 0) state.history.splice(0, stale);
}

/** recent: an event from before this connection, replayed after the first snapshot. */
function applyEvent(event, recent) {
  if (!event) return;
  const at = event.t ?? 0;
  if (recent && at <= state.lastEventAt) return; // shown before the reconnect
  state.lastEventAt = Math.max(state.lastEventAt, at);
  if (event.kind === "worker") state.generations.set(event.pid, event.generation);
  // a replayed failure may be long fixed: for the past, the snapshot's server.failure decides
  if (!recent && (event.kind === "reload" || event.kind === "restart")) {
    banner.fromEvent(event, state.snapshot?.server);
  }
  events.add(event);
}

/** One line where this connection's own events begin (after the replay of earlier ones). */
function greet() {
  state.greet = false;
  const { pid, app, generation } = state.snapshot.server;
  events.note(`connected to devserve pid ${pid}: ${app}, generation ${generation}`, "muted");
}

/** A fresh connection may be a new devserve process: start over from its first snapshot. */
function reset() {
  state.snapshot = null;
  state.history = [];
  state.generations.clear();
  state.greet = true;
  workers.clear();
  requests.clear(); // the server sends its latest records again
  charts.clear();
}

let lastStatus = null;

function connectionChanged(status, detail) {
  badge.show(status, detail);
  document.body.classList.toggle("offline", status !== "connected");
  for (const button of document.querySelectorAll("button.control")) {
    button.disabled = status !== "connected";
  }
  if (status === "connected") reset();
  else if (status !== "connecting") header.stale(state.seenAt);
  if (status !== lastStatus) noteConnection(status);
  lastStatus = status;
}

function noteConnection(status) {
  if (status === "disconnected") events.note("disconnected from devserve: reconnecting…", "warn");
  if (status === "unauthorized") events.note("this session has ended", "bad");
}

function setReadOnly(readOnly) {
  state.readOnly = readOnly;
  document.body.classList.toggle("read-only", readOnly);
}

async function send(command, args) {
  try {
    const result = await connection.command(command, args);
    toast(byId("toasts"), command, describeResult(command, result));
  } catch (error) {
    // the server's refusals already name their command ("scale: the target would be 0…")
    const prefix = `${command}:`;
    const { message } = error;
    const text = message.startsWith(prefix) ? message.slice(prefix.length).trim() : message;
    toast(byId("toasts"), command, text, "bad");
    events.note(`${command}: ${text}`, "bad");
  }
}

function clearFilter() {
  const field = byId("filter");
  if (field.value) {
    field.value = "";
    requests.setFilter("");
  }
  field.blur();
}

pageKey(); // first: the key leaves the address bar before anything else runs
connection.start();
