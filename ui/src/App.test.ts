import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import App from "./App.svelte";
import { COMMAND_TIMEOUT_MS } from "./lib/api";
import { FakeCore, ME } from "./test/fakeCore";
import { withViewportHeight } from "./test/layout";

withViewportHeight();

afterEach(() => {
  cleanup();
  clearMocks();
  vi.useRealTimers();
});

describe("App", () => {
  it("shows first run for a new install, then the messenger once created", async () => {
    const core = new FakeCore().install();
    core.startup = { state: "new", default_relay_url: "wss://relay.test", keyring: true };
    render(App);
    const name = (await screen.findByLabelText("Profile name")) as HTMLInputElement;
    await fireEvent.input(name, { target: { value: "ada" } });
    await fireEvent.input(screen.getByLabelText("Handle"), { target: { value: "ada" } });
    await fireEvent.click(screen.getByRole("button", { name: "Create profile" }));
    await vi.waitFor(() => expect(document.getElementById("me-handle")?.textContent).toBe("ada"));
    expect(core.callsOf("subscribe")).toHaveLength(1);
  });

  it("when creating the profile times out, asks startup again and shows what it found", async () => {
    const core = new FakeCore().install();
    core.startup = { state: "new", default_relay_url: "wss://relay.test", keyring: true };
    core.on("create_profile", (args) => {
      // The core made the profile, but the answer came too late.
      core.startup = { state: "ready", me: { name: String(args.name), handle: String(args.handle), relay_url: "wss://relay.test" } };
      throw { kind: "timeout", message: "Latch's core did not answer in time." };
    });
    render(App);
    const name = (await screen.findByLabelText("Profile name")) as HTMLInputElement;
    await fireEvent.input(name, { target: { value: "ada" } });
    await fireEvent.input(screen.getByLabelText("Handle"), { target: { value: "ada" } });
    await fireEvent.click(screen.getByRole("button", { name: "Create profile" }));
    await vi.waitFor(() => expect(document.getElementById("me-handle")?.textContent).toBe("ada"));
    expect(core.callsOf("startup")).toHaveLength(2);
  });

  it("when a retry finds a passphrase-protected profile already made, asks for its passphrase", async () => {
    const core = new FakeCore().install();
    core.startup = { state: "new", default_relay_url: "wss://relay.test", keyring: true };
    core.on("create_profile", () => {
      core.startup = { state: "locked", name: "ada" };
      throw { kind: "invalid", message: "This Latch already has a profile on this computer." };
    });
    render(App);
    const name = (await screen.findByLabelText("Profile name")) as HTMLInputElement;
    await fireEvent.input(name, { target: { value: "ada" } });
    await fireEvent.input(screen.getByLabelText("Handle"), { target: { value: "ada" } });
    await fireEvent.click(screen.getByRole("button", { name: "Create profile" }));
    expect(await screen.findByLabelText("Passphrase")).toBeTruthy();
  });

  it("asks a locked profile for its passphrase", async () => {
    const core = new FakeCore().install();
    core.startup = { state: "locked", name: "ada" };
    render(App);
    expect(await screen.findByLabelText("Passphrase")).toBeTruthy();
    expect(document.getElementById("me-handle")).toBeNull();
  });

  it("opens a ready profile straight into the messenger", async () => {
    new FakeCore().install();
    render(App);
    await vi.waitFor(() => expect(document.getElementById("me-handle")?.textContent).toBe(ME.handle));
    expect(document.getElementById("connection-state")?.textContent).toBe("connecting");
  });

  it("says why it could not start, as text, and tries again", async () => {
    const hostile = '<img src=x onerror="alert(1)"> no keyring';
    const core = new FakeCore().install();
    core.on("startup", () => {
      throw { kind: "keyring", message: hostile };
    });
    render(App);
    const error = await screen.findByRole("alert");
    expect(error.textContent).toBe(hostile);
    expect(document.querySelector("img")).toBeNull();

    core.on("startup", () => ({ state: "locked", name: "ada" }));
    await fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByLabelText("Passphrase")).toBeTruthy();
  });

  it("gives up on a core that never answers, with a clear message", async () => {
    vi.useFakeTimers();
    const core = new FakeCore().install();
    core.on("startup", () => new Promise(() => {}));
    render(App);
    await vi.advanceTimersByTimeAsync(COMMAND_TIMEOUT_MS - 1);
    expect(screen.queryByText(/did not answer/)).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(screen.getByRole("alert").textContent).toBe("Latch's core did not answer in time.");
  });
});
