// Browser notifications: a run of the open session completing, failing or waiting for
// approval while the tab is in the background (docs/webhooks.md, "Browser notifications").
//
// The permission is asked only from the switch in the sidebar (a click: the gesture
// browsers require), never on load. The choice is kept in localStorage. Clicking a
// notification focuses the tab on its session.

const KEY = "chorus.notify";

/** What each notified event says. */
export const NOTIFIED = {
  "run.completed": { title: "Answer ready", verb: "has an answer" },
  "run.failed": { title: "Run failed", verb: "has a failed run" },
  "run.awaiting_approval": { title: "Approval needed", verb: "is waiting for your approval" },
};

/**
 * The notification to show for a session event, or null (a pure function).
 *
 * ctx: enabled (the switch), permission (Notification.permission), hidden
 * (document.hidden), sessionId (the session open in the tab), title (its title),
 * since (server-clock ms when it was opened: older events are history being replayed),
 * shown (a Set of tags already shown).
 */
export function notificationFor(ev, { enabled, permission, hidden, sessionId, title = "", since = 0, shown = new Set() }) {
  if (!enabled || permission !== "granted" || !hidden) return null;
  const kind = NOTIFIED[ev?.name];
  if (!kind || !ev.run_id || ev.session_id !== sessionId) return null;
  const at = Date.parse(ev.ts ?? "");
  if (Number.isNaN(at) || at < since) return null;
  const tag = `${ev.run_id}:${ev.name}`;
  if (shown.has(tag)) return null;
  const name = title.trim() || "Your session";
  return { title: `Chorus: ${kind.title}`, body: `${name} ${kind.verb}.`, tag, sessionId };
}

function supported() {
  return typeof window !== "undefined" && "Notification" in window;
}

export function savedChoice() {
  try {
    return localStorage.getItem(KEY) === "on";
  } catch {
    return false;
  }
}

function remember(on) {
  try {
    localStorage.setItem(KEY, on ? "on" : "off");
  } catch {
    // private mode: the choice lasts for this page only
  }
}

export class Notifier {
  /** onOpen(sessionId): show that session (the notification was clicked). */
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.enabled = supported() && savedChoice();
    this.shown = new Set();
  }

  /** Wire the switch (a checkbox); hidden where the browser has no notifications. */
  bindSwitch(input, wrapper) {
    if (!supported()) {
      wrapper.hidden = true;
      return;
    }
    input.checked = this.enabled && Notification.permission === "granted";
    input.addEventListener("change", async () => {
      if (!input.checked) {
        this.enabled = false;
        remember(false);
        return;
      }
      const permission =
        Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
      this.enabled = permission === "granted";
      input.checked = this.enabled;
      remember(this.enabled);
    });
  }

  /** Consider one event of the open session (ctx: sessionId, title, since). */
  onEvent(ev, ctx) {
    if (!supported()) return;
    const note = notificationFor(ev, {
      ...ctx,
      enabled: this.enabled,
      permission: Notification.permission,
      hidden: document.hidden,
      shown: this.shown,
    });
    if (!note) return;
    this.shown.add(note.tag);
    const shown = new Notification(note.title, { body: note.body, tag: note.tag });
    shown.addEventListener("click", () => {
      window.focus();
      this.onOpen(note.sessionId);
      shown.close();
    });
  }
}
