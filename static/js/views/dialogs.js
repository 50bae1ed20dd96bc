// Modal dialogs: delete confirmation and the new-session form (native <dialog>).

import { byTestId, h, replaceChildren, show } from "../util/dom.js";
import { describeError } from "../util/format.js";

/** Ask a yes/no question; resolves true when confirmed. */
export function confirmDialog(dialog, message, { confirmLabel = "Delete" } = {}) {
  byTestId(dialog, "confirm-text").textContent = message;
  byTestId(dialog, "confirm-ok").textContent = confirmLabel;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    byTestId(dialog, "confirm-cancel").focus();
  });
}

/** Pipelines from GET /pipelines, whatever the exact envelope: [{name, description, stages}]. */
export function pipelineList(body) {
  let list = body && typeof body === "object" && "pipelines" in body ? body.pipelines : body;
  if (list && !Array.isArray(list) && typeof list === "object") {
    list = Object.entries(list).map(([name, value]) => ({ name, ...value }));
  }
  return (Array.isArray(list) ? list : []).filter((p) => p && typeof p.name === "string");
}

function describePipeline(pipeline) {
  const stages = (pipeline.stages || []).map((s) => s.name).filter(Boolean);
  const parts = [];
  if (pipeline.description) parts.push(pipeline.description);
  if (stages.length) parts.push(`Stages: ${stages.join(" → ")}`);
  return parts.join(" · ");
}

/**
 * The new-session dialog. open() lists the pipelines (loaded once) and resolves with the
 * created session, or null when cancelled. create(pipeline, title) does the API call.
 */
export function createNewSessionDialog(dialog, { loadPipelines, create }) {
  const select = byTestId(dialog, "pipeline-select");
  const description = byTestId(dialog, "pipeline-description");
  const title = byTestId(dialog, "new-session-title");
  const error = byTestId(dialog, "new-session-error");
  const submit = byTestId(dialog, "new-session-create");
  let pipelines = null;
  let settle = null;

  function describeSelected() {
    const chosen = (pipelines || []).find((p) => p.name === select.value);
    description.textContent = chosen ? describePipeline(chosen) : "";
  }
  select.addEventListener("change", describeSelected);

  async function fillPipelines() {
    if (pipelines) return;
    select.disabled = true;
    replaceChildren(select, h("option", { value: "", text: "Loading…" }));
    try {
      pipelines = await loadPipelines();
    } catch (err) {
      replaceChildren(select, h("option", { value: "", text: "Default pipeline" }));
      select.disabled = false;
      throw err;
    }
    replaceChildren(select, pipelines.map((p) => h("option", { value: p.name, text: p.name })));
    const preferred = pipelines.find((p) => p.name === "default") ?? pipelines[0];
    if (preferred) select.value = preferred.name;
    select.disabled = false;
    describeSelected();
  }

  function showError(err) {
    error.textContent = err ? describeError(err) : "";
    show(error, Boolean(err));
  }

  byTestId(dialog, "new-session-cancel").addEventListener("click", () => dialog.close("cancel"));
  dialog.addEventListener("close", () => {
    if (settle) settle(null);
    settle = null;
  });
  dialog.querySelector("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    showError(null);
    try {
      const session = await create(select.value || null, title.value.trim());
      const done = settle;
      settle = null;
      dialog.close("create");
      done?.(session);
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    open() {
      title.value = "";
      showError(null);
      dialog.showModal();
      select.focus();
      fillPipelines().catch(showError);
      return new Promise((resolve) => {
        settle = resolve;
      });
    },
  };
}
