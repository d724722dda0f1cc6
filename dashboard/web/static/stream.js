// The WebSocket to devserve's dashboard server: it delivers the control-API stream, sends
// commands and matches their replies by id, and reconnects by itself. It knows nothing of
// the panes: it reports messages and its state ("connecting", "connected", "disconnected",
// "unauthorized") to whoever made it.

import { keyHeaders, keyProtocols } from "./session.js";

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 5000;
const COMMAND_TIMEOUT_MS = 15000; // a reply that never comes must not leave a button waiting
// snapshots come every second: this long without any message is a server that stopped
// (SIGSTOP, a debugger) or a connection that died half-open, which no close event reports
const SILENT_MS = 5000;
const SESSION_TIMEOUT_MS = 3000; // a stopped server would leave the session check hanging
const RESTARTING = 1012; // the close code devserve sends its pages when it stops or restarts
// every path that needs the token lives under this prefix, the cookie's Path (see access.py)
const PREFIX = "/_devserve";

export class Connection {
  /** onMessage(message) for every stream message; onState(state, detail) on every change;
   * onBad(text) for a message that is skipped (not JSON, not an object, or one the page failed
   * on): the stream goes on, since one bad message must not leave the page blind. */
  constructor({ onMessage, onState, onBad }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.onBad = onBad;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map(); // command id → {resolve, reject, timer}
    this.retryMs = FIRST_RETRY_MS;
    this.state = null;
    this.restarting = false;
    this.everConnected = false;
    this.heardAt = 0; // when the current socket last delivered a message
    this.watchdog = null;
  }

  start() {
    this.setState("connecting", {});
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${PREFIX}/ws`, keyProtocols());
    this.socket = socket;
    // the backoff starts over at the first snapshot, not here: a server that accepts and
    // then fails its stream at once would otherwise be retried every FIRST_RETRY_MS forever
    socket.onopen = () => {
      this.restarting = false;
      this.everConnected = true;
      this.watch(socket);
      this.setState("connected", {});
    };
    socket.onmessage = (event) => {
      this.heardAt = Date.now();
      this.receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(event.code);
    };
  }

  /** Checks once a second that the open socket still delivers; a silent one is dropped. */
  watch(socket) {
    this.heardAt = Date.now();
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.heardAt > SILENT_MS) this.drop(socket);
    }, 1000);
  }

  /** Gives up on a socket that went silent: its close may come much later (a frozen server
   * answers the closing handshake only when it runs again), so its handlers go first. No
   * session check: the token held until just now, and a stopped server would not answer it. */
  drop(socket) {
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.close();
    this.forget(null);
    this.retry();
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      this.bad("a message that is not JSON", text);
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      this.bad("a message that is not a JSON object", text);
      return;
    }
    if (message.type === "snapshot") this.retryMs = FIRST_RETRY_MS; // the stream works
    if ((message.type === "result" || message.type === "error") && this.pending.has(message.id)) {
      this.settle(message);
      return;
    }
    try {
      this.onMessage(message);
    } catch (error) {
      this.bad(`a ${message.type} message the page could not show (${error.message})`, text);
    }
  }

  /** Skips a message: said in the console (with its start) and to the page, then goes on. */
  bad(what, text) {
    const start = String(text).slice(0, 200);
    console.warn(`dashboard: skipped ${what}:`, start);
    this.onBad?.(`skipped ${what} from devserve`);
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
    this.forget(code);
    if ((await this.sessionStatus()) === 401) {
      if (!this.everConnected) {
        location.replace("/login"); // opened without the token: the login page explains
        return;
      }
      this.setState("unauthorized", {});
      return; // retrying cannot help: the operator needs the new URL
    }
    this.retry();
  }

  /** Lets go of the socket: no watchdog, and no command waits for its reply any longer. */
  forget(code) {
    this.socket = null;
    clearInterval(this.watchdog);
    if (code === RESTARTING) this.restarting = true; // until a connection opens again
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("disconnected before devserve answered"));
      this.pending.delete(id);
    }
  }

  retry() {
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS);
    this.setState("disconnected", { retryAt: Date.now() + delay, restarting: this.restarting });
    setTimeout(() => this.open(), delay);
  }

  async sessionStatus() {
    try {
      const response = await fetch(`${PREFIX}/api/session`, {
        cache: "no-store",
        headers: keyHeaders(),
        signal: AbortSignal.timeout(SESSION_TIMEOUT_MS),
      });
      return response.status;
    } catch {
      return 0; // the server is down, restarting or stopped (the check timed out)
    }
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }
}
