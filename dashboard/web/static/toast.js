// Short-lived notices in the corner (#toasts): a command's result, what to do before a
// command can run, or its refusal. Those last two stay longer: the operator has to read them.

import { h } from "./dom.js";

const SHOWN_MS = { ok: 2500, warn: 5000, bad: 8000 };
const MAX_TOASTS = 4;

export function toast(root, title, text, tone = "ok") {
  const role = tone === "bad" ? "alert" : "status";
  const item = h("div", { className: `toast ${tone}`, role }, h("b", {}, title), " ", text);
  root.append(item);
  while (root.children.length > MAX_TOASTS) root.firstElementChild.remove();
  setTimeout(() => item.remove(), SHOWN_MS[tone] || SHOWN_MS.ok);
}
