// Numbers as the dashboard shows them: the same rules as the terminal panel
// (dashboard/tui/format.py), so both read alike. Pure functions, no DOM.

export const DASH = "\u2013"; // an en dash: "nothing yet"

/** 1234 → 1.2k, 81200 → 81.2k, 2500000 → 2.5M; 533.3 → 533, 12.5 → 12.5 (a rate's decimal
 * only where it is a fair part of the number). */
export function count(value) {
  if (value == null) return DASH;
  for (const [limit, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (Math.abs(value) >= limit) return (value / limit).toFixed(1) + suffix;
  }
  if (Number.isInteger(value) || Math.abs(value) >= 100) return value.toFixed(0);
  return value.toFixed(1);
}

/** Milliseconds with about two significant digits: 0.31 ms, 4.8 ms, 120 ms, 2.3 s. */
export function millis(value) {
  if (value == null) return DASH;
  if (value >= 1000) return (value / 1000).toFixed(1) + " s";
  if (value >= 100) return value.toFixed(0) + " ms";
  if (value >= 10) return value.toFixed(1) + " ms";
  return value.toFixed(2) + " ms";
}

/** Body sizes, decimal as tools show them: 312 B, 2.1 kB, 4.8 MB. */
export function size(value) {
  if (value == null) return DASH;
  if (value < 1000) return value.toFixed(0) + " B";
  if (value < 1e6) return (value / 1e3).toFixed(1) + " kB";
  return (value / 1e6).toFixed(1) + " MB";
}

/** Memory, binary: 34M (MiB); a dash when the worker has not reported yet. */
export function memory(value) {
  if (!value) return DASH;
  return (value / 2 ** 20).toFixed(0) + "M";
}

/** 12m04s, 3h05m, 2d04h. */
export function uptime(seconds) {
  if (seconds == null) return DASH;
  const whole = Math.floor(seconds);
  const days = Math.floor(whole / 86400);
  const hours = Math.floor((whole % 86400) / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = whole % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (days) return `${days}d${two(hours)}h`;
  if (hours) return `${hours}h${two(minutes)}m`;
  return `${minutes}m${two(secs)}s`;
}

/** How long ago, from milliseconds: "just now", "12 s ago", "3 min ago", "2 h ago". */
export function ago(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 1) return "just now";
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

/** 42 → "42%"; a share too small to show in `digits` is "<0.1%", never a red "0.0%". */
export function percent(value, digits = 0) {
  if (value == null) return DASH;
  const least = 10 ** -digits;
  if (value > 0 && value < least) return `<${least.toFixed(digits)}%`;
  return value.toFixed(digits) + "%";
}

/** part of whole in percent: 0%, "<1%", 41%, ">99%", 100%; a dash when whole is 0 (a share
 * rounded to 0% or 100% would hide the few that are not). */
export function share(part, whole) {
  if (!whole) return DASH;
  if (whole - part > 0 && whole - part < whole / 100) return ">99%";
  return percent((100 * part) / whole);
}

/** A record's protocol as people write it: "HTTP/1.1", "HTTP/2, stream 3". */
export function protocol(record) {
  const text = `HTTP/${record.http_version}`;
  return record.stream == null ? text : `${text}, stream ${record.stream}`;
}

/** Local wall-clock time with milliseconds: 12:04:11.203 (unix seconds in). */
export function clock(unix, withMillis = true) {
  const date = new Date(unix * 1000);
  const two = (n) => String(n).padStart(2, "0");
  const text = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  return withMillis ? text + "." + String(date.getMilliseconds()).padStart(3, "0") : text;
}

/** The CSS class for a status code: s2xx … s5xx (1xx and 101 WebSockets included). */
export function statusClass(status) {
  return "s" + Math.floor(status / 100) + "xx";
}

/** A snapshot entry's window ("1s", "10s", "60s"); empty when absent (--no-metrics). */
export function window_(item, name = "10s") {
  return (item && item.windows && item.windows[name]) || {};
}

/** The path as the client asked for it: path plus ?query. */
export function target(record) {
  return record.query ? `${record.path}?${record.query}` : record.path;
}

/** Values inside a traced ASGI message, as the panel shows them: sizes for bodies,
 * a count for headers, everything else as Python would print it. */
export function messageValue(key, value) {
  if ((key === "body" || key === "bytes" || key === "text") && Number.isInteger(value)) {
    return size(value);
  }
  if (key === "headers" && Array.isArray(value)) return String(value.length);
  if (value === true) return "True";
  if (value === false) return "False";
  if (value == null) return "None";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
