// Small DOM helpers shared by the panes. Everything the server sends is set as text,
// never as HTML: paths, headers and log lines come from clients and apps.

/** Makes an element: h("td", {className: "num"}, "12", childNode, …). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && !key.includes("-")) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Sets a node's text only when it changed: a once-a-second snapshot then touches only the
 * cells whose numbers moved, and the browser re-lays out nothing else. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Toggles a class only when needed (same reason as setText). */
export function setClass(node, name, on) {
  if (node.classList.contains(name) !== on) node.classList.toggle(name, on);
}

/** True when a scrolled pane shows its last row: new rows then keep it following the tail. */
export function atBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 8;
}

/** A long text (a traceback) folded under a one-word summary, opened by a click. */
export function folded(label, text) {
  return h("details", {}, h("summary", {}, label), h("pre", {}, text.trimEnd()));
}
