// Values as the page draws them: media, vectors, folded text, and collapsible trees whose
// leaves copy their path (in `flywheel table show --path` syntax) when clicked.
"use strict";

const FW = {};

FW.el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
};

// The path language of `table show --path`: keys as .name (quoted in [""] when they hold . [ ] " '),
// list items as [N]; the first step is the column.
FW.pathText = (steps) => {
  let out = "";
  steps.forEach((s, i) => {
    if (typeof s === "number") out += `[${s}]`;
    else if (s !== "" && !/[.\[\]"']/.test(s)) out += (i > 0 ? "." : "") + s;
    else out += `[${JSON.stringify(s)}]`;
  });
  return out;
};

FW.copyPath = (steps) => {
  const text = FW.pathText(steps);
  const box = document.getElementById("copied");
  if (box) box.textContent = text;
  if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  return text;
};

FW.size = (n) => n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;

FW.mediaUrl = (ctx, steps) =>
  `/api/media?t=${encodeURIComponent(ctx.t)}&row=${ctx.row}&path=${encodeURIComponent(FW.pathText(steps))}`;

const FOLD = 200;

FW.leaf = (text, steps, json) =>
  FW.el("span", { class: "leaf", "data-path": FW.pathText(steps), "data-json": json, title: "click: copy the path",
    onclick: (ev) => { ev.stopPropagation(); FW.copyPath(steps); } }, text);

FW.text = (s, steps, chars) => {
  if ((chars || s.length) <= FOLD) return FW.leaf(s, steps, JSON.stringify(s));
  return FW.el("details", { class: "fold" }, FW.el("summary", {}, s.slice(0, FOLD) + "…"),
    FW.el("div", { class: "full" }, s + (chars > s.length ? ` … (${chars} characters)` : "")));
};

FW.branch = (label, steps, entries, more) => {
  const list = FW.el("ul", {});
  for (const [key, child] of entries) list.append(FW.el("li", {}, FW.el("span", { class: "key" }, key), " ", child));
  if (more > 0) list.append(FW.el("li", { class: "more" }, `… ${more} more`));
  return FW.el("details", { class: "tree" }, FW.el("summary", {
    onclick: (ev) => { if (ev.altKey) FW.copyPath(steps); } }, label), list);
};

FW.json = (v, steps) => {
  if (Array.isArray(v)) {
    return FW.branch(`[${v.length}]`, steps, v.map((x, i) => [`[${i}]`, FW.json(x, steps.concat([i]))]), 0);
  }
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    return FW.branch(`{${keys.length}}`, steps, keys.map((k) => [k, FW.json(v[k], steps.concat([k]))]), 0);
  }
  if (typeof v === "string") return FW.text(v, steps);
  return FW.leaf(JSON.stringify(v), steps, JSON.stringify(v));
};

// One node from the API (view/src/cells.rs) at `steps`; ctx = {t: "NAME@V", row: N} for media
// links (none for SQL results).
FW.node = (n, steps, ctx) => {
  switch (n.k) {
    case "null": return FW.el("span", { class: "null" }, "null");
    case "text": return FW.text(n.v, steps, n.chars);
    case "scalar": return FW.leaf(typeof n.v === "string" ? n.v : JSON.stringify(n.v), steps, JSON.stringify(n.v));
    case "json": return (n.v !== null && typeof n.v === "object") ? FW.json(n.v, steps) : FW.json(n.v, steps);
    case "bytes": return FW.el("span", { class: "bytes" }, `<bytes ${FW.size(n.size)}>`);
    case "vector": return FW.el("span", { class: "vector", title: `shape [${n.shape.join(", ")}]` },
      `${n.type} [${n.head.join(", ")}${n.head.length < n.shape.reduce((a, b) => a * b, 1) ? ", …" : ""}]`);
    case "media": return FW.media(n, steps, ctx);
    case "list": return FW.branch(`list[${n.len}]`, steps,
      n.items.map((x, i) => [`[${i}]`, FW.node(x, steps.concat([i]), ctx)]), n.len - n.items.length);
    case "struct": return FW.branch(`struct{${n.fields.length}}`, steps,
      n.fields.map(([k, x]) => [k, FW.node(x, steps.concat([k]), ctx)]), 0);
    case "dict": return FW.branch(`dict{${n.len}}`, steps,
      n.entries.map(([k, x]) => [k, FW.node(x, steps.concat([k]), ctx)]), n.len - n.entries.length);
    default: return FW.el("span", {}, JSON.stringify(n));
  }
};

FW.media = (n, steps, ctx) => {
  const label = `${n.mime} ${FW.size(n.size)}`;
  if (!ctx) return FW.el("span", { class: "bytes" }, `<${label}>`);
  const src = FW.mediaUrl(ctx, steps);
  if (n.media === "image") {
    return FW.el("a", { href: src, target: "_blank", title: `${label}: full size` },
      FW.el("img", { class: "thumb", src, alt: label, "data-path": FW.pathText(steps) }));
  }
  const player = FW.el(n.media, { controls: "", preload: "metadata", title: label, "data-path": FW.pathText(steps) },
    FW.el("source", { src, type: n.mime }));
  return FW.el("span", { class: "player" }, player, FW.el("a", { href: src, target: "_blank" }, label));
};
