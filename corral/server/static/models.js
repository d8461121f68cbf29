// My models panel: the local store with details and a fit estimate; load, unload, keep-alive,
// copy, delete, details.
import { getJSON, postJSON, send } from "./api.js";
import { describeLoad, watchLoad } from "./load_progress.js";
import { bytes, count, fitBadge, fitContext, fitNeed, h, setFitContext, toast } from "./format.js";

const KEEP_ALIVE = [["5m", "5 minutes"], ["1h", "1 hour"], ["-1", "until unloaded"], ["0", "unload when idle"]];

export class ModelsPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.root.classList.add("padded");
    this.context = h("input", { id: "fit-context", type: "number", min: "256", step: "256", value: String(fitContext()),
      onchange: () => { setFitContext(this.context.value); this.refresh(); }, "aria-label": "Context length for the fit estimate" });
    this.summary = h("span.muted");
    this.body = h("div", { id: "models-list" });
    this.root.append(h("div.row", {}, h("h2.grow", {}, "My models"),
      h("label", {}, "Context ", this.context), this.summary,
      h("button", { onclick: () => this.refresh() }, "Refresh")), this.body);
    this.stale = true;
  }

  shown() {
    if (Number(this.context.value) !== fitContext()) { this.context.value = String(fitContext()); this.stale = true; }
    if (this.stale) this.refresh();
  }

  async refresh() {
    this.stale = false;
    let data;
    try { data = await getJSON(`/app/api/models?context=${fitContext()}`); }
    catch (e) { this.body.replaceChildren(h("p.error", {}, e.message)); return; }
    this.summary.textContent = `${bytes(data.free)} free`;
    if (!data.models.length) {
      this.body.replaceChildren(h("p.muted", {}, "No models yet. Find one in Discover, or run `corral pull hf.co/ORG/REPO:Q4_K_M`."));
      return;
    }
    const rows = data.models.map((m) => this.row(m));
    this.body.replaceChildren(h("table.models", {},
      h("thead", {}, h("tr", {}, ["Model", "Architecture", "Parameters", "Quantization", "Size", "Context", "Source", "Fit", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
  }

  row(m) {
    const keep = h("select", { "aria-label": "Keep alive" }, KEEP_ALIVE.map(([v, t]) => h("option", { value: v }, t)));
    const status = h("span.muted.status", {}, m.loaded ? "loaded" : "");
    const details = h("tr.details", { hidden: true }, h("td", { colSpan: 9 }));
    const source = m.source && m.source.repo ? m.source.repo : (m.kind === "gguf" ? "local GGUF" : "local folder");
    const load = async () => {
      status.className = "muted status";
      status.textContent = "loading…";
      const value = keep.value;
      const stop = watchLoad(m.name, (l) => { status.textContent = `loading: ${describeLoad(l)}`; });
      try {
        await postJSON("/api/generate", { model: m.name, keep_alive: value === "-1" ? -1 : value === "0" ? 0 : value });
        status.textContent = value === "0" ? "unloaded" : "loaded";
      } catch (e) { status.className = "error status"; status.textContent = `Could not load: ${e.message}`; }
      finally { stop(); }
    };
    const unload = async () => {
      try { await postJSON("/api/generate", { model: m.name, keep_alive: 0 }); status.textContent = "unloaded"; }
      catch (e) { toast(e.message, "error"); }
    };
    const copy = async () => {
      const dst = prompt(`Copy ${m.name} as`, `${m.name.split(":")[0]}-copy`);
      if (!dst) return;
      try { await postJSON("/api/copy", { source: m.name, destination: dst }); toast(`Copied to ${dst}`); this.changed(); }
      catch (e) { toast(e.message, "error"); }
    };
    const remove = async () => {
      if (!confirm(`Delete ${m.name}?`)) return;
      try { await send("DELETE", "/api/delete", { model: m.name }); toast(`Deleted ${m.name}`); this.changed(); }
      catch (e) { toast(e.message, "error"); }
    };
    const toggleDetails = async () => {
      details.hidden = !details.hidden;
      if (!details.hidden) details.firstChild.replaceChildren(await this.details(m.name));
    };
    return [h("tr", { dataset: { model: m.name } },
      h("td", {}, h("strong", {}, m.name)),
      h("td", {}, m.architecture || "?"),
      h("td", {}, m.parameter_count ? count(m.parameter_count) : (m.parameter_size || "?")),
      h("td", {}, m.quantization || "?"),
      h("td", {}, bytes(m.size)),
      h("td", {}, m.context_length ? String(m.context_length) : "?"),
      h("td", {}, source),
      h("td", {}, fitBadge(m.fit), " ", h("span.muted", {}, fitNeed(m.fit))),
      h("td", {}, h("div.row", {},
        h("button.primary", { onclick: () => this.app.openChatWith(m.name) }, "Chat"),
        h("button", { onclick: load }, "Load"), keep,
        h("button", { onclick: unload }, "Unload"),
        h("button", { onclick: copy }, "Copy"),
        h("button.danger", { onclick: remove }, "Delete"),
        h("button", { onclick: toggleDetails }, "Details"), status))),
      details];
  }

  async details(name) {
    try {
      const d = await getJSON(`/app/api/models/${encodeURIComponent(name)}/details`);
      const facts = Object.entries(d.model_info).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]);
      return h("div", {},
        h("dl.facts", {}, facts, h("dt", {}, "digest"), h("dd", {}, d.digest),
          h("dt", {}, "files"), h("dd", {}, d.files.map((f) => `${f.name} (${bytes(f.size)})`).join(", "))),
        Object.keys(d.gguf_metadata || {}).length ? h("details", {}, h("summary", {}, "GGUF metadata"),
          h("dl.facts.gguf-metadata", {}, Object.entries(d.gguf_metadata).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]))) : null,
        d.template ? h("details", {}, h("summary", {}, "Chat template"), h("pre", {}, d.template)) : null,
        d.license ? h("details", {}, h("summary", {}, "Licence"), h("pre", {}, d.license)) : null,
        Object.keys(d.parameters || {}).length ? h("details", {}, h("summary", {}, "Parameters"), h("pre", {}, JSON.stringify(d.parameters, null, 2))) : null);
    } catch (e) { return h("p.error", {}, e.message); }
  }

  changed() { this.app.modelsChanged(); this.refresh(); }
}
