// Syntax highlighting: highlight.js core with the languages answers use most.

import hljs from "../../vendor/highlight/core.min.js";
import bash from "../../vendor/highlight/languages/bash.min.js";
import c from "../../vendor/highlight/languages/c.min.js";
import cpp from "../../vendor/highlight/languages/cpp.min.js";
import css from "../../vendor/highlight/languages/css.min.js";
import diff from "../../vendor/highlight/languages/diff.min.js";
import go from "../../vendor/highlight/languages/go.min.js";
import ini from "../../vendor/highlight/languages/ini.min.js";
import java from "../../vendor/highlight/languages/java.min.js";
import javascript from "../../vendor/highlight/languages/javascript.min.js";
import json from "../../vendor/highlight/languages/json.min.js";
import markdown from "../../vendor/highlight/languages/markdown.min.js";
import plaintext from "../../vendor/highlight/languages/plaintext.min.js";
import python from "../../vendor/highlight/languages/python.min.js";
import rust from "../../vendor/highlight/languages/rust.min.js";
import shell from "../../vendor/highlight/languages/shell.min.js";
import sql from "../../vendor/highlight/languages/sql.min.js";
import typescript from "../../vendor/highlight/languages/typescript.min.js";
import xml from "../../vendor/highlight/languages/xml.min.js";
import yaml from "../../vendor/highlight/languages/yaml.min.js";

const LANGUAGES = {
  bash, c, cpp, css, diff, go, ini, java, javascript, json, markdown, plaintext, python, rust,
  shell, sql, typescript, xml, yaml,
};
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);
hljs.configure({ ignoreUnescapedHTML: true });

/** Whether a language (or one of its aliases, e.g. "py", "sh", "html") is known. */
export function knownLanguage(name) {
  return Boolean(name && hljs.getLanguage(name));
}

/** Highlight a <code> element in place (its text is re-rendered as escaped spans). */
export function highlight(code, language) {
  if (!knownLanguage(language)) return false;
  const result = hljs.highlight(code.textContent, { language, ignoreIllegals: true });
  code.innerHTML = result.value; // highlight.js escapes the text it wraps
  code.classList.add("hljs");
  return true;
}
