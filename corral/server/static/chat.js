// Chat panel: conversations (kept on the server), model picker, streamed replies, settings.
import { ApiError, call, getJSON, postJSON, send, sse } from "./api.js";
import { bytes, copyText, fitContext, h, toast } from "./format.js";
import { renderMarkdown } from "./markdown.js";
import { PRESETS, SettingsPane } from "./chat_settings.js";
import { describeLoad, watchLoad } from "./load_progress.js";

const API = "/app/api/conversations";

export class ChatPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.conv = null;        // the open conversation, as the server last returned it
    this.draftSettings = { model: localStorage.getItem("corral.model") || null, preset: "Balanced", ...PRESETS.Balanced };
    this.models = [];
    this.abort = null;       // AbortController of the reply being streamed
    this.build();
    this.refreshModels();
    this.refreshList();
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.abort) { e.preventDefault(); this.stop(); }
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.conv && !this.abort) this.open(this.conv.id, true);
    });
  }

  get settings() { return this.conv ? this.conv.settings : this.draftSettings; }

  shown() { this.input.focus(); }

  build() {
    this.search = h("input", { type: "search", placeholder: "Search chats", "aria-label": "Search conversations",
      oninput: () => { clearTimeout(this.searchTimer); this.searchTimer = setTimeout(() => this.refreshList(), 200); } });
    this.list = h("ul", { id: "conversations" });
    this.sidebar = h("aside.sidebar", {},
      h("button.primary", { id: "new-chat", onclick: () => this.newChat(), title: "New chat (Alt+N)" }, "+ New chat"),
      this.search, this.list);
    this.picker = h("select", { id: "model-picker", "aria-label": "Model", onchange: () => this.pickModel(this.picker.value) });
    this.title = h("span.title", { id: "conv-title", title: "Double-click to rename", ondblclick: () => this.rename() }, "New chat");
    this.convActions = h("span.row", {},
      h("button", { onclick: () => this.rename(), title: "Rename" }, "Rename"),
      h("button", { onclick: () => this.exportAs("json") }, "JSON"),
      h("button", { onclick: () => this.exportAs("md") }, "Markdown"),
      h("button.danger", { onclick: () => this.remove() }, "Delete"));
    this.loading = h("div.loading-model", { hidden: true });
    this.messages = h("div.messages", { id: "messages", onclick: (e) => this.onMessagesClick(e) });
    this.input = h("textarea", { id: "prompt", rows: 1, placeholder: "Message (Enter sends, Shift+Enter new line, Esc stops)",
      onkeydown: (e) => this.onKey(e), oninput: () => this.autosize() });
    this.sendButton = h("button.primary", { id: "send", onclick: () => this.sendOrStop() }, "Send");
    this.settingsPane = new SettingsPane(() => this.settings, (settings) => this.storeSettings(settings));
    const head = h("div.conv-head", {},
      h("button.sidebar-toggle", { onclick: () => this.sidebar.classList.toggle("open"), "aria-label": "Conversations" }, "☰"),
      this.title, this.picker,
      h("button", { id: "settings-toggle", onclick: () => this.settingsPane.toggle() }, "Settings"),
      this.convActions);
    this.root.append(h("div.chat", {}, this.sidebar,
      h("div.conversation", {}, head, this.loading, this.messages, h("div.composer", {}, this.input, this.sendButton)),
      this.settingsPane.el));
    document.addEventListener("keydown", (e) => {
      if (e.altKey && e.key.toLowerCase() === "n") { e.preventDefault(); this.app.show("chat"); this.newChat(); }
    });
    this.render();
  }

  async storeSettings(settings) {
    if (!this.conv) { this.draftSettings = settings; this.settingsPane.fill(this.settings); return; }
    try {
      this.conv = await this.patch({ settings });
    } catch (e) { toast(e.message, "error"); }
    this.settingsPane.fill(this.settings);
  }

  async patch(change) {
    try {
      return await send("PATCH", `${API}/${this.conv.id}`, { version: this.conv.version, ...change });
    } catch (e) {
      if (e.status !== 409) throw e;
      this.conv = await getJSON(`${API}/${this.conv.id}`);
      return await send("PATCH", `${API}/${this.conv.id}`, { version: this.conv.version, ...change });
    }
  }

  // -- models --------------------------------------------------------------------------------

  async refreshModels() {
    try {
      this.models = (await getJSON("/api/tags")).models.map((m) => m.name);
    } catch (e) { this.models = []; }
    this.fillPicker();
  }

  fillPicker() {
    const current = this.settings.model;
    this.picker.replaceChildren(h("option", { value: "" }, this.models.length ? "Choose a model…" : "No models: see Discover"),
      ...this.models.map((m) => h("option", { value: m }, m)));
    if (current && !this.models.includes(current)) this.picker.append(h("option", { value: current }, `${current} (missing)`));
    this.picker.value = current || "";
  }

  useModel(name) { this.refreshModels().then(() => this.pickModel(name)); }

  async pickModel(name) {
    if (!name) return;
    localStorage.setItem("corral.model", name);
    await this.storeSettings({ ...this.settings, model: name });
    this.fillPicker();
    const tooBig = await this.tooBig(name);
    if (tooBig) {
      // the server would try (and the machine might swap or fail): say why first, and let the user choose
      this.loading.replaceChildren(h("span.error", { id: "fit-warning" },
        `${name} does not fit: it needs ~${bytes(tooBig.need)} (weights ${bytes(tooBig.weights)}` +
        `${tooBig.kv_known ? ` + KV cache ${bytes(tooBig.kv)} at ${tooBig.context} tokens` : ""}) and ${bytes(tooBig.free)} is free. ` +
        "Pick a smaller quantization or a shorter context length."),
        h("button", { id: "load-anyway", onclick: () => this.loadModel(name) }, "Load anyway"));
      this.loading.hidden = false;
      return;
    }
    await this.loadModel(name);
  }

  /** The fit estimate of `name` at the conversation's context when it is "too big", else null. */
  async tooBig(name) {
    const context = this.settings.context_length || fitContext();
    try {
      const found = (await getJSON(`/app/api/models?context=${context}`)).models.find((m) => m.name === name);
      return found && found.fit.fit === "too big" ? { ...found.fit, context } : null;
    } catch (e) { return null; }  // no estimate: the load itself reports what goes wrong
  }

  /** Show `name`'s load progress above the messages while the server reports one (at once unless
   * `quiet`: then only if a load turns up); returns stop(), which leaves the area as it is. */
  showLoading(name, quiet) {
    const bar = h("div", { id: "load-bar" });
    const progress = h("div.progress.indeterminate", { id: "load-progress", role: "progressbar", "aria-label": `Loading ${name}` }, bar);
    const label = h("span", { id: "load-label" }, `Loading ${name}…`);
    const show = () => { this.loading.replaceChildren(label, progress); this.loading.hidden = false; };
    if (!quiet) show();
    let shown = !quiet;
    return watchLoad(name, (load) => {
      if (!shown) { show(); shown = true; }
      if (!load.total) return;
      const percent = 100 * load.done / load.total;
      progress.classList.remove("indeterminate");
      bar.style.width = `${percent.toFixed(1)}%`;
      progress.setAttribute("aria-valuenow", String(Math.round(percent)));
      label.textContent = `Loading ${name}: ${describeLoad(load)}`;
    });
  }

  /** The body that loads `name` at the conversation's context length (the server's default when unset). */
  loadBody(name) {
    const body = { model: name };
    if (this.settings.context_length) body.options = { num_ctx: this.settings.context_length };
    return body;
  }

  /** Load `name` (at the conversation's context length), showing the server's progress: tensors
   * loaded of total, polled from /app/api/loading. On failure: the reason and a Retry button.
   * `quiet`: show nothing unless it takes a while (a model already loaded answers at once).
   * `retry` is what the Retry button does (by default: this load again). Resolves true when loaded. */
  async loadModel(name, quiet = false, retry = null) {
    const stop = this.showLoading(name, quiet);
    try {
      await postJSON("/api/generate", this.loadBody(name));
      this.loading.hidden = true;
      if (!quiet) toast(`${name} is loaded`);
      return true;
    } catch (e) {
      this.loading.replaceChildren(h("span.error", { id: "load-error" }, `Could not load ${name}: ${e.message}`),
        h("button", { id: "load-retry", onclick: retry || (() => this.loadModel(name)) }, "Retry"));
      this.loading.hidden = false;
      return false;
    } finally { stop(); }
  }

  // -- conversations -------------------------------------------------------------------------

  async refreshList() {
    let convs = [];
    try {
      convs = (await getJSON(`${API}?q=${encodeURIComponent(this.search.value)}`)).conversations;
    } catch (e) { if (!(e instanceof ApiError && e.status === 401)) toast(e.message, "error"); }
    this.list.replaceChildren(...convs.map((c) => h("li", {}, h("button", {
      class: this.conv && c.id === this.conv.id ? "current" : "", title: c.title, dataset: { id: c.id },
      onclick: () => { this.sidebar.classList.remove("open"); this.open(c.id); },
    }, c.title))));
    if (!convs.length) this.list.append(h("li.muted", {}, this.search.value ? "No chats match." : "No chats yet."));
  }

  async open(id, quiet = false) {
    try {
      const conv = await getJSON(`${API}/${id}`);
      if (quiet && this.conv && conv.version === this.conv.version) return;
      this.conv = conv;
    } catch (e) { if (!quiet) toast(e.message, "error"); return; }
    this.render();
    this.refreshList();
  }

  newChat() {
    if (this.abort) this.stop();
    this.conv = null;
    this.draftSettings = { ...this.draftSettings, system: "" };
    this.render();
    this.refreshList();
    this.input.focus();
  }

  async rename() {
    if (!this.conv) return;
    const title = prompt("Rename chat", this.conv.title);
    if (!title) return;
    try { this.conv = await this.patch({ title }); } catch (e) { toast(e.message, "error"); }
    this.render();
    this.refreshList();
  }

  async remove() {
    if (!this.conv || !confirm(`Delete "${this.conv.title}"?`)) return;
    try { await send("DELETE", `${API}/${this.conv.id}`); } catch (e) { toast(e.message, "error"); return; }
    this.newChat();
  }

  async exportAs(format) {
    if (!this.conv) return;
    const response = await call("GET", `${API}/${this.conv.id}/export?format=${format}`);
    const url = URL.createObjectURL(await response.blob());
    const name = (response.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
    const a = h("a", { href: url, download: name ? name[1] : `chat.${format}` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  /** Replace messages from `start` on (null: append), retrying an append on top of another tab's change. */
  async write(start, messages) {
    const url = `${API}/${this.conv.id}/messages`;
    try {
      this.conv = await postJSON(url, { version: this.conv.version, start, messages });
    } catch (e) {
      if (e.status !== 409) throw e;
      this.conv = await getJSON(`${API}/${this.conv.id}`);
      if (start !== null) { this.render(); throw new ApiError("this chat changed in another tab; it has been reloaded", 409); }
      this.conv = await postJSON(url, { version: this.conv.version, start: null, messages });
    }
  }

  // -- sending and streaming -----------------------------------------------------------------

  onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.sendOrStop(); }
  }

  autosize() { this.input.style.height = "auto"; this.input.style.height = `${Math.min(this.input.scrollHeight, 192)}px`; }

  sendOrStop() { if (this.abort) this.stop(); else this.sendMessage(); }

  stop() { if (this.abort) this.abort.abort(); }

  async sendMessage() {
    const text = this.input.value.trim();
    if (!text) return;
    if (!this.settings.model) { toast("Choose a model first", "error"); this.picker.focus(); return; }
    try {
      if (!this.conv) {
        this.conv = await postJSON(API, { title: text.slice(0, 60), settings: this.draftSettings });
      }
      await this.write(null, [{ role: "user", content: text }]);
    } catch (e) { toast(e.message, "error"); return; }
    this.input.value = "";
    this.autosize();
    this.render();
    this.refreshList();
    await this.generate();
  }

  requestBody() {
    const s = this.settings;
    const messages = [];
    if (s.system) messages.push({ role: "system", content: s.system });
    for (const m of this.conv.messages) messages.push({ role: m.role, content: m.content });
    const body = { model: s.model, messages, stream: true, stream_options: { include_usage: true } };
    for (const k of ["temperature", "top_p", "top_k", "max_tokens", "seed"]) if (s[k] !== undefined && s[k] !== null) body[k] = s[k];
    return body;
  }

  async generate() {
    // the conversation's context length: (re)load the model at it first; at once when it already runs so
    if (this.settings.context_length && !(await this.loadModel(this.settings.model, true, () => this.generate()))) {
      this.render();
      return;
    }
    const view = this.appendMessage({ role: "assistant", content: "", meta: {} }, this.conv.messages.length, true);
    this.abort = new AbortController();
    this.sendButton.textContent = "Stop";
    this.sendButton.id = "stop";
    const t0 = performance.now();
    // the request loads the model if it went idle and was unloaded: show that load's progress
    let stopWatch = this.showLoading(this.settings.model, true);
    const loaded = () => { if (stopWatch) { stopWatch(); stopWatch = null; this.loading.hidden = true; } };
    let text = "", first = null, chunks = 0, usage = null, timings = null, failure = null, stopped = false;
    let painting = false;  // one Markdown render per frame, however fast tokens come
    const paint = () => { painting = false; view.body.innerHTML = renderMarkdown(text); this.scrollDown(); };
    try {
      for await (const chunk of sse("/v1/chat/completions", this.requestBody(), this.abort.signal)) {
        if (chunk.usage) usage = chunk.usage;
        if (chunk.timings) timings = chunk.timings;  // the server's own measure of decoding speed
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          if (first === null) { first = performance.now(); loaded(); }
          chunks++;
          text += delta.content;
          if (!painting) { painting = true; requestAnimationFrame(paint); }
        }
      }
    } catch (e) {
      if (e.name === "AbortError") stopped = true;
      else failure = e instanceof ApiError ? e.message : "the connection to the server broke mid-reply";
    }
    const end = performance.now();
    if (stopWatch) loaded();
    paint();
    this.abort = null;
    this.sendButton.textContent = "Send";
    this.sendButton.id = "send";
    const tokens = usage ? usage.completion_tokens : chunks;
    const meta = { model: this.settings.model, tokens, ttft_ms: first === null ? null : Math.round(first - t0),
      tps: timings ? timings.predicted_per_second
        : tokens > 1 && first !== null && end > first ? (tokens - 1) / ((end - first) / 1000) : null };
    if (stopped) meta.stopped = true;
    if (failure) {
      meta.error = failure;
      view.el.append(h("div.stream-error", { id: "stream-error" }, h("span", {}, `${failure}. What arrived is kept above.`),
        h("button", { onclick: () => { view.el.remove(); this.generate(); } }, "Retry")));
      return;
    }
    try {
      await this.write(null, [{ role: "assistant", content: text, meta }]);
    } catch (e) { toast(`Could not save the reply: ${e.message}`, "error"); return; }
    this.render();
  }

  // -- rendering -----------------------------------------------------------------------------

  render() {
    this.title.textContent = this.conv ? this.conv.title : "New chat";
    this.convActions.hidden = !this.conv;
    this.fillPicker();
    this.settingsPane.fill(this.settings);
    this.messages.replaceChildren();
    const msgs = this.conv ? this.conv.messages : [];
    if (!msgs.length) {
      this.messages.append(h("div.empty", {}, h("h2", {}, "Chat with a local model"),
        h("p", {}, "Pick a model above (or find one in Discover), then type below. Enter sends, Shift+Enter adds a line, Esc stops.")));
    }
    msgs.forEach((m, i) => this.appendMessage(m, i, false));
    this.scrollDown();
  }

  appendMessage(m, index, streaming) {
    const body = h("div.body");
    if (m.role === "user") body.textContent = m.content; else body.innerHTML = renderMarkdown(m.content);
    const el = h(`div.msg.${m.role}`, { dataset: { index } }, h("div.role", {}, m.role === "user" ? "You" : (m.meta.model || "Assistant")), body);
    if (!streaming) el.append(this.metaLine(m, index));
    if (this.messages.querySelector(".empty")) this.messages.replaceChildren();
    this.messages.append(el);
    return { el, body };
  }

  metaLine(m, index) {
    const meta = m.meta || {};
    const last = index === this.conv.messages.length - 1;
    const parts = [];
    if (m.role === "assistant") {
      if (meta.tokens !== undefined) parts.push(h("span.stat", {}, `${meta.tokens} tokens`));
      if (meta.tps) parts.push(h("span.stat", {}, `${meta.tps.toFixed(1)} tok/s`));
      if (meta.ttft_ms !== null && meta.ttft_ms !== undefined) parts.push(h("span.stat", {}, `TTFT ${meta.ttft_ms} ms`));
      if (meta.stopped) parts.push(h("span.stat", {}, "stopped"));
      parts.push(h("button", { onclick: () => copyText(m.content) }, "Copy"));
      if (last) parts.push(h("button.regenerate", { onclick: () => this.regenerate(index) }, "Regenerate"));
    } else if (m.role === "user") {
      parts.push(h("button.edit", { onclick: (e) => this.edit(index, e.target.closest(".msg")) }, "Edit"));
    }
    return h("div.meta", {}, parts);
  }

  async regenerate(index) {
    if (this.abort) return;
    try { await this.write(index, []); } catch (e) { toast(e.message, "error"); return; }
    this.render();
    await this.generate();
  }

  edit(index, el) {
    const area = h("textarea", {}, this.conv.messages[index].content);
    const save = async () => {
      try { await this.write(index, [{ role: "user", content: area.value }]); } catch (e) { toast(e.message, "error"); return; }
      this.render();
      await this.generate();
    };
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
      if (e.key === "Escape") { e.stopPropagation(); this.render(); }
    });
    el.replaceChildren(area, h("div.row", {}, h("button.primary", { onclick: save }, "Save & send"),
      h("button", { onclick: () => this.render() }, "Cancel")));
    area.focus();
  }

  onMessagesClick(e) {
    const button = e.target.closest(".copy-code");
    if (button) copyText(button.closest(".code").querySelector("code").textContent);
  }

  scrollDown() { this.messages.scrollTop = this.messages.scrollHeight; }
}
