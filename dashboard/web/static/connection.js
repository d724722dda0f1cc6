// Shows the state of the connection: the #connection badge in the header (its data-state is
// connecting, connected, disconnected or unauthorized) and, when the stream is down, the
// #notice bar that says what happens next, so stale numbers are never mistaken for live ones.

import { h } from "./dom.js";

const BADGE_TEXT = {
  connecting: "connecting…",
  connected: "live",
  disconnected: "disconnected — reconnecting…",
  unauthorized: "session ended",
};

export class ConnectionBadge {
  constructor(badge, notice) {
    this.badge = badge;
    this.notice = notice;
    this.countdown = null;
  }

  /** detail.retryAt (ms since the epoch) when the next try is due. */
  show(state, detail = {}) {
    this.badge.dataset.state = state;
    this.badge.textContent = BADGE_TEXT[state] || state;
    clearInterval(this.countdown);
    this.notice.dataset.state = state;
    this.notice.hidden = state === "connected" || state === "connecting";
    if (state === "disconnected") this.retrying(detail);
    if (state === "unauthorized") this.unauthorized();
  }

  retrying({ retryAt, restarting }) {
    const text = h("span");
    const what = restarting
      ? "devserve stopped or is restarting — reconnecting… "
      : "disconnected — reconnecting… ";
    const stale = h("span", { className: "muted" }, " The numbers below are from before.");
    this.notice.replaceChildren(h("b", {}, what), text, stale);
    const tick = () => {
      const seconds = Math.max(0, (retryAt - Date.now()) / 1000);
      text.textContent = seconds > 0.05 ? `next try in ${seconds.toFixed(1)} s.` : "trying now.";
    };
    tick();
    this.countdown = setInterval(tick, 100);
  }

  unauthorized() {
    this.notice.replaceChildren(
      h("b", {}, "This session has ended"),
      " (signed out, 12 hours old, or devserve has a new token). Open the dashboard link " +
        "devserve showed (in its terminal or panel; `devserve ctl status` shows it too), " +
        "or paste the token: ",
      h("form", { method: "get", action: "/" },
        h("input", {
          name: "token",
          type: "password",
          autocomplete: "off",
          placeholder: "token",
          required: true,
        }),
        h("button", { type: "submit" }, "open")),
    );
  }
}
