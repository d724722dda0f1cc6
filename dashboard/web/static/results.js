// What a command's result says, in words, for its toast: "restart: started", not the
// result's keys read out ("restart restart started"). A command this page does not know
// about falls back to its keys and values.

const workers = (pids) => (pids.length === 1 ? `worker ${pids[0]}` : `workers ${pids.join(", ")}`);

const SAY = {
  scale: (r) => `to ${r.target} worker${r.target === 1 ? "" : "s"}`,
  restart: (r) => (r.restart === "queued" ? "queued after the one under way" : "started"),
  reload: (r) => (r.reload === "queued" ? "queued after the one under way" : "started"),
  kill: (r) => `worker ${r.killed} killed; a new one takes its place`,
  trace: (r) => {
    if (!r.tracing?.length) return "no worker serves yet";
    const what = r.requests == null ? "every request" : `the next ${r.requests} requests`;
    return `${what} of ${workers(r.tracing)}`;
  },
  "trace-off": (r) => (r.stopped?.length ? `stopped on ${workers(r.stopped)}` : "nothing traced"),
};

/** The toast's text for `command`'s `result`. */
export function describeResult(command, result) {
  const say = SAY[command];
  if (say) return say(result);
  const text = Object.entries(result)
    .map(([key, value]) => `${key} ${Array.isArray(value) ? value.join(", ") : value}`)
    .join(", ");
  return text || "done";
}
