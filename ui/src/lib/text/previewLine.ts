// One line of a message for the conversation list and search results: whitespace runs become
// one space and a long message is cut before it is measured, so a 1 MB message costs what a
// short one does. It stays text; the list renders it as a text node.

/** Characters kept before cutting; the list's ellipsis hides what does not fit anyway. */
export const PREVIEW_CHARS = 160;

export function previewLine(body: string, max = PREVIEW_CHARS): string {
  // Look at a little more than needed, so collapsing whitespace still leaves `max` characters.
  const head = body.slice(0, max * 4);
  const line = head.replace(/\s+/g, " ").trim();
  const chars = Array.from(line);
  const cut = chars.length > max || head.length < body.length;
  return cut ? `${chars.slice(0, max).join("").trimEnd()}…` : line;
}
