// Branches of a conversation (docs/http-api.md, "Branches"): pure helpers over the
// messages a tab knows. Each message names the previous one on its branch (parent_id);
// the session shows the branch ending at its head.

const parentOf = (message) => message?.parent_id ?? null;

/** The branch ending at head, oldest first, following parent_id through known messages. */
export function branchPath(messages, head) {
  const path = [];
  const seen = new Set();
  for (let id = head; id && messages.has(id) && !seen.has(id); id = parentOf(messages.get(id))) {
    seen.add(id);
    path.push(messages.get(id));
  }
  return path.reverse();
}

/**
 * The head once a new message is stored: a message whose parent is the head extends the
 * selected branch (the server moves its head the same way); any other (an edit, an
 * answer on another branch) leaves it where it is.
 */
export function headAfter(head, message) {
  if (!message || typeof message.message_id !== "string") return head;
  return head === null || parentOf(message) === head ? message.message_id : head;
}

const byCreated = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0);

/**
 * The message's alternatives, itself included, oldest first: the longest list the server
 * gave for any of them (sibling_ids), then those only this tab has seen since (an answer
 * that just arrived), by time.
 */
export function siblingIds(messages, message) {
  const parent = parentOf(message);
  const known = [...messages.values()].filter((m) => parentOf(m) === parent);
  if (!known.some((m) => m.message_id === message.message_id)) known.push(message);
  let listed = [];
  for (const m of known) {
    const ids = Array.isArray(m.sibling_ids) ? m.sibling_ids.filter((id) => typeof id === "string") : [];
    if (ids.length > listed.length) listed = ids;
  }
  const newer = known.filter((m) => !listed.includes(m.message_id)).sort(byCreated);
  return [...listed, ...newer.map((m) => m.message_id)];
}

/** "2/3" for a switcher, or null when the message has no alternative. */
export function siblingPosition(messages, message) {
  const ids = siblingIds(messages, message);
  if (ids.length < 2) return null;
  const index = ids.indexOf(message.message_id);
  return { ids, index, label: `${index + 1}/${ids.length}` };
}
