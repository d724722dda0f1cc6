// Short-lived notices in the corner (#toasts): a command's result, or its refusal. Refusals
// stay longer, since they are the ones the operator has to read.

import { h } from "./dom.js";

const SHOWN_MS = { ok: 2500, bad: 8000 };
const MAX_TOASTS = 4;

export function toast(root, title, text, tone = "ok") {
  const role = tone === "bad" ? "alert" : "status";
  const item = h("div", { className: `toast ${tone}`, role }, h("b", {}, title), " ", text);
  root.append(item);
  while (root.children.length > MAX_TOASTS) root.firstElementChild.remove();
  setTimeout(() => item.remove(), SHOWN_MS[tone] || SHOWN_MS.ok);
}
