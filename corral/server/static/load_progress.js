// A model load's progress as the server reports it (/app/api/loading: tensors loaded of total).
import { getJSON } from "./api.js";

const POLL_MS = 150;

/** Poll the server while `name` loads, calling `onUpdate(load)` with each report for it; returns stop(). */
export function watchLoad(name, onUpdate) {
  let running = true;
  (async () => {
    while (running) {
      try {
        const load = (await getJSON("/app/api/loading")).loading.find((l) => l.name === name || l.name === `${name}:latest`);
        if (load && running) onUpdate(load);
      } catch (e) { /* the load's own answer reports errors */ }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  })();
  return () => { running = false; };
}

/** "12 of 30 tensors", or what the load is doing when it has no count yet. */
export function describeLoad(load) {
  if (load.stage === "cache") return "weights in, preparing the cache…";
  return load.total ? `${load.done} of ${load.total} tensors` : "starting…";
}
