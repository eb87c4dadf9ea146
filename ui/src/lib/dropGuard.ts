// A file dropped on a webview navigates it to that file by default, which would replace Latch's
// UI with whatever was dropped. Only elements marked `data-drop-zone` may receive drops.

/** Whether a drag or drop event happened inside an element marked `data-drop-zone`. */
export function insideDropZone(target: EventTarget | null): boolean {
  return target instanceof Element && target.closest("[data-drop-zone]") !== null;
}

function guard(event: DragEvent) {
  if (insideDropZone(event.target)) return;
  event.preventDefault();
  if (event.dataTransfer) event.dataTransfer.dropEffect = "none";
}

/** Stops drops outside drop zones on `target`; returns a function that removes the guard. */
export function installDropGuard(target: Window = window): () => void {
  target.addEventListener("dragover", guard);
  target.addEventListener("drop", guard);
  return () => {
    target.removeEventListener("dragover", guard);
    target.removeEventListener("drop", guard);
  };
}
