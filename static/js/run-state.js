// A run's state: normalising REST snapshots and applying run and stage events. Pure
// (no DOM). Updates never move a stage or run backwards within one generation.

// Not ended: a run queued, running, or paused at an approval gate (the session is busy).
export const ACTIVE_RUN = new Set(["queued", "running", "awaiting_approval"]);
const RANK = { pending: 0, queued: 0, running: 1, completed: 2, failed: 2, cancelled: 2 };
// A run moves forward through queued → running → awaiting_approval, and again after each
// approval (approve moves it back to queued): its progress counts the approved gates.
const RUN_RANK = { queued: 0, running: 1, awaiting_approval: 2 };
const FINAL_PROGRESS = 1e6;

export const rank = (status) => RANK[status] ?? 0;
export const tokens = (usage) => (usage ? (Number(usage.prompt_tokens) || 0) + (Number(usage.completion_tokens) || 0) : 0);
export const str = (value) => (typeof value === "string" ? value : null);

export function normUsage(usage) {
  const u = usage && typeof usage === "object" ? usage : {};
  return {
    prompt_tokens: Number(u.prompt_tokens) || 0,
    completion_tokens: Number(u.completion_tokens) || 0,
    cost_usd: Number(u.cost_usd) || 0,
  };
}

const stoppedStatus = (status) => status === "cancelled" || status === "failed";

/** The session seq a running stage's partial text is as of, or null. */
function snapshotSeq(s) {
  const usable = s.status === "running" && typeof s.partial === "string" && Number.isInteger(s.partial_seq);
  return usable ? s.partial_seq : null;
}

function normStage(raw, index) {
  const s = raw && typeof raw === "object" ? raw : {};
  return {
    index,
    name: str(s.name) ?? `stage ${index + 1}`,
    agent: str(s.agent) ?? "",
    status: s.status in RANK ? s.status : "pending",
    output: str(s.output),
    model: str(s.model),
    attempts: Number(s.attempts) || 0,
    usage: normUsage(s.usage),
    error: str(s.error),
    started_at: str(s.started_at),
    finished_at: str(s.finished_at),
    // Text streamed so far (running), or kept from a stage that stopped (cancelled/failed).
    // A running stage's copy from the server is as of one session event (partial_seq):
    // events up to that one are already in it (see applyRunEvent's meta).
    partial: stoppedStatus(s.status) || snapshotSeq(s) !== null ? str(s.partial) ?? "" : "",
    partialSeq: snapshotSeq(s),
    // An approval gate (the run pauses after this stage), when it was approved, and the
    // model's text when the user edited the output before approving.
    approve: s.approve === true,
    approved_at: str(s.approved_at),
    output_original: str(s.output_original),
    partialEpoch: snapshotSeq(s) !== null ? str(s.partial_epoch) : null,
    gap: false, // the partial text misses a beginning we could not replay
    retries: [],
    nextModel: null,
    // Earlier results of a re-run stage, oldest first: {status, model, output}.
    versions: Array.isArray(s.versions)
      ? s.versions.map((v) => ({ status: str(v?.status) ?? "", model: str(v?.model), output: str(v?.output) }))
      : [],
  };
}

export function normRun(raw) {
  const stages = Array.isArray(raw.stages) ? raw.stages.map(normStage) : [];
  return {
    run_id: raw.run_id,
    session_id: str(raw.session_id),
    pipeline: str(raw.pipeline) ?? "",
    status: raw.status in RANK || raw.status in RUN_RANK ? raw.status : "queued",
    stages,
    awaiting_stage: Number.isInteger(raw.awaiting_stage) ? raw.awaiting_stage : null,
    awaiting_since: str(raw.awaiting_since),
    usage: normUsage(raw.usage),
    error: str(raw.error),
    generation: Number(raw.generation) || 0,
    input_message_id: str(raw.input_message_id),
    assistant_message_id: str(raw.assistant_message_id),
    created_at: str(raw.created_at) ?? "",
    finished_at: str(raw.finished_at),
    cancel_requested: raw.cancel_requested === true,
    eventGen: Number(raw.generation) || 0, // generation the events being applied belong to
  };
}

/** Merge a stage snapshot into the known one without moving it backwards. */
function mergeStage(known, incoming) {
  if (rank(incoming.status) < rank(known.status)) return;
  const advanced = rank(incoming.status) > rank(known.status);
  const keys = ["status", "output", "model", "error", "started_at", "finished_at", "agent", "approved_at", "output_original"];
  for (const key of keys) {
    if (incoming[key] !== null && incoming[key] !== "") known[key] = incoming[key];
  }
  known.attempts = Math.max(known.attempts, incoming.attempts);
  if (incoming.versions.length > known.versions.length) known.versions = incoming.versions;
  if (tokens(incoming.usage) >= tokens(known.usage)) known.usage = incoming.usage;
  if (incoming.partialSeq !== null) {
    // A running stage's text as of a seq: taken only when ours is empty or has a gap.
    if (known.status === "running" && (!known.partial || known.gap)) {
      Object.assign(known, { partial: incoming.partial, partialSeq: incoming.partialSeq, partialEpoch: incoming.partialEpoch, gap: false });
    }
  } else if (incoming.partial) known.partial = incoming.partial; // the server kept a stopped stage's text
  else if (advanced && incoming.status === "completed") known.partial = "";
}

/** How far a run has come within its generation (final statuses are the furthest). */
export function runProgress(run) {
  if (!(run.status in RUN_RANK)) return FINAL_PROGRESS;
  const approved = run.stages.filter((s) => s.approve && s.approved_at).length;
  return approved * 3 + RUN_RANK[run.status];
}

export function mergeRun(known, incoming) {
  if (runProgress(incoming) >= runProgress(known)) {
    known.status = incoming.status;
    known.error = incoming.error ?? known.error;
    known.finished_at = incoming.finished_at ?? known.finished_at;
    known.awaiting_stage = incoming.awaiting_stage;
    known.awaiting_since = incoming.awaiting_since;
  }
  if (tokens(incoming.usage) >= tokens(known.usage)) known.usage = incoming.usage;
  known.assistant_message_id = incoming.assistant_message_id ?? known.assistant_message_id;
  known.cancel_requested = known.cancel_requested || incoming.cancel_requested;
  incoming.stages.forEach((stage, i) => {
    if (known.stages[i] && known.stages[i].name === stage.name) mergeStage(known.stages[i], stage);
    else known.stages[i] = stage;
  });
}

/**
 * Apply one run or stage event to a run; returns whether anything changed. meta: the
 * event's {seq, epoch}, when known (a stage's text from a snapshot already holds the
 * stage's events up to its partial_seq).
 */
export function applyRunEvent(run, name, data, ts, meta = null) {
  switch (name) {
    case "run.started":
      return setRunStatus(run, "running");
    case "run.completed":
      if (data.usage) run.usage = normUsage(data.usage);
      if (data.message?.message_id) run.assistant_message_id = data.message.message_id;
      return setRunStatus(run, "completed");
    case "run.failed":
      run.error = str(data.error) ?? run.error ?? "the run failed";
      for (const stage of run.stages) {
        // The stage's own error arrives with the REST run; the event only has the run's.
        if (stage.status === "running") Object.assign(stage, { status: "failed", finished_at: ts });
      }
      keepServerPartials(run, data.run);
      return setRunStatus(run, "failed");
    case "run.awaiting_approval":
      return awaitApproval(run, data, ts);
    case "run.approved":
      return approveGate(run, data, ts);
    case "run.cancelled":
      // Rejected, or nobody answered in time: the event says so.
      run.error = str(data.error) ?? run.error;
      run.awaiting_stage = null;
      // A running stage keeps the text it had streamed: shown as stopped, not thrown away.
      for (const stage of run.stages) {
        if (rank(stage.status) < 2) Object.assign(stage, { status: "cancelled", finished_at: ts });
      }
      keepServerPartials(run, data.run);
      return setRunStatus(run, "cancelled");
    default:
      return applyStageEvent(run, name, data, ts, meta);
  }
}

const TEXT_EVENTS = new Set(["stage.started", "stage.delta", "stage.reset"]);

/** Whether a stage's snapshot text already holds this event. */
function covered(stage, name, meta) {
  if (stage.partialSeq === null || !TEXT_EVENTS.has(name) || !Number.isInteger(meta?.seq)) return false;
  if (stage.partialEpoch && meta.epoch && stage.partialEpoch !== meta.epoch) return false;
  return meta.seq <= stage.partialSeq;
}

/** Take the stopped stages' partial text from a run document an event carries, if any. */
function keepServerPartials(run, doc) {
  if (!doc || !Array.isArray(doc.stages)) return;
  doc.stages.forEach((raw, i) => {
    const stage = run.stages[i];
    if (stage && raw?.name === stage.name && typeof raw.partial === "string" && raw.partial) {
      if (stage.status === "cancelled" || stage.status === "failed") stage.partial = raw.partial;
    }
  });
}

/** The stopped stages whose partial text is kept (cancelled or failed mid-stream). */
export function stoppedStages(run) {
  return run.stages.filter((s) => (s.status === "cancelled" || s.status === "failed") && s.partial);
}

function setRunStatus(run, status) {
  if (runProgress({ stages: run.stages, status }) < runProgress(run)) return false;
  run.status = status;
  return true;
}

/** run.awaiting_approval: the gate stage is done (with this output) and the run paused. */
function awaitApproval(run, data, ts) {
  const stage = findStage(run, data);
  if (!stage || stage.approved_at || !(run.status in RUN_RANK)) return false; // a replay
  if (rank(stage.status) < 2) completeStage(run, stage, { output: data.output }, ts);
  if (!setRunStatus(run, "awaiting_approval")) return false;
  run.awaiting_stage = stage.index;
  run.awaiting_since = str(data.since) ?? ts;
  return true;
}

/** run.approved: the gate's output as approved (maybe edited); the run goes on. */
function approveGate(run, data, ts) {
  const stage = findStage(run, data);
  if (!stage || stage.approved_at) return false;
  const before = runProgress(run);
  stage.approved_at = ts ?? "approved";
  const output = str(data.output);
  if (output !== null && output !== stage.output) {
    stage.output_original = stage.output_original ?? stage.output;
    stage.output = output;
  }
  if (run.awaiting_stage === stage.index) run.awaiting_stage = null;
  if (runProgress({ stages: run.stages, status: "queued" }) > before) run.status = "queued";
  return true;
}

/** The stage a run waits to have approved, or null. */
export function awaitingGate(run) {
  if (run.status !== "awaiting_approval") return null;
  const stage = run.awaiting_stage !== null ? run.stages[run.awaiting_stage] : null;
  return stage ?? run.stages.find((s) => s.approve && s.status === "completed" && !s.approved_at) ?? null;
}

/** A replay rebuilds the text of a stage that stopped (when the run came without it). */
function replayStopped(stage, name, data) {
  if (name === "stage.started" || name === "stage.reset") stage.partial = "";
  else if (name === "stage.delta" && typeof data.text === "string") stage.partial += data.text;
  else return false;
  return true;
}

function applyStageEvent(run, name, data, ts, meta) {
  const stage = findStage(run, data);
  if (!stage || covered(stage, name, meta)) return false;
  if (stage.status === "cancelled" || stage.status === "failed") {
    if (replayStopped(stage, name, data)) return true;
  }
  switch (name) {
    case "stage.started":
      if (rank(stage.status) > 1) return false;
      Object.assign(stage, { status: "running", partial: "", gap: false, nextModel: null, partialSeq: null });
      stage.started_at = ts ?? stage.started_at;
      if (str(data.model)) stage.model = data.model;
      if (Number(data.attempt)) stage.attempts = Number(data.attempt);
      setRunStatus(run, "running");
      return true;
    case "stage.delta":
      if (rank(stage.status) > 1 || typeof data.text !== "string") return false;
      stage.status = "running";
      stage.partial += data.text;
      return true;
    case "stage.reset":
      if (rank(stage.status) > 1) return false;
      Object.assign(stage, { partial: "", gap: false });
      return true;
    case "stage.retrying":
      stage.retries.push({
        // The event numbers the attempt about to start; the list shows the one that failed.
        attempt: Math.max(1, (Number(data.attempt) || stage.retries.length + 2) - 1),
        error: str(data.error) ?? "",
        nextModel: str(data.next_model),
      });
      stage.nextModel = str(data.next_model);
      return true;
    case "stage.completed":
      return completeStage(run, stage, data, ts);
    default:
      return false;
  }
}

function completeStage(run, stage, data, ts) {
  if (rank(stage.status) > 1) return false;
  Object.assign(stage, {
    status: "completed",
    output: str(data.output) ?? stage.partial,
    model: str(data.model) ?? stage.nextModel ?? stage.model,
    usage: data.usage ? normUsage(data.usage) : stage.usage,
    finished_at: ts ?? stage.finished_at,
    partial: "",
    gap: false,
    nextModel: null,
  });
  const sum = run.stages.reduce((acc, s) => {
    acc.prompt_tokens += s.usage.prompt_tokens;
    acc.completion_tokens += s.usage.completion_tokens;
    acc.cost_usd += s.usage.cost_usd;
    return acc;
  }, normUsage(null));
  if (tokens(sum) >= tokens(run.usage)) run.usage = sum;
  return true;
}

function findStage(run, data) {
  const index = Number(data.index);
  if (Number.isInteger(index) && run.stages[index] && (!data.stage || run.stages[index].name === data.stage)) {
    return run.stages[index];
  }
  return run.stages.find((s) => s.name === data.stage) ?? null;
}
