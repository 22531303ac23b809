// Tiny DOM helpers: every text goes through textContent, never innerHTML, so data cannot inject markup.

/** el("td", {class: "num", title: "x"}, "text", childNode, [more]) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** A definition list from [term, value, title?] rows (values may be nodes). */
export function kv(target, rows) {
  clear(target);
  for (const [term, value, title] of rows) {
    target.append(el("div", { class: "kv-row" }, el("dt", {}, term), el("dd", { title }, value)));
  }
  return target;
}

/** A table from column headings and rows of cells (strings, nodes or {text, class, title}). */
export function table(caption, headings, rows, { numeric = [] } = {}) {
  const head = el("tr", {}, headings.map((h, i) => el("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, h)));
  const body = rows.map((cells) => el("tr", {}, cells.map((c, i) => {
    if (c && typeof c === "object" && !(c instanceof Node) && "text" in c) {
      return el("td", { class: [c.class, numeric.includes(i) ? "num" : null].filter(Boolean).join(" ") || null, title: c.title }, c.text);
    }
    return el("td", { class: numeric.includes(i) ? "num" : null }, c);
  })));
  return el("div", { class: "table-wrap" },
    el("table", { class: "data" }, caption ? el("caption", {}, caption) : null, el("thead", {}, head), el("tbody", {}, body)));
}
