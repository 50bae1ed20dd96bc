// The page around the conversation: banners that clear themselves, the demo notice,
// screen-reader announcements and the empty state. DOM only, no API calls.

import { byTestId, setText, show } from "./util/dom.js";

const DEMO_DISMISSED = "chorus.demoBannerDismissed";

function remembered(key) {
  try {
    return localStorage.getItem(key) === "1";
  } catch {
    return false;
  }
}

function remember(key) {
  try {
    localStorage.setItem(key, "1");
  } catch {
    // private mode: remembered for this page only
  }
}

/** The error banner: each message names its cause (a key), so it can go when that is fixed. */
export class ErrorBanner {
  constructor(root) {
    this.root = root;
    this.text = byTestId(root, "global-error-text");
    this.retry = byTestId(root, "global-error-retry");
    this.key = null;
    byTestId(root, "global-error-dismiss").addEventListener("click", () => this.hide());
  }

  show(message, retry = null, key = "general") {
    this.key = key;
    setText(this.text, message);
    show(this.retry, Boolean(retry));
    this.retry.onclick = retry
      ? () => {
          this.hide();
          retry();
        }
      : null;
    show(this.root, true);
  }

  hide() {
    this.key = null;
    show(this.root, false);
  }

  /** Take the banner down if it is about this cause. */
  clear(key) {
    if (this.key === key) this.hide();
  }
}

/** The demo-model notice, until dismissed (remembered in this browser). */
export function bindDemoBanner(banner, demoModel) {
  show(banner, demoModel && !remembered(DEMO_DISMISSED));
  byTestId(banner, "demo-dismiss").addEventListener("click", () => {
    show(banner, false);
    remember(DEMO_DISMISSED);
  });
}

/** Say things to screen readers once; what is said in the same moment goes together. */
export function createAnnouncer(region) {
  let queued = [];
  let timer = null;
  return (text) => {
    queued.push(text);
    if (timer) return;
    region.textContent = ""; // cleared first, so the same sentence twice is heard twice
    timer = setTimeout(() => {
      region.textContent = queued.join(" ");
      queued = [];
      timer = null;
    }, 50);
  };
}

/** The empty state says what helps: a first run, a phone, or a list to choose from. */
export function updateEmptyState(root, { firstRun, narrow }) {
  setText(byTestId(root, "no-session-title"), firstRun ? "Welcome to Chorus" : "Start a conversation");
  let text = narrow ? "Open your sessions with the ☰ button, or start a new one." : "Choose a session on the left, or start a new one.";
  if (firstRun) text = "You have no sessions yet. Start one and ask your first question.";
  setText(byTestId(root, "no-session-text"), text);
  show(byTestId(root, "first-run-hint"), firstRun);
}

/** The connection indicator; the retry countdown ticks outside the status region. */
export class ConnectionStatus {
  constructor(root) {
    this.root = root;
    this.text = byTestId(root, "conn-status-text");
    this.retry = byTestId(root, "conn-retry");
    this.timer = null;
  }

  show(state, retryInMs) {
    this.root.dataset.state = state;
    setText(this.text, { online: "Online", connecting: "Connecting…" }[state] ?? "Offline");
    clearInterval(this.timer);
    const retryAt = Date.now() + (retryInMs ?? 0);
    const countdown = () => {
      const left = Math.ceil((retryAt - Date.now()) / 1000);
      setText(this.retry, state === "offline" && left > 0 ? `· retrying in ${left} s` : "");
    };
    countdown();
    if (state === "offline" && retryInMs) this.timer = setInterval(countdown, 1000);
  }
}
