// The WebSocket to devserve's dashboard server: it delivers the control-API stream, sends
// commands and matches their replies by id, and reconnects by itself. It knows nothing of
// the panes: it reports messages and its state ("connecting", "connected", "disconnected",
// "unauthorized") to whoever made it.

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 5000;
const COMMAND_TIMEOUT_MS = 15000; // a reply that never comes must not leave a button waiting
const RESTARTING = 1012; // the close code devserve sends its pages when it stops or restarts
// every path that needs the token lives under this prefix, the cookie's Path (see access.py)
const PREFIX = "/_devserve";

export class Connection {
  /** onMessage(message) for every stream message; onState(state, detail) on every change. */
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map(); // command id → {resolve, reject, timer}
    this.retryMs = FIRST_RETRY_MS;
    this.state = null;
    this.restarting = false;
    this.everConnected = false;
  }

  start() {
    this.setState("connecting", {});
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${PREFIX}/ws`);
    this.socket = socket;
    socket.onopen = () => {
      this.retryMs = FIRST_RETRY_MS;
      this.restarting = false;
      this.everConnected = true;
      this.setState("connected", {});
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(event.code);
    };
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("dashboard: a message that is not JSON", text.slice(0, 200));
      return;
    }
    if ((message.type === "result" || message.type === "error") && this.pending.has(message.id)) {
      this.settle(message);
      return;
    }
    this.onMessage(message);
  }

  settle(message) {
    const waiting = this.pending.get(message.id);
    this.pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (message.ok) waiting.resolve(message.result || {});
    else waiting.reject(new Error(message.error || "the command failed"));
  }

  /** Sends a command; resolves with its result, rejects with the server's one-line error. */
  command(command, args = {}) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("not connected to devserve"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("no reply from devserve"));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ id, command, ...args }));
    });
  }

  /** The socket closed (or never opened): ask /api/session whether the token still holds,
   * since a WebSocket refused with 401 looks exactly like a server that is down. */
  async closed(code) {
    this.socket = null;
    if (code === RESTARTING) this.restarting = true; // until a connection opens again
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("disconnected before devserve answered"));
      this.pending.delete(id);
    }
    if ((await this.sessionStatus()) === 401) {
      if (!this.everConnected) {
        location.replace("/login"); // opened without the token: the login page explains
        return;
      }
      this.setState("unauthorized", {});
      return; // retrying cannot help: the operator needs the new URL
    }
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS);
    this.setState("disconnected", { retryAt: Date.now() + delay, restarting: this.restarting });
    setTimeout(() => this.open(), delay);
  }

  async sessionStatus() {
    try {
      const response = await fetch(`${PREFIX}/api/session`, { cache: "no-store" });
      return response.status;
    } catch {
      return 0; // the server is down or restarting
    }
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }
}
