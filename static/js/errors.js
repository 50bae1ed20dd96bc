// Human sentences for what went wrong in a run. Pure (no DOM).
//
// Workers report failures in a technical form ("HTTP 500: Error code: 500 - …",
// "agent 'draft': every model failed (demo, demo-backup) after 4 attempt(s); last error:
// …", "stage draft failed: …"). The UI shows one short sentence per failed stage, and
// the raw texts — each once — behind a disclosure.

const STATUS = /\bHTTP (\d{3})\b/;

/** What a raw provider error means, as a clause: "the model provider kept failing (HTTP 500)". */
export function reason(raw) {
  const text = String(raw || "");
  const last = text.includes("last error:") ? text.slice(text.lastIndexOf("last error:")) : text;
  const status = Number(STATUS.exec(last)?.[1] ?? STATUS.exec(text)?.[1]);
  if (/daily budget is spent/i.test(text)) return "the daily budget is spent";
  if (/deadline/.test(text) && !status) return "it ran out of time";
  if (status === 429) return "the model provider is limiting requests (HTTP 429)";
  if (status === 401 || status === 403) return `the model provider refused our credentials (HTTP ${status})`;
  if (status >= 500) return `the model provider kept failing (HTTP ${status})`;
  if (status >= 400) return `the model provider refused the request (HTTP ${status})`;
  if (/timed out|timeout/i.test(last)) return "the model took too long to answer";
  if (/stream broken|broken/i.test(last)) return "the model's answer was cut off";
  if (/connection failed|connect/i.test(last)) return "the model provider could not be reached";
  if (/cancelled/i.test(last)) return "it was cancelled";
  return "something went wrong";
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** The line shown while a stage retries: "The model provider kept failing (HTTP 500). Retrying with demo-backup…" */
export function retryingSentence(retry) {
  const next = retry.nextModel ? `Retrying with ${retry.nextModel}…` : "Retrying…";
  return `${capital(reason(retry.error))}. ${next}`;
}

/** The one sentence for a failed stage: "The draft stage failed: the model provider kept failing (HTTP 500)." */
export function stageFailedSentence(stage) {
  return `The ${stage.name} stage failed: ${reason(stage.error)}.`;
}

/** The run's own line, which never repeats a stage's sentence. */
export function runFailedSentence(run) {
  const stage = run.stages.find((s) => s.status === "failed");
  if (stage) return `The run stopped at the ${stage.name} stage. Retry picks up from there.`;
  return `The run failed: ${reason(run.error)}.`;
}

/**
 * The raw details, each distinct text once: a stage's failed attempts (grouped when they
 * failed the same way: "draft, attempts 1, 2, 3"), then each failed stage's error, then
 * the run's error unless it only repeats a stage's.
 */
export function failureDetails(run) {
  const lines = [];
  const seen = new Set();
  const add = (label, text) => {
    const value = String(text || "").trim();
    if (!value || seen.has(value)) return;
    seen.add(value);
    lines.push({ label, text: value });
  };
  for (const stage of run.stages) {
    const attempts = new Map(); // error text -> attempt numbers, in order
    for (const retry of stage.retries) {
      const text = String(retry.error || "").trim();
      if (text) attempts.set(text, [...(attempts.get(text) ?? []), retry.attempt]);
    }
    for (const [text, numbers] of attempts) {
      const which = [...new Set(numbers)];
      add(`${stage.name}, attempt${which.length > 1 ? "s" : ""} ${which.join(", ")}`, text);
    }
    if (stage.status === "failed") add(`${stage.name} stage`, stage.error);
  }
  const runError = String(run.error || "");
  const repeats = [...seen].some((text) => runError.endsWith(text));
  if (!repeats) add("run", runError);
  return lines;
}
