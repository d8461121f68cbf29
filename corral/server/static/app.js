// The app shell: panels as tabs (Alt+1..4, remembered in the URL hash), theme, login prompt.
import { postJSON, saveKey, setUnauthorizedHandler } from "./api.js";
import { ChatPanel } from "./chat.js";
import { ModelsPanel } from "./models.js";
import { DiscoverPanel } from "./discover.js";
import { ServerPanel } from "./server.js";

const panels = {};
const order = ["chat", "models", "discover", "server"];

function show(name) {
  if (!panels[name]) name = "chat";
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.panel === name));
  }
  for (const section of document.querySelectorAll("section.panel")) section.hidden = section.dataset.panel !== name;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  panels[name].shown();
}

function setupLogin() {
  const overlay = document.getElementById("login");
  setUnauthorizedHandler((message) => {
    document.getElementById("login-error").textContent = message;
    overlay.hidden = false;
    document.getElementById("login-key").focus();
  });
  document.getElementById("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = document.getElementById("login-key").value;
    try {
      await postJSON("/app/login", { key });
      saveKey(key);
      location.reload();
    } catch (e) {
      document.getElementById("login-error").textContent = e.message;
    }
  });
}

function setupTheme() {
  document.getElementById("theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("corral.theme", next);
  });
}

export const app = {
  show,
  openChatWith(model) { show("chat"); panels.chat.useModel(model); },
  modelsChanged() { panels.models.stale = true; panels.chat.refreshModels(); },
};

setupLogin();
setupTheme();
panels.chat = new ChatPanel(document.getElementById("panel-chat"), app);
panels.models = new ModelsPanel(document.getElementById("panel-models"), app);
panels.discover = new DiscoverPanel(document.getElementById("panel-discover"), app);
panels.server = new ServerPanel(document.getElementById("panel-server"), app);
for (const tab of document.querySelectorAll("#tabs button")) tab.addEventListener("click", () => show(tab.dataset.panel));
document.addEventListener("keydown", (event) => {
  if (event.altKey && /^[1-4]$/.test(event.key)) { event.preventDefault(); show(order[+event.key - 1]); }
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1) || "chat");
