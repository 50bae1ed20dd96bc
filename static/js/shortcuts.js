// Keyboard shortcuts (listed in the help dialog, index.html): one table, one listener.

const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** Whether a key event matches "Mod+Shift+O"-style combos (Mod = Ctrl, or ⌘ on a Mac). */
export function matches(event, combo) {
  const parts = combo.split("+");
  const key = parts.pop();
  const want = new Set(parts);
  const mod = isMac ? event.metaKey : event.ctrlKey;
  if (want.has("Mod") !== mod) return false;
  if (want.has("Shift") !== event.shiftKey) return false;
  if (want.has("Alt") !== event.altKey) return false;
  return event.key.toLowerCase() === key.toLowerCase() || event.code === key;
}

/** The combo as shown to people ("Ctrl+Shift+O", "⌘⇧O"). */
export function label(combo) {
  if (!isMac) return combo.replace("Mod", "Ctrl");
  return combo.replace("Mod+", "⌘").replace("Shift+", "⇧").replace("Alt+", "⌥");
}

/** Listen for shortcuts: bindings = [{combo, run}] (run returns false to let the key through). */
export function bindShortcuts(bindings) {
  document.addEventListener("keydown", (event) => {
    if (event.isComposing || event.defaultPrevented) return;
    for (const { combo, run } of bindings) {
      if (matches(event, combo) && run(event) !== false) {
        event.preventDefault();
        return;
      }
    }
  });
}

/**
 * The app's shortcuts and their help dialog. actions: ready() (signed in), newSession(),
 * search(), composer() (false when there is no message box).
 */
export function bindAppShortcuts({ dialog, button, ready, newSession, search, composer }) {
  const showHelp = () => {
    if (!dialog.open) dialog.showModal();
    dialog.querySelector("button[type=submit]").focus();
  };
  button.addEventListener("click", showHelp);
  for (const kbd of document.querySelectorAll("kbd[data-shortcut]")) kbd.textContent = label(kbd.dataset.shortcut);
  // Not while a dialog is open (its own keys win), nor before sign-in.
  const free = () => ready() && !document.querySelector("dialog[open]");
  bindShortcuts([
    { combo: "Mod+Shift+O", run: () => free() && (newSession(), true) },
    { combo: "Mod+K", run: () => free() && (search(), true) },
    { combo: "Mod+/", run: () => ready() && (showHelp(), true) },
    { combo: "Shift+Escape", run: () => free() && composer() },
  ]);
}
