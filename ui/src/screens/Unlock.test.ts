import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import { FakeCore, ME } from "../test/fakeCore";
import Unlock from "./Unlock.svelte";

let core: FakeCore;

beforeEach(() => {
  core = new FakeCore().install();
});

afterEach(() => {
  cleanup();
  clearMocks();
});

const field = () => document.getElementById("unlock-passphrase") as HTMLInputElement;
const unlock = () => fireEvent.click(document.getElementById("unlock") as HTMLButtonElement);

describe("Unlock", () => {
  it("refuses a wrong passphrase, says so and keeps focus in the field with its text selected", async () => {
    const onunlocked = vi.fn();
    render(Unlock, { props: { name: "ada", onunlocked } });
    expect(document.activeElement).toBe(field());
    expect(document.body.textContent).toContain("ada");

    await fireEvent.input(field(), { target: { value: "wrong horse" } });
    await unlock();
    await vi.waitFor(() =>
      expect(document.getElementById("unlock-error")?.textContent).toBe("That passphrase is not right."),
    );
    expect(core.callsOf("unlock_profile")).toEqual([{ passphrase: "wrong horse" }]);
    expect(document.activeElement).toBe(field());
    expect(field().selectionStart).toBe(0);
    expect(field().selectionEnd).toBe("wrong horse".length);
    expect(field().getAttribute("aria-invalid")).toBe("true");
    expect(onunlocked).not.toHaveBeenCalled();

    await fireEvent.input(field(), { target: { value: "correct horse" } });
    await unlock();
    await vi.waitFor(() => expect(onunlocked).toHaveBeenCalledWith(ME));
  });

  it("asks for a passphrase before calling the core", async () => {
    render(Unlock, { props: { name: "ada", onunlocked: vi.fn() } });
    await unlock();
    expect(document.getElementById("unlock-error")?.textContent).toBe("Enter your passphrase.");
    expect(core.callsOf("unlock_profile")).toEqual([]);
  });

  it("after a timeout asks startup again and goes where it says", async () => {
    core.on("unlock_profile", () => {
      throw { kind: "timeout", message: "Latch's core did not answer in time." };
    });
    const onunlocked = vi.fn();
    const onstartup = vi.fn();
    render(Unlock, { props: { name: "ada", onunlocked, onstartup } });
    await fireEvent.input(field(), { target: { value: "correct horse" } });
    // Still locked: the timeout is said, and the field is ready to try again.
    core.startup = { state: "locked", name: "ada" };
    await unlock();
    await vi.waitFor(() =>
      expect(document.getElementById("unlock-error")?.textContent).toBe("Latch's core did not answer in time."),
    );
    expect(core.callsOf("startup")).toHaveLength(1);
    expect(onstartup).not.toHaveBeenCalled();

    // The core finished unlocking after the UI stopped waiting.
    core.startup = { state: "ready", me: ME };
    await unlock();
    await vi.waitFor(() => expect(onstartup).toHaveBeenCalledWith({ state: "ready", me: ME }));
    expect(core.callsOf("startup")).toHaveLength(2);
  });
});
