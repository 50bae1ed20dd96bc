// A run in progress (or ended without an answer): the stage stepper, the running
// stage's streaming text, retries, errors, usage, Cancel / Retry, and the approval of a
// stage the run paused after (an editable copy of its output, Approve / Reject).

import { failureDetails, retryingSentence, runFailedSentence, stageFailedSentence } from "../errors.js";
import { MarkdownView } from "../markdown/view.js";
import { ACTIVE_RUN, awaitingGate, stoppedStages } from "../run-state.js";
import { h, setText, show } from "../util/dom.js";
import { clock, usageText } from "../util/format.js";

const STATUS_LABEL = {
  pending: "pending",
  running: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
  queued: "queued",
  awaiting_approval: "awaiting approval",
};

/** Milliseconds a stage has run (live while running), or null when unknown. */
export function stageElapsed(stage, skewMs = 0) {
  const start = Date.parse(stage.started_at || "");
  if (Number.isNaN(start)) return null;
  if (stage.status === "running") return Date.now() - skewMs - start;
  const end = Date.parse(stage.finished_at || "");
  return Number.isNaN(end) ? null : end - start;
}

const versionModels = (versions) => versions.map((v) => v.model ?? v.status).join(", ");

function outputSummary(stage) {
  const parts = [stage.name];
  if (stage.model) parts.push(stage.model);
  const usage = usageText(stage.usage);
  if (usage) parts.push(usage);
  const earlier = stage.versions?.length ?? 0;
  if (earlier) parts.push(`re-run (${earlier} earlier ${earlier === 1 ? "version" : "versions"}: ${versionModels(stage.versions)})`);
  return parts.join(" · ");
}

/** A stage's "Re-run with…" control: a model (or the agent's own chain) and a button. */
class RerunControl {
  constructor(index, onRerun) {
    this.select = h("select", { class: "rerun-model", testid: "rerun-model", "aria-label": "Model for the re-run" });
    this.button = h("button", { type: "button", class: "secondary", testid: "rerun-stage",
      on: { click: () => onRerun(index, this.select.value || null) } }, "Re-run");
    this.el = h("div", { class: "rerun msg-actions", testid: "rerun" }, this.select, this.button);
    this.models = null;
  }

  update(models) {
    const key = models.join("\n");
    if (this.models === key) return;
    this.models = key;
    const chosen = this.select.value;
    this.select.replaceChildren(h("option", { value: "" }, "its own models"), ...models.map((m) => h("option", { value: m }, m)));
    if (models.includes(chosen)) this.select.value = chosen;
  }
}

/** Collapsible outputs of a run's completed stages (open state survives updates). With
 * onRerun(index, model), each can be re-run (shown while ``rerun`` says so). */
export class StageOutputs {
  constructor({ onRerun = null } = {}) {
    this.onRerun = onRerun;
    this.el = h("div", { class: "stage-outputs", testid: "stage-outputs" });
    this.items = new Map();
  }

  update(stages, { rerun = false, models = [] } = {}) {
    const done = stages.filter((s) => s.status === "completed" && typeof s.output === "string");
    for (const stage of done) {
      let item = this.items.get(stage.index);
      if (!item) {
        item = {
          summary: h("summary"),
          body: h("div", { class: "stage-output-text markdown", testid: "stage-output-text" }),
          rerun: this.onRerun ? new RerunControl(stage.index, this.onRerun) : null,
        };
        item.view = new MarkdownView(item.body);
        item.el = h("details", { class: "stage-output", testid: "stage-output", dataset: { stage: stage.name } },
          item.summary, item.body, item.rerun?.el);
        this.items.set(stage.index, item);
        this.el.append(item.el);
      }
      setText(item.summary, outputSummary(stage));
      item.view.set(stage.output);
      if (item.rerun) {
        item.rerun.update(models);
        show(item.rerun.el, rerun);
      }
    }
    for (const [index, item] of this.items) {
      if (!done.some((s) => s.index === index)) {
        item.el.remove();
        this.items.delete(index);
      }
    }
    show(this.el, done.length > 0);
  }
}


class StepView {
  constructor(stage) {
    this.icon = h("span", { class: "step-icon", "aria-hidden": "true" });
    this.name = h("span", { class: "step-name", text: stage.name });
    this.status = h("span", { class: "step-status", testid: "stage-status" });
    this.model = h("span", { class: "step-model muted", testid: "stage-model" });
    this.time = h("span", { class: "step-time muted", testid: "stage-elapsed" });
    this.note = h("p", { class: "step-note", testid: "stage-note" });
    this.error = h("p", { class: "step-error", testid: "stage-error" });
    this.el = h("li", { class: "step", testid: "stage", dataset: { stage: stage.name } },
      h("span", { class: "step-line" }, this.icon, this.name, this.status, this.model, this.time),
      this.note, this.error);
  }

  update(stage, skewMs) {
    this.el.dataset.status = stage.status;
    setText(this.status, STATUS_LABEL[stage.status] ?? stage.status);
    const model = stage.status === "running" && stage.nextModel ? `→ ${stage.nextModel}` : stage.model || "";
    setText(this.model, model);
    this.tick(stage, skewMs);
    // One sentence at a time: the retry under way, or why the stage failed (raw texts are
    // in the run's details).
    const retrying = stage.status === "running" && stage.retries.length > 0;
    setText(this.note, retrying ? retryingSentence(stage.retries.at(-1)) : "");
    show(this.note, retrying);
    const failed = stage.status === "failed";
    setText(this.error, failed ? stageFailedSentence(stage) : "");
    show(this.error, failed);
  }

  tick(stage, skewMs) {
    const ms = stageElapsed(stage, skewMs);
    setText(this.time, ms === null || stage.status === "pending" ? "" : clock(ms));
  }
}

/** Partial text of a stage that stopped (cancelled or failed), kept and marked as such. */
class StoppedView {
  constructor(stage) {
    this.label = h("p", { class: "stopped-label", testid: "stopped-label" });
    this.text = h("div", { class: "stopped-text markdown", testid: "stopped-text" });
    this.view = new MarkdownView(this.text);
    this.el = h("section", { class: "stopped", testid: "stopped-output", dataset: { stage: stage.name } },
      this.label, this.text);
  }

  update(stage) {
    this.el.dataset.status = stage.status;
    const how = stage.status === "cancelled" ? "stopped when you cancelled" : "stopped when it failed";
    setText(this.label, `${stage.name}: partial text, ${how}`);
    this.view.set(stage.partial);
  }
}

/** Why a run was cancelled, as a sentence (rejected, timed out at its gate, or cancelled). */
export function cancelledSentence(run) {
  const error = String(run.error || "");
  if (error === "rejected") return "Rejected.";
  if (error.startsWith("rejected: ")) return `Rejected: ${error.slice("rejected: ".length)}.`;
  if (error.startsWith("approval timed out")) return "Cancelled: nobody approved it in time.";
  return "Cancelled.";
}

let approvalIds = 0;

/** The stage a run awaits approval of: its output in an editable box, Approve and Reject. */
class ApprovalView {
  /** actions: onApprove(run, output | null), onReject(run) */
  constructor(actions) {
    this.actions = actions;
    this.key = null; // the run and stage shown: the box is refilled only when it changes
    const id = `approval-${++approvalIds}`;
    this.heading = h("h3", { class: "approval-title", id: `${id}-title`, testid: "approval-title" });
    this.hint = h("p", { class: "approval-hint muted", id: `${id}-hint` },
      "Edit the text if it needs it: the next stages use what you approve.");
    this.output = h("textarea", {
      class: "approval-output", id: `${id}-output`, testid: "approval-output", rows: "8",
      "aria-describedby": `${id}-hint`, spellcheck: "true",
    });
    this.label = h("label", { for: `${id}-output`, class: "approval-label" });
    this.approve = h("button", { type: "button", class: "primary", testid: "approve-run", on: { click: () => this.onApprove() } }, "Approve");
    this.reject = h("button", { type: "button", class: "secondary", testid: "reject-run", on: { click: () => this.onReject() } }, "Reject");
    this.el = h("section", { class: "approval", testid: "approval", "aria-labelledby": `${id}-title` },
      this.heading, this.hint, this.label, this.output,
      h("div", { class: "approval-actions" }, this.approve, this.reject));
    this.el.hidden = true;
  }

  update(run) {
    const stage = awaitingGate(run);
    show(this.el, Boolean(stage));
    if (!stage) {
      this.key = null;
      return;
    }
    this.run = run;
    this.stage = stage;
    const key = `${run.run_id}:${run.generation}:${stage.index}`;
    if (key !== this.key) {
      this.key = key;
      this.output.value = stage.output ?? "";
      this.busy(false);
    }
    this.el.dataset.stage = stage.name;
    setText(this.heading, `Approve the ${stage.name} stage?`);
    setText(this.label, `${stage.name} output`);
  }

  busy(on) {
    this.approve.disabled = on;
    this.reject.disabled = on;
    this.output.readOnly = on;
  }

  async answer(action) {
    this.busy(true);
    try {
      await action();
    } finally {
      this.busy(false);
    }
  }

  onApprove() {
    const edited = this.output.value !== (this.stage.output ?? "");
    return this.answer(() => this.actions.onApprove(this.run, edited ? this.output.value : null));
  }

  onReject() {
    return this.answer(() => this.actions.onReject(this.run));
  }
}

const ANNOUNCE = {
  running: (name) => `${name} stage started.`,
  completed: (name) => `${name} stage finished.`,
};

export class RunView {
  /** actions: onCancel(run), onRetry(run), onApprove(run, output), onReject(run), skewMs(), announce(text) */
  constructor(run, actions) {
    this.actions = actions;
    this.run = run;
    this.steps = [];
    this.heard = null; // statuses already announced (null: nothing yet, the first look is silent)
    this.badge = h("span", { class: "badge", testid: "run-status" });
    this.usage = h("span", { class: "muted run-usage", testid: "run-usage" });
    this.cancel = h("button", { type: "button", class: "secondary", testid: "cancel-run", on: { click: () => this.onCancel() } }, "Cancel");
    this.retry = h("button", { type: "button", class: "primary", testid: "retry-run", on: { click: () => this.onRetry() } }, "Retry");
    this.stepper = h("ol", { class: "stepper", testid: "stepper", "aria-label": "Pipeline stages" });
    this.streamLabel = h("div", { class: "stream-label muted", testid: "stream-stage" });
    this.streamText = h("div", { class: "stream-text markdown", testid: "stream-text" });
    this.streamView = new MarkdownView(this.streamText, { live: true });
    // Not a live region: it changes many times a second. Stage changes are announced once.
    this.stream = h("div", { class: "stream", testid: "stream" }, this.streamLabel, this.streamText);
    this.stopped = h("div", { class: "stopped-list" });
    this.stoppedViews = new Map();
    this.error = h("p", { class: "run-error", testid: "run-error" });
    this.detailsList = h("ul", { class: "failure-list" });
    this.details = h("details", { class: "failure-details", testid: "failure-details" },
      h("summary", { text: "Details" }), this.detailsList);
    this.outputs = new StageOutputs();
    this.approval = new ApprovalView(actions);
    this.el = h("li", { class: "run-card", testid: "run", dataset: { runId: run.run_id } },
      h("div", { class: "run-head" }, h("span", { class: "run-title" }, "Pipeline"), this.badge, this.usage,
        h("span", { class: "spacer" }), this.cancel, this.retry),
      this.stepper, this.approval.el, this.stream, this.stopped, this.error, this.details, this.outputs.el);
  }

  /** latest: the session's latest run; live: it appeared while the session was open. */
  update(run, { latest = true, live = false } = {}) {
    this.run = run;
    this.el.dataset.status = run.status;
    setText(this.badge, STATUS_LABEL[run.status] ?? run.status);
    this.badge.dataset.status = run.status;
    setText(this.usage, usageText(run.usage));
    this.updateButtons(run, latest);
    this.updateSteps(run);
    this.updateStream(run);
    this.updateStopped(run);
    this.updateError(run);
    this.outputs.update(run.stages);
    this.approval.update(run);
    this.announce(run, live);
  }

  updateError(run) {
    const error = run.status === "failed" ? runFailedSentence(run) : run.status === "cancelled" ? cancelledSentence(run) : "";
    setText(this.error, error);
    show(this.error, Boolean(error));
    const lines = failureDetails(run);
    if (this.detailsList.childElementCount !== lines.length) {
      this.detailsList.replaceChildren(...lines.map((line) =>
        h("li", { testid: "failure-detail" }, h("span", { class: "failure-what", text: `${line.label}: ` }), h("code", { text: line.text }))));
    }
    show(this.details, lines.length > 0 && run.status !== "completed");
  }

  updateStopped(run) {
    const stages = stoppedStages(run);
    for (const [index, view] of this.stoppedViews) {
      if (!stages.some((s) => s.index === index)) {
        view.el.remove();
        this.stoppedViews.delete(index);
      }
    }
    for (const stage of stages) {
      let view = this.stoppedViews.get(stage.index);
      if (!view) {
        view = new StoppedView(stage);
        this.stoppedViews.set(stage.index, view);
        this.stopped.append(view.el);
      }
      view.update(stage);
    }
    show(this.stopped, stages.length > 0);
  }

  announce(run, live) {
    const now = new Map(run.stages.map((s) => [s.name, s.status]));
    // A run already there when the session opened is not news; one that appears live is.
    const before = this.heard ?? (live ? new Map() : null);
    this.heard = now;
    now.runStatus = run.status;
    if (!before || !this.actions.announce) return;
    for (const [name, status] of now) {
      if (before.get(name) !== status && ANNOUNCE[status]) this.actions.announce(ANNOUNCE[status](name));
    }
    if (before.runStatus !== run.status && run.status === "awaiting_approval") {
      this.actions.announce(`The ${awaitingGate(run)?.name ?? ""} stage awaits your approval.`);
    }
    if (before.runStatus !== run.status && run.status === "cancelled") this.actions.announce("The run was cancelled.");
    if (before.runStatus !== run.status && run.status === "failed") this.actions.announce(runFailedSentence(run));
  }

  updateButtons(run, latest) {
    const active = ACTIVE_RUN.has(run.status);
    show(this.cancel, active);
    const cancelling = active && (run.cancel_requested || this.cancelling);
    this.cancel.disabled = Boolean(cancelling);
    setText(this.cancel, cancelling ? "Cancelling…" : "Cancel");
    if (!active) this.cancelling = false;
    show(this.retry, latest && (run.status === "failed" || run.status === "cancelled"));
    if (run.status !== "failed" && run.status !== "cancelled") this.retry.disabled = false;
  }

  updateSteps(run) {
    if (this.steps.length !== run.stages.length || this.steps.some((s, i) => s.name.textContent !== run.stages[i].name)) {
      this.steps = run.stages.map((stage) => new StepView(stage));
      this.stepper.replaceChildren(...this.steps.map((s) => s.el));
    }
    const skew = this.actions.skewMs();
    run.stages.forEach((stage, i) => this.steps[i].update(stage, skew));
  }

  updateStream(run) {
    const stage = run.stages.find((s) => s.status === "running");
    const queued = run.status === "queued";
    show(this.stream, Boolean(stage) || queued);
    if (!stage) {
      setText(this.streamLabel, queued ? "Waiting for a worker…" : "");
      this.streamView.set("");
      return;
    }
    this.stream.dataset.stage = stage.name;
    setText(this.streamLabel, stage.partial || stage.gap ? `${stage.name} is writing…` : `${stage.name} is thinking…`);
    this.streamView.set(stage.gap ? `… ${stage.partial.trimStart()}` : stage.partial);
  }

  /** Advance elapsed-time counters (called every second). */
  tick() {
    const skew = this.actions.skewMs();
    this.run.stages.forEach((stage, i) => {
      if (stage.status === "running") this.steps[i]?.tick(stage, skew);
    });
  }

  async onCancel() {
    this.cancelling = true;
    this.update(this.run);
    try {
      await this.actions.onCancel(this.run);
    } finally {
      this.cancelling = false;
      this.update(this.run);
    }
  }

  async onRetry() {
    this.retry.disabled = true;
    try {
      await this.actions.onRetry(this.run);
    } finally {
      this.retry.disabled = false;
    }
  }
}
