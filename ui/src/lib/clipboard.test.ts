import { afterEach, describe, expect, it, vi } from "vitest";
import { copyText } from "./clipboard";

const original = Object.getOwnPropertyDescriptor(navigator, "clipboard");

function setClipboard(value: unknown) {
  Object.defineProperty(navigator, "clipboard", { configurable: true, value });
}

afterEach(() => {
  if (original) Object.defineProperty(navigator, "clipboard", original);
  else delete (navigator as { clipboard?: unknown }).clipboard;
  delete (document as { execCommand?: unknown }).execCommand;
});

describe("copyText", () => {
  it("uses the Clipboard API when there is one", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    setClipboard({ writeText });
    await copyText("<b>hi</b>");
    expect(writeText).toHaveBeenCalledWith("<b>hi</b>");
  });

  it("falls back to a hidden textarea and the copy command, and cleans up", async () => {
    setClipboard({ writeText: vi.fn().mockRejectedValue(new Error("denied")) });
    let copied = "";
    const execCommand = vi.fn(() => {
      copied = (document.activeElement as HTMLTextAreaElement | null)?.value ?? "";
      return true;
    });
    Object.defineProperty(document, "execCommand", { configurable: true, value: execCommand });
    const button = document.createElement("button");
    document.body.append(button);
    button.focus();

    await copyText("line 1\nline <2>");

    expect(execCommand).toHaveBeenCalledWith("copy");
    expect(copied).toBe("line 1\nline <2>");
    expect(document.querySelector("textarea")).toBeNull();
    expect(document.activeElement).toBe(button);
    button.remove();
  });

  it("rejects when nothing can copy", async () => {
    setClipboard(undefined);
    await expect(copyText("x")).rejects.toThrow(/could not be copied/);
  });
});
