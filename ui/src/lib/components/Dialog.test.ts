import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render } from "@testing-library/svelte";
import { flushSync } from "svelte";
import ConfirmDialog from "./ConfirmDialog.svelte";
import DialogHost from "../../test/DialogHost.svelte";

afterEach(cleanup);

describe("Dialog (through ConfirmDialog)", () => {
  it("moves focus in, keeps it in, makes the page inert, and gives focus back on close", async () => {
    const opener = document.createElement("button");
    opener.textContent = "Open";
    document.body.append(opener);
    opener.focus();
    const onclose = vi.fn();
    const onconfirm = vi.fn().mockResolvedValue(undefined);
    const { unmount, container } = render(ConfirmDialog, {
      props: { title: "Delete?", message: "Gone for good.", confirmLabel: "Delete", onconfirm, onclose },
    });
    const dialog = document.querySelector("[role=dialog]") as HTMLElement;
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(document.getElementById(dialog.getAttribute("aria-labelledby") ?? "")?.textContent).toBe("Delete?");
    expect(document.getElementById(dialog.getAttribute("aria-describedby") ?? "")?.textContent).toBe("Gone for good.");
    // Focus starts on the harmless choice.
    expect(document.activeElement?.textContent?.trim()).toBe("Cancel");
    // Everything else on the page is inert while it is open.
    expect(opener.hasAttribute("inert")).toBe(true);
    expect(container.hasAttribute("inert")).toBe(true);
    expect(dialog.closest("[inert]")).toBeNull();

    const [cancel, confirm] = Array.from(dialog.querySelectorAll("button"));
    await fireEvent.keyDown(cancel as HTMLElement, { key: "Tab", shiftKey: true });
    expect(document.activeElement).toBe(confirm);
    await fireEvent.keyDown(confirm as HTMLElement, { key: "Tab" });
    expect(document.activeElement).toBe(cancel);
    await fireEvent.keyDown(cancel as HTMLElement, { key: "Escape" });
    expect(onclose).toHaveBeenCalledTimes(1);

    flushSync(() => unmount());
    expect(opener.hasAttribute("inert")).toBe(false);
    expect(document.activeElement).toBe(opener);
    opener.remove();
  });

  it("shows the core's refusal and stays open", async () => {
    const onclose = vi.fn();
    render(ConfirmDialog, {
      props: {
        title: "Delete?",
        message: "Gone.",
        confirmLabel: "Delete",
        onconfirm: () => Promise.reject({ kind: "offline", message: "Latch is offline." }),
        onclose,
      },
    });
    await fireEvent.click(document.querySelector(".confirm") as HTMLElement);
    await vi.waitFor(() => expect(document.querySelector("[role=alert]")?.textContent).toBe("Latch is offline."));
    expect(onclose).not.toHaveBeenCalled();
  });

  it("leaves the page around it intact when it closes, and can open again", async () => {
    render(DialogHost);
    expect(document.querySelectorAll("[role=dialog]")).toHaveLength(1);
    await fireEvent.keyDown(document.querySelector("[role=dialog]") as HTMLElement, { key: "Escape" });
    expect(document.querySelector("[role=dialog]")).toBeNull();
    expect(document.querySelector(".backdrop")).toBeNull();
    expect(document.getElementById("before")).toBeTruthy();
    expect(document.getElementById("after")).toBeTruthy();
    expect(document.querySelector("[inert]")).toBeNull();

    await fireEvent.click(document.getElementById("reopen") as HTMLElement);
    expect(document.querySelectorAll("[role=dialog]")).toHaveLength(1);
    expect(document.getElementById("after")?.closest("[inert]")).toBeTruthy();
  });
});
