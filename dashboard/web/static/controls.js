// The operator's actions: the buttons (every element with data-action), the kill
// confirmation, the help dialog and the keyboard shortcuts of the terminal panel
// (+ - r R k t / p ? Esc). Commands go out through `send`; what they return is the app's.

// requests of each worker that `t` traces: the terminal panel's number (dashboard/tui/app.py);
// every text of the page that names it takes it from here (nameTraceCount)
export const TRACE_NEXT = 10;

// data-action → the command it sends
const COMMANDS = {
  "scale-up": ["scale", { workers: "+1" }],
  "scale-down": ["scale", { workers: "-1" }],
  restart: ["restart", {}],
  reload: ["reload", {}],
  trace: ["trace", { requests: TRACE_NEXT }],
  "trace-off": ["trace-off", {}],
};

// key → data-action (the same keys as the terminal panel)
const KEYS = {
  "+": "scale-up",
  "=": "scale-up", // + without shift, on most layouts
  "-": "scale-down",
  r: "restart",
  R: "reload",
  t: "trace",
  k: "kill-selected",
  p: "pause",
  "?": "help",
  "/": "filter",
};

export class Controls {
  /** send(command, args) runs a command; view has pause(), focusFilter(), clearFilter(),
   * selectedWorker(), readOnly() and hint(title, text) (says what to do first). */
  constructor({ send, view }) {
    this.send = send;
    this.view = view;
    this.confirmDialog = document.getElementById("confirm");
    this.helpDialog = document.getElementById("help");
    nameTraceCount(document);
    document.addEventListener("click", (event) => this.clicked(event));
    document.addEventListener("keydown", (event) => this.key(event));
  }

  clicked(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled || button.closest("dialog")) return; // dialogs answer themselves
    const action = button.dataset.action;
    if (action === "kill") return; // the workers table asks for those (it knows the row)
    this.run(action);
  }

  run(action) {
    if (action === "pause") return this.view.pause();
    if (action === "help") return this.helpDialog.showModal();
    if (action === "filter") return this.view.focusFilter();
    if (this.view.readOnly()) return; // the buttons are hidden; the keys do nothing either
    if (action === "kill-selected") {
      const pid = this.view.selectedWorker();
      if (pid == null) return this.view.hint("kill", "select a worker first: click its row");
      return this.kill(pid);
    }
    const [command, args] = COMMANDS[action] || [];
    if (command) this.send(command, args);
  }

  /** Asks first: killing a worker drops its in-flight requests. */
  async kill(pid) {
    if (this.view.readOnly()) return;
    const text = `Kill worker ${pid}? Its in-flight requests fail; devserve replaces it at once.`;
    if (await this.confirm(text)) this.send("kill", { pid });
  }

  confirm(text) {
    const dialog = this.confirmDialog;
    dialog.querySelector("[data-field=confirm-text]").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector('[data-action="cancel"]').focus(); // Enter alone must not kill
    return new Promise((resolve) => {
      const answered = () => resolve(dialog.returnValue === "confirm");
      dialog.addEventListener("close", answered, { once: true });
    });
  }

  key(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (document.querySelector("dialog[open]")) return; // Esc closes dialogs natively
    const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Escape" && event.target.id === "filter") this.view.clearFilter();
      if (event.key === "Enter" && event.target.id === "filter") event.target.blur();
      return;
    }
    if (event.key === "Escape") return this.view.clearFilter();
    const action = KEYS[event.key];
    if (!action) return;
    event.preventDefault(); // "/" would open the browser's quick find
    this.run(action);
  }
}

/** Writes TRACE_NEXT wherever the page names it: [data-trace-next] and the trace button's tip. */
function nameTraceCount(page) {
  for (const node of page.querySelectorAll("[data-trace-next]")) {
    node.textContent = String(TRACE_NEXT);
  }
  const button = page.querySelector('button[data-action="trace"]');
  button.title = `trace the ASGI messages of each worker's next ${TRACE_NEXT} requests (t)`;
}
