// Theme: system (follows prefers-color-scheme), light or dark; kept in localStorage.

const KEY = "chorus.theme";
export const THEMES = ["system", "light", "dark"];

export function savedTheme() {
  try {
    const value = localStorage.getItem(KEY);
    return THEMES.includes(value) ? value : "system";
  } catch {
    return "system";
  }
}

/** Apply a theme to the page (data-theme on <html>; CSS does the rest) and remember it. */
export function applyTheme(theme) {
  const value = THEMES.includes(theme) ? theme : "system";
  if (value === "system") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.dataset.theme = value;
  try {
    localStorage.setItem(KEY, value);
  } catch {
    // private mode: the choice lasts for this page only
  }
  return value;
}

/** Wire a <select> of themes. */
export function bindThemeSelect(select) {
  select.value = applyTheme(savedTheme());
  select.addEventListener("change", () => applyTheme(select.value));
}
