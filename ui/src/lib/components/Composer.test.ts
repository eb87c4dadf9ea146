import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render } from "@testing-library/svelte";
import { MAX_MESSAGE_BYTES } from "../validate";
import { message } from "../../test/fakeCore";
import Composer from "./Composer.svelte";

afterEach(cleanup);

const field = () => document.getElementById("composer") as HTMLTextAreaElement;
const send = () => document.getElementById("send") as HTMLButtonElement;

/** A composer whose drafts live in a map, as the chat store keeps them. */
function setup(extra: Record<string, unknown> = {}) {
  const drafts = new Map<number, string>();
  const onsend = vi.fn().mockResolvedValue(undefined);
  const ondraft = vi.fn((id: number, text: string) => {
    drafts.set(id, text);
    void rerender({ draft: drafts.get(current) ?? "" });
  });
  let current = 1;
  const { rerender } = render(Composer, {
    props: { conversationId: 1, draft: "", ondraft, onsend, contactName: "ada", ...extra },
  });
  const switchTo = async (id: number) => {
    current = id;
    await rerender({ conversationId: id, draft: drafts.get(id) ?? "" });
  };
  return { onsend, ondraft, drafts, switchTo, rerender };
}

describe("Composer", () => {
  it("Enter sends, Shift+Enter does not, and an input method's Enter does not", async () => {
    const { onsend } = setup();
    await fireEvent.input(field(), { target: { value: "line one" } });
    await fireEvent.keyDown(field(), { key: "Enter", shiftKey: true });
    await fireEvent.keyDown(field(), { key: "Enter", isComposing: true });
    expect(onsend).not.toHaveBeenCalled();
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsend).toHaveBeenCalledExactlyOnceWith(1, "line one");
    expect(field().value).toBe("");
  });

  it("does not send on the Enter that commits an input method's composition", async () => {
    const { onsend } = setup();
    await fireEvent.input(field(), { target: { value: "にほん" } });
    // Some engines report the committing Enter only as keyCode 229.
    await fireEvent.keyDown(field(), { key: "Enter", keyCode: 229 });
    expect(onsend).not.toHaveBeenCalled();
    // Others send it right after compositionend, with isComposing already false.
    await fireEvent.compositionStart(field());
    await fireEvent.keyDown(field(), { key: "Enter" });
    await fireEvent.compositionEnd(field());
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsend).not.toHaveBeenCalled();
    // A tick later the composition is over and Enter sends again.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsend).toHaveBeenCalledExactlyOnceWith(1, "にほん");
  });

  it("sends nothing for an empty or blank message", async () => {
    const { onsend } = setup();
    await fireEvent.keyDown(field(), { key: "Enter" });
    await fireEvent.input(field(), { target: { value: "  \n " } });
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsend).not.toHaveBeenCalled();
    expect(send().disabled).toBe(true);
  });

  it("keeps a draft per chat", async () => {
    const { switchTo, drafts } = setup();
    await fireEvent.input(field(), { target: { value: "for ada" } });
    await switchTo(2);
    expect(field().value).toBe("");
    await fireEvent.input(field(), { target: { value: "for bob" } });
    await switchTo(1);
    expect(field().value).toBe("for ada");
    expect(drafts.get(2)).toBe("for bob");
  });

  it("refuses more than 60 KiB with a clear message and sends nothing", async () => {
    const { onsend } = setup();
    await fireEvent.input(field(), { target: { value: "a".repeat(MAX_MESSAGE_BYTES + 1) } });
    expect(send().disabled).toBe(true);
    expect(document.getElementById("composer-problem")?.textContent).toMatch(/at most 60 KiB/);
    expect(field().getAttribute("aria-invalid")).toBe("true");
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsend).not.toHaveBeenCalled();
    await fireEvent.input(field(), { target: { value: "a".repeat(MAX_MESSAGE_BYTES) } });
    expect(send().disabled).toBe(false);
    expect(document.getElementById("composer-problem")?.textContent).toBe("");
  });

  it("puts the text back when sending fails, and says why", async () => {
    const onsend = vi.fn().mockRejectedValue({ kind: "invalid", message: "The chat is closed." });
    setup({ onsend });
    await fireEvent.input(field(), { target: { value: "important" } });
    await fireEvent.keyDown(field(), { key: "Enter" });
    await vi.waitFor(() => expect(field().value).toBe("important"));
    expect(document.getElementById("composer-problem")?.textContent).toBe("The message was not sent: The chat is closed.");
  });

  it("says that offline messages wait, without blocking them", async () => {
    const { onsend } = setup({ offline: true });
    expect(document.body.textContent).toContain("You are offline");
    await fireEvent.input(field(), { target: { value: "later" } });
    await fireEvent.click(send());
    expect(onsend).toHaveBeenCalledWith(1, "later");
  });

  it("edits: loads the message, Enter saves, an unchanged text just leaves edit mode", async () => {
    const onsaveedit = vi.fn().mockResolvedValue(undefined);
    const oncanceledit = vi.fn();
    const mine = message(4, 1, { direction: "outgoing", body: "typo hree" });
    setup({ editing: mine, onsaveedit, oncanceledit, draft: "kept draft" });
    await vi.waitFor(() => expect(field().value).toBe("typo hree"));
    expect(send().textContent?.trim()).toBe("Save");
    await fireEvent.keyDown(field(), { key: "Enter" });
    expect(onsaveedit).not.toHaveBeenCalled();
    expect(oncanceledit).toHaveBeenCalledTimes(1);

    await fireEvent.input(field(), { target: { value: "typo here" } });
    await fireEvent.keyDown(field(), { key: "Enter" });
    await vi.waitFor(() => expect(onsaveedit).toHaveBeenCalledWith(mine, "typo here"));
    await fireEvent.keyDown(field(), { key: "Escape" });
    expect(oncanceledit).toHaveBeenCalledTimes(3);
  });
});
