// The long markdown answer the streaming-render benches feed (Node and Chromium alike).

/** A deterministic markdown answer of `chars` characters: headings, lists, tables, code. */
export function answer(chars) {
  const parts = [];
  let n = 0;
  for (let i = 0; parts.join("").length < chars; i++) {
    n++;
    parts.push(
      `## Part ${n}: notes on step ${i}\n\n`,
      `Some **bold** words, some *emphasis*, \`inline code\` and a [link](https://example.com/${i}). `,
      "A longer sentence follows so that paragraphs wrap over several lines in the view.\n\n",
      `1. First point of part ${n}\n2. Second point, with **weight**\n3. Third point\n\n`,
      `- a bullet\n- another bullet with \`code\`\n  continued on a second line\n\n`,
      `| item | qty | price |\n|:-----|:---:|------:|\n| tea | ${i} | 3.50 |\n| bread | 2 | 4.20 |\n\n`,
      `\`\`\`python\ndef step_${i}(x):\n    return x * ${i}  # comment\n\`\`\`\n\n`,
      "> A quote to finish the part.\n\n",
    );
  }
  return parts.join("").slice(0, chars);
}

/** Every prefix of text that ends a delta of `delta` characters, the whole text last. */
export function prefixes(text, delta) {
  const list = [];
  for (let end = delta; end < text.length + delta; end += delta) list.push(text.slice(0, end));
  return list;
}
