// The request filter typed in the filter box: the same words as the terminal panel's `/`
// (dashboard/tui/feed.py, RequestFilter). Every word must match:
//   5xx  a status class      404  a status          GET  a method (upper case)
//   slow 500 ms or more      >100ms  at least that   anything else: part of the path and query

export const SLOW_MS = 500;

/** Returns a predicate over request records; an empty text matches everything. */
export function parseFilter(text) {
  const tests = text.trim().split(/\s+/).filter(Boolean).map(wordTest);
  const matches = (record) => tests.every((test) => test(record));
  matches.empty = tests.length === 0;
  return matches;
}

function wordTest(word) {
  const lowered = word.toLowerCase();
  if (/^[1-5]xx$/.test(lowered)) {
    const statusClass = Number(word[0]);
    return (record) => Math.floor(record.status / 100) === statusClass;
  }
  if (/^\d{3}$/.test(word)) {
    const status = Number(word);
    return (record) => record.status === status;
  }
  if (/^[A-Z]+$/.test(word)) return (record) => record.method === word;
  if (lowered === "slow") return (record) => record.duration >= SLOW_MS;
  const least = /^>(\d+(?:\.\d*)?)ms$/.exec(lowered);
  if (least) return (record) => record.duration >= Number(least[1]);
  return (record) => (record.query ? `${record.path}?${record.query}` : record.path).includes(word);
}
