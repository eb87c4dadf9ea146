import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import StorageCheck from "./StorageCheck.svelte";
import { COMMAND_TIMEOUT_MS } from "../api";

afterEach(() => {
  cleanup();
  clearMocks();
  vi.useRealTimers();
});

describe("storage check", () => {
  it("shows the SQLCipher version the core reports", async () => {
    const calls: string[] = [];
    mockIPC((cmd) => {
      calls.push(cmd);
      if (cmd === "storage_check") {
        return { cipher_version: "4.6.1 community", sqlite_version: "3.46.1" };
      }
      throw new Error(`unexpected command ${cmd}`);
    });
    render(StorageCheck);

    await fireEvent.click(screen.getByRole("button", { name: "Check encrypted storage" }));

    expect(await screen.findByText("4.6.1 community")).toBeTruthy();
    expect(screen.getByText("3.46.1")).toBeTruthy();
    expect(calls).toEqual(["storage_check"]);
  });

  it("shows a failure as text, never as markup", async () => {
    const hostile = '<img src=x onerror="alert(1)"> wrong key';
    mockIPC(() => {
      throw { kind: "storage", message: hostile };
    });
    render(StorageCheck);

    await fireEvent.click(screen.getByRole("button", { name: "Check encrypted storage" }));

    const error = await screen.findByText(/Encrypted storage is not working/);
    expect(error.textContent).toContain(hostile);
    expect(error.querySelector("img")).toBeNull();
    expect(document.querySelector("img")).toBeNull();
  });

  it("disables the button while the check runs", async () => {
    let release: (value: unknown) => void = () => {};
    mockIPC(() => new Promise((resolve) => (release = resolve)));
    render(StorageCheck);
    const button = screen.getByRole("button", { name: "Check encrypted storage" });

    await fireEvent.click(button);
    expect((screen.getByRole("button") as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByRole("button").textContent).toContain("Checking");

    release({ cipher_version: "4.6.1 community", sqlite_version: "3.46.1" });
    expect(await screen.findByText("4.6.1 community")).toBeTruthy();
    expect((screen.getByRole("button") as HTMLButtonElement).disabled).toBe(false);
  });

  it("gives up with a clear message when the core never answers", async () => {
    vi.useFakeTimers();
    mockIPC(() => new Promise(() => {}));
    render(StorageCheck);

    await fireEvent.click(screen.getByRole("button", { name: "Check encrypted storage" }));
    await vi.advanceTimersByTimeAsync(COMMAND_TIMEOUT_MS - 1);
    expect(screen.queryByText(/did not answer/)).toBeNull();
    await vi.advanceTimersByTimeAsync(1);

    expect(screen.getByText(/did not answer in time/)).toBeTruthy();
    expect((screen.getByRole("button") as HTMLButtonElement).disabled).toBe(false);
  });
});
