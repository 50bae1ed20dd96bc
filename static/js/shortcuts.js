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
