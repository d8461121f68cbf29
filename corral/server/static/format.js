// Small formatting and DOM helpers shared by the panels.

export function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${units[i]}`;
}

export function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function count(n) {
  if (!n) return "?";
  for (const [unit, scale] of [["B", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (n >= scale) return `${(n / scale).toFixed(n / scale < 10 ? 2 : 1)}${unit}`;
  }
  return String(n);
}

/** h("div.card", {onclick}, child, "text", ...): an element; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && k !== "list" && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const CONTEXT_KEY = "corral.fitContext";
/** The context length fit hints count the KV cache at (tokens), shared by My models and Discover. */
export function fitContext() { return Number(localStorage.getItem(CONTEXT_KEY)) || 4096; }
export function setFitContext(n) { if (Number(n) > 0) localStorage.setItem(CONTEXT_KEY, String(Number(n))); }

/** "~1.2 GB of 8 GB free": what a fit hint counts, in words. */
export function fitNeed(fit) { return fit.need ? `~${bytes(fit.need)} of ${bytes(fit.free)} free` : "?"; }

export function fitBadge(fit) {
  const label = { fits: "fits", tight: "tight", "too big": "too big", unknown: "size unknown" }[fit.fit] || fit.fit;
  const kv = fit.kv_known ? `weights ${bytes(fit.weights)} + KV cache ${bytes(fit.kv)}` : "weights only: the model's shape could not be read, so its KV cache is not counted";
  const title = fit.need ? `needs ~${bytes(fit.need)} (${kv}) of ${bytes(fit.free)} free` : "size unknown";
  return h(`span.badge.fit-${fit.fit.replace(" ", "-")}`, { title, "data-fit": fit.fit }, label);
}

let toastTimer;
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = "toast"; }, 4000);
}

export async function copyText(text) {
  try { await navigator.clipboard.writeText(text); }
  catch (_) {
    const area = h("textarea", {}, text);
    document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
  }
  toast("Copied");
}
