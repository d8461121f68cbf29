// Discover panel: search the Hugging Face Hub (through the server), a repo's files by
// quantization with sizes and a fit hint, downloads with live progress, cancel and resume.
import { getJSON, ndjson } from "./api.js";
import { bytes, duration, fitBadge, fitContext, fitNeed, h, setFitContext, toast } from "./format.js";

export class DiscoverPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.root.classList.add("padded");
    this.query = h("input.grow", { id: "hub-query", type: "search", placeholder: "Search the Hugging Face Hub (e.g. qwen gguf)",
      onkeydown: (e) => { if (e.key === "Enter") this.search(); } });
    this.status = h("div", { id: "hub-status" });
    this.results = h("div", { id: "hub-results" });
    this.repo = h("div", { id: "hub-repo" });
    this.downloads = h("div", { id: "downloads" });
    this.context = h("input", { id: "hub-context", type: "number", min: "256", step: "256", value: String(fitContext()),
      "aria-label": "Context length for the fit hint",
      onchange: () => { setFitContext(this.context.value); if (this.openRepoName) this.openRepo(this.openRepoName); } });
    this.root.append(h("h2", {}, "Discover"),
      h("div.row", {}, this.query, h("button.primary", { onclick: () => this.search() }, "Search"),
        h("label", { title: "The fit hint counts weights plus the KV cache at this many tokens" }, "Context ", this.context)),
      this.status, this.downloads, this.repo, this.results);
  }

  shown() {
    this.context.value = String(fitContext());
    this.query.focus();
  }

  offline(e) {
    return h("div.card.error", { id: "hub-offline" },
      h("strong", {}, "The Hugging Face Hub cannot be reached. "),
      h("span", {}, e.message), h("p.muted", {}, "Your local models and chats still work; try again when you are online."));
  }

  async search() {
    this.status.replaceChildren(h("span.muted", {}, "Searching…"));
    this.repo.replaceChildren();
    let data;
    try { data = await getJSON(`/app/api/hub/search?q=${encodeURIComponent(this.query.value)}`); }
    catch (e) { this.status.replaceChildren(this.offline(e)); this.results.replaceChildren(); return; }
    this.status.replaceChildren(h("span.muted", {}, `${data.repos.length} repositories`));
    this.results.replaceChildren(...data.repos.map((r) => h("div.card.row.repo", { dataset: { repo: r.id } },
      h("strong.grow", {}, r.id), r.gguf ? h("span.badge", {}, "GGUF") : null,
      h("span.muted", {}, `${r.downloads} downloads · ${r.likes} likes`),
      h("button", { onclick: () => this.openRepo(r.id) }, "Files"))));
  }

  async openRepo(repo) {
    this.openRepoName = repo;
    this.repo.replaceChildren(h("p.muted", {}, `Listing ${repo}…`));
    let data;
    try { data = await getJSON(`/app/api/hub/repo?repo=${encodeURIComponent(repo)}&context=${fitContext()}`); }
    catch (e) { this.repo.replaceChildren(e.status === 502 ? this.offline(e) : h("p.error", {}, e.message)); return; }
    const rows = data.gguf.map((c) => h("tr", { dataset: { quant: c.quant } },
      h("td", {}, h("strong", {}, c.quant)), h("td", {}, c.files.join(", ")), h("td", {}, bytes(c.size)),
      h("td", {}, fitBadge(c.fit), " ", h("span.muted", {}, fitNeed(c.fit))),
      h("td", {}, h("button.primary", { onclick: () => this.download(c.pull, c.size) }, "Download"))));
    if (data.folder) {
      rows.push(h("tr", { dataset: { quant: "safetensors" } }, h("td", {}, h("strong", {}, "safetensors")),
        h("td", {}, "Hugging Face folder"), h("td", {}, bytes(data.folder.size)),
        h("td", {}, fitBadge(data.folder.fit), " ", h("span.muted", {}, fitNeed(data.folder.fit))),
        h("td", {}, h("button.primary", { onclick: () => this.download(data.folder.pull, data.folder.size) }, "Download"))));
    }
    const trained = data.context_length ? ` · trained context ${data.context_length} tokens` : "";
    this.repo.replaceChildren(h("div.card", {}, h("h3", {}, repo),
      h("p.muted", {}, `Fit: weights plus the KV cache at ${data.context} tokens, against free memory${trained}.`),
      rows.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Quantization", "Files", "Size", "Fit", ""].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
        : h("p.muted", {}, "No GGUF files or safetensors weights corral can run.")));
  }

  download(name, expected) {
    const bar = h("div");
    const text = h("span.muted.download-text", {}, "starting…");
    const actions = h("span.row");
    const card = h("div.card.download", { dataset: { name } }, h("div.row", {}, h("strong.grow", {}, name), actions),
      h("div.progress", {}, bar), text);
    this.downloads.prepend(card);
    this.run(name, expected, card, bar, text, actions);
  }

  async run(name, expected, card, bar, text, actions) {
    const abort = new AbortController();
    actions.replaceChildren(h("button", { onclick: () => abort.abort() }, "Cancel"));
    const samples = [];  // [time ms, bytes done] over the last 5 s, for speed and time left
    const done = {};     // digest -> bytes completed (several files may download)
    card.dataset.state = "running";
    try {
      for await (const ev of ndjson("/api/pull", { model: name, stream: true }, abort.signal)) {
        if (ev.digest && ev.total) {
          done[ev.digest] = ev.completed || 0;
          const got = Object.values(done).reduce((a, b) => a + b, 0);
          const total = Math.max(expected || 0, ev.total);
          const now = performance.now();
          samples.push([now, got]);
          while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
          const [t0, b0] = samples[0];
          const speed = now > t0 ? (got - b0) / ((now - t0) / 1000) : 0;
          bar.style.width = `${Math.min(100, (100 * got) / total).toFixed(1)}%`;
          text.textContent = `${bytes(got)} of ${bytes(total)} · ${bytes(speed)}/s · ${speed > 0 ? duration((total - got) / speed) : "?"} left`;
          card.dataset.updates = String((+card.dataset.updates || 0) + 1);
        } else if (ev.status !== "success") {
          text.textContent = ev.status;
        }
      }
      bar.style.width = "100%";
      text.textContent = "Done: it is in My models.";
      card.dataset.state = "done";
      actions.replaceChildren(h("button.primary", { onclick: () => this.app.openChatWith(name) }, "Chat"));
      toast(`${name} downloaded`);
      this.app.modelsChanged();
    } catch (e) {
      const cancelled = e.name === "AbortError";
      card.dataset.state = cancelled ? "cancelled" : "failed";
      text.textContent = cancelled ? "Cancelled: the part already downloaded is kept." : `Failed: ${e.message}`;
      text.className = cancelled ? "muted download-text" : "error download-text";
      actions.replaceChildren(h("button", { onclick: () => this.run(name, expected, card, bar, text, actions) }, cancelled ? "Resume" : "Retry"));
    }
  }
}
