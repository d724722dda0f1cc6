// The red failure banner (#failure): the latest generation that did not start, with file:line
// and its traceback, shown until a later reload or restart succeeds. The snapshot's
// server.failure is the truth; a `failed` event shows it a moment sooner, and a `succeeded`
// event hides it as soon as it comes.

import { folded, h } from "./dom.js";

export class FailureBanner {
  constructor(root) {
    this.root = root;
    this.shownKey = null;
  }

  /** From every snapshot: server.failure (or null) and server.state. */
  fromServer(server) {
    this.show(server.failure, server.state === "failed");
  }

  /** From restart and reload events; server: the latest snapshot's. A generation that
   * fails before any served (the first boot) leaves nothing serving: the server is then
   * still "starting" (or already "failed"). */
  fromEvent(event, server) {
    const nothingServes = !server || server.state === "starting" || server.state === "failed";
    if (event.phase === "failed") this.show(event, nothingServes);
    else if (event.phase === "succeeded") this.show(null, false);
  }

  show(failure, nothingServes) {
    const key = failure && JSON.stringify([failure.generation, failure.message, nothingServes]);
    if (key === this.shownKey) return; // unchanged: keep the traceback open if it was opened
    this.shownKey = key;
    this.root.hidden = !failure;
    if (!failure) return;
    const line = failure.line != null ? `:${failure.line}` : "";
    const where = failure.file ? failure.file + line : "";
    const consequence = nothingServes
      ? "no generation serves: every request gets the error page until a change fixes it"
      : "the previous generation keeps serving";
    this.root.replaceChildren(
      h("div", { className: "headline" },
        h("b", {}, `generation ${failure.generation} failed`),
        where ? h("code", {}, where) : null,
        h("span", {}, failure.message || ""),
        h("em", {}, `— ${consequence}`)),
      failure.details ? folded("traceback", failure.details) : null,
    );
  }
}
