// Server panel: loaded models, memory, requests, tokens per second over the last minutes,
// base URLs and snippets to copy. Polls /app/api/system while shown; the token-rate history is
// kept by the server (sampled from the engines' counters), so a tab opened now shows the minutes before.
import { getJSON } from "./api.js";
import { bytes, copyText, duration, h } from "./format.js";

const POLL_MS = 2000;

function snippets(base, model, keyed) {
  const auth = keyed ? ` \\\n  -H "Authorization: Bearer $CORRAL_API_KEY"` : "";
  const m = model || "MODEL";
  return {
    curl: `curl ${base}/v1/chat/completions${auth} \\\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${m}", "messages": [{"role": "user", "content": "Hello"}]}'`,
    openai: `${keyed ? "import os\n" : ""}from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key=${keyed ? 'os.environ["CORRAL_API_KEY"]' : '"unused"'})\nreply = client.chat.completions.create(\n    model="${m}", messages=[{"role": "user", "content": "Hello"}])\nprint(reply.choices[0].message.content)`,
    ollama: `${keyed ? "import os\n" : ""}from ollama import Client\n\nclient = Client(host="${base}"${keyed ? ', headers={"Authorization": "Bearer " + os.environ["CORRAL_API_KEY"]}' : ""})\nreply = client.chat(model="${m}", messages=[{"role": "user", "content": "Hello"}])\nprint(reply.message.content)`,
  };
}

function sparkline(rates) {
  const w = 600, ht = 80;
  if (rates.length < 2) return h("p.muted", {}, "Token rate appears after a few seconds.");
  const t1 = rates[rates.length - 1].t, t0 = Math.max(rates[0].t, t1 - 300);
  const max = Math.max(1, ...rates.map((r) => r.tps));
  const points = rates.filter((r) => r.t >= t0).map((r) => `${(((r.t - t0) / Math.max(1, t1 - t0)) * w).toFixed(1)},${(ht - (r.tps / max) * (ht - 4)).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${ht}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.classList.add("spark");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return h("div", {}, svg, h("div.muted", {}, `peak ${max.toFixed(1)} tok/s over the last ${duration(t1 - t0)}`));
}

export class ServerPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.root.classList.add("padded");
    this.view = h("div", { id: "server-view" });
    this.root.append(h("h2", {}, "Server"), this.view);
    setInterval(() => { if (!this.root.hidden) this.refresh(); }, POLL_MS);
  }

  shown() { this.refresh(); }

  async refresh() {
    let s;
    try { s = await getJSON("/app/api/system"); }
    catch (e) { this.view.replaceChildren(h("p.error", {}, e.message)); return; }
    const now = Date.now() / 1000;
    const loaded = s.loaded.length
      ? h("table", { id: "loaded-models" }, h("thead", {}, h("tr", {}, ["Model", "Memory", "Context", "Running", "Waiting", "KV cache", "Unloads"].map((t) => h("th", {}, t)))),
        h("tbody", {}, s.loaded.map((m) => h("tr", {}, h("td", {}, m.name), h("td", {}, bytes(m.size)), h("td", {}, String(m.context_length ?? "?")),
          h("td", {}, String(m.running)), h("td", {}, String(m.waiting)), h("td", {}, `${(100 * m.kv_cache_usage).toFixed(0)}%`),
          h("td", {}, m.refs ? "in use" : m.expires_at === null ? "never" : `in ${duration(m.expires_at - now)}`)))))
      : h("p.muted", {}, "No model is loaded; one loads on its first request.");
    const loading = (s.loading || []).map((l) => h("div.loading", { dataset: { name: l.name } },
      h("span", {}, `Loading ${l.name}${l.context_length ? ` at ${l.context_length} tokens` : ""}: ${l.total ? `${l.done} of ${l.total} tensors` : "starting"}`),
      h("div.progress", {}, h("div", { style: `width: ${l.total ? (100 * l.done / l.total).toFixed(1) : 0}%` }))));
    // the key itself stays off the screen (screen sharing): snippets read it from the environment
    const snip = snippets(s.base_url, s.loaded[0] && s.loaded[0].name, s.auth);
    const code = (name, text) => h("div.snippet", {}, h("strong", {}, name), h("pre", {}, text), h("button", { onclick: () => copyText(text) }, "Copy"));
    this.view.replaceChildren(
      h("div.card", {}, h("div.row", {},
        h("span", {}, h("strong", { id: "requests-running" }, String(s.running)), " running"),
        h("span", {}, h("strong", { id: "requests-waiting" }, String(s.waiting)), " waiting"),
        h("span", {}, "memory free ", h("strong", {}, bytes(s.memory.free))),
        s.memory.budget ? h("span", {}, "budget ", h("strong", {}, bytes(s.memory.budget))) : null,
        h("span", {}, "models hold ", h("strong", {}, bytes(s.memory.used))))),
      h("div.card", {}, h("h3", {}, "Loaded models"), loaded, loading),
      h("div.card", {}, h("h3", {}, "Tokens per second"), sparkline(s.token_rates)),
      h("div.card", {}, h("h3", {}, "Connect"),
        h("dl.facts", {}, h("dt", {}, "OpenAI"), h("dd", {}, h("code", {}, s.openai_base_url)),
          h("dt", {}, "Ollama"), h("dd", {}, h("code", {}, s.base_url)),
          h("dt", {}, "Metrics"), h("dd", {}, h("code", {}, `${s.base_url}/metrics`))),
        code("curl", snip.curl), code("Python: openai", snip.openai), code("Python: ollama", snip.ollama)));
  }
}
