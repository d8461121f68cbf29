// The chat's per-conversation settings pane: preset, system prompt, sampling, context length.
import { h } from "./format.js";

export const PRESETS = {
  Balanced: { temperature: 0.7, top_p: 0.9, top_k: 40 },
  Precise: { temperature: 0.2, top_p: 0.9, top_k: 20 },
  Creative: { temperature: 1.0, top_p: 0.95, top_k: 100 },
  Deterministic: { temperature: 0, top_p: 1, top_k: 0, seed: 0 },
};
const NUMBERS = ["temperature", "top_p", "top_k", "max_tokens", "seed", "context_length"];
const FROM_PRESET = ["temperature", "top_p", "top_k", "seed"];  // what choosing a preset resets

export class SettingsPane {
  /** `current()` gives the settings shown; `save(settings)` is called with every change. */
  constructor(current, save) {
    this.current = current;
    this.save = save;
    const field = (name, label, attrs) => h("label", {}, label,
      h("input", { name, type: "number", ...attrs, onchange: () => this.edited() }));
    this.preset = h("select", { name: "preset", onchange: () => this.choosePreset(this.preset.value) },
      Object.keys(PRESETS).map((p) => h("option", { value: p }, p)), h("option", { value: "" }, "Custom"));
    this.system = h("textarea", { name: "system", placeholder: "You are a helpful assistant.", onchange: () => this.edited() });
    this.el = h("aside.settings", { id: "settings", hidden: true },
      h("strong", {}, "Conversation settings"),
      h("label", {}, "Preset", this.preset),
      h("label", {}, "System prompt", this.system),
      field("temperature", "Temperature", { step: "0.05", min: "0", max: "5" }),
      field("top_p", "Top P", { step: "0.05", min: "0.05", max: "1" }),
      field("top_k", "Top K (0 = off)", { step: "1", min: "0" }),
      field("max_tokens", "Max tokens", { step: "1", min: "1", placeholder: "until the model stops" }),
      field("seed", "Seed", { step: "1", placeholder: "random" }),
      field("context_length", "Context length (tokens; the model reloads at it)", { step: "256", min: "256", placeholder: "server default" }),
      h("button", { onclick: () => { this.el.hidden = true; } }, "Close"));
  }

  toggle() { this.el.hidden = !this.el.hidden; }

  input(name) { return this.el.querySelector(`input[name="${name}"]`); }

  fill(s) {
    this.preset.value = s.preset || "";
    this.system.value = s.system || "";
    for (const name of NUMBERS) this.input(name).value = s[name] ?? "";
  }

  read() {
    const s = { ...this.current(), system: this.system.value, preset: this.preset.value || null };
    for (const name of NUMBERS) {
      const v = this.input(name).value;
      if (v === "") delete s[name]; else s[name] = Number(v);
    }
    return s;
  }

  choosePreset(name) {
    const s = this.read();
    for (const k of FROM_PRESET) delete s[k];
    this.save(Object.assign(s, PRESETS[name] || {}, { preset: name || null }));
  }

  edited() {
    const s = this.read();
    const preset = PRESETS[s.preset];
    if (preset && Object.entries(preset).some(([k, v]) => s[k] !== v)) s.preset = null;  // now custom
    this.save(s);
  }
}
