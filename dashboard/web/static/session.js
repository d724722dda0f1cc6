// The page's half of a dashboard session. Trading the token (/?token=…) gives the browser an
// HttpOnly cookie and this page a key, in the address's fragment (#key=…), which no server
// ever receives. The key moves to this origin's storage at once and the fragment is cleared.
// Browsers send the cookie to every port of the host, but storage belongs to this origin, port
// included: a page of another server on this host can get the cookie sent, never the key,
// and devserve wants both (see devserver/control/access.py).

const STORED = "devserve-dashboard-key";

/** Take a key handed over in the fragment; the key this page holds, or "" when none. */
export function pageKey() {
  const given = new URLSearchParams(location.hash.slice(1)).get("key");
  if (given) {
    localStorage.setItem(STORED, given);
    history.replaceState(null, "", location.pathname + location.search); // out of the bar
  }
  return localStorage.getItem(STORED) || "";
}

/** Ends this browser's session on the server (its cookie and key are refused from then on, an
 * open WebSocket of it is closed), forgets the key, and goes to the login page. */
export async function signOut() {
  try {
    await fetch("/_devserve/api/logout", {
      method: "POST",
      headers: keyHeaders(),
      signal: AbortSignal.timeout(10000), // a busy server still ends it; a stopped one won't
    });
  } finally {
    localStorage.removeItem(STORED);
    location.replace("/login");
  }
}

/** Headers that prove the session on a fetch (the cookie goes by itself). */
export function keyHeaders() {
  const key = pageKey();
  return key ? { "x-devserve-key": key } : {};
}

/** WebSocket subprotocols: a browser cannot set headers there, so the key travels as one. */
export function keyProtocols() {
  const key = pageKey();
  return key ? ["devserve", `devserve-key.${key}`] : [];
}
