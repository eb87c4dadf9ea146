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
});
