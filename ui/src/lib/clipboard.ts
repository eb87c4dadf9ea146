// Copying a message's text. The async Clipboard API first; where it is missing or refused (an
// older webview, no permission), a hidden textarea and the old copy command. The text is only
// ever set as a value, never parsed as markup.

/** Copies `text` to the system clipboard; rejects when neither way works. */
export async function copyText(text: string): Promise<void> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return;
    }
  } catch {
    // Fall through to the older way.
  }
  if (!copyWithTextarea(text)) throw new Error("The text could not be copied.");
}

function copyWithTextarea(text: string): boolean {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.setAttribute("aria-hidden", "true");
  area.className = "clipboard-buffer";
  const previous = document.activeElement;
  document.body.append(area);
  area.focus();
  area.select();
  let copied = false;
  try {
    copied = typeof document.execCommand === "function" && document.execCommand("copy");
  } catch {
    copied = false;
  } finally {
    area.remove();
    if (previous instanceof HTMLElement) previous.focus();
  }
  return copied;
}
