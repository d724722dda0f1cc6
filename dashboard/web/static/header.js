// The header: which server this is (app, URLs, mode, generation, uptime, state) and the
// summary numbers of #summary, drawn from the latest snapshot. Each number has its own fixed
// cell in index.html, so a changing value never moves its neighbours. While the stream is
// down the state badge says what it last saw and how long ago, greyed: a green "running"
// beside "disconnected" would claim what nobody knows any more.

import * as fmt from "./format.js";
import { h, setClass, setText } from "./dom.js";

const STATE_CLASSES = {
  running: "ok",
  starting: "warn",
  restarting: "warn",
  stopping: "warn",
  failed: "bad",
};

export class Header {
  constructor(root) {
    this.root = root;
    this.fields = byData(root, "field");
    this.metrics = byData(root, "metric");
    this.urls = "";
    this.shownState = ""; // the state badge's text, for "last seen …" once the stream is down
    this.staleTimer = null;
  }

  draw(snapshot) {
    if (!snapshot) return;
    this.fresh();
    const { server, totals } = snapshot;
    this.drawServer(server);
    this.drawSummary(server, totals);
  }

  drawServer(server) {
    const f = this.fields;
    setText(f.app, server.app);
    this.drawUrls(server.urls || []);
    setText(f.mode, `${server.mode} · reload ${server.reload ? "on" : "off"}`);
    setText(f.generation, `gen ${server.generation}`);
    setText(f.uptime, `up ${fmt.uptime(server.uptime)}`);
    this.shownState = server.crash_loop ? "crash loop" : server.state;
    setText(f.state, this.shownState);
    f.state.title = "devserve's state, live";
    f.state.className = "badge " + (server.crash_loop ? "bad" : STATE_CLASSES[server.state] || "");
    f.tracing.hidden = !server.tracing;
    f.metrics.hidden = server.metrics !== false;
    document.title = `${server.app} · devserve`;
  }

  /** The stream went down at some point after `seenAt` (ms since the epoch, when the last
   * snapshot came): grey the header's state and count the seconds since, until draw(). */
  stale(seenAt) {
    if (!this.shownState) return; // nothing was ever shown: nothing to be stale
    this.root.classList.add("stale");
    const state = this.fields.state;
    state.className = "badge stale";
    state.title = `devserve's state at ${fmt.clock(seenAt / 1000, false)}, before the stream broke`;
    clearInterval(this.staleTimer);
    const last = `last seen ${this.shownState}`;
    const tick = () => setText(state, `${last} ${fmt.ago(Date.now() - seenAt)}`);
    tick();
    this.staleTimer = setInterval(tick, 1000);
  }

  fresh() {
    if (this.staleTimer == null) return;
    clearInterval(this.staleTimer);
    this.staleTimer = null;
    this.root.classList.remove("stale");
  }

  drawUrls(urls) {
    const key = urls.join(" ");
    if (key === this.urls) return;
    this.urls = key;
    const links = urls.map((url) =>
      url.startsWith("http")
        ? h("a", { href: url, target: "_blank", rel: "noopener" }, url)
        : h("span", {}, url),
    );
    this.fields.urls.replaceChildren(...links);
  }

  drawSummary(server, totals) {
    const m = this.metrics;
    const second = fmt.window_(totals, "1s");
    const recent = fmt.window_(totals, "10s");
    setText(m.rps, fmt.count(second.rps));
    setText(m.p50, fmt.millis(recent.p50));
    setText(m.p99, fmt.millis(recent.p99));
    const errors = recent.error_rate;
    setText(m.errors, fmt.percent(errors == null ? null : errors * 100, 1));
    setClass(m.errors.parentNode, "bad", Boolean(errors));
    const ready = totals.workers_ready;
    setText(m.workers, `${ready}/${server.workers_target}`);
    setClass(m.workers.parentNode, "warn", ready < server.workers_target);
    setText(m.rss, fmt.memory(totals.rss));
    setText(m.cpu, fmt.percent(totals.cpu_percent));
    setText(m.in_flight, String(totals.in_flight));
    setText(m.connections, String(totals.connections));
    setText(m.requests, fmt.count(totals.requests));
  }
}

/** The elements under `root` with a data-NAME attribute, by that attribute's value. */
function byData(root, name) {
  const found = {};
  for (const node of root.querySelectorAll(`[data-${name}]`)) found[node.dataset[name]] = node;
  return found;
}
