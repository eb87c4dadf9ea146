import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import type { Startup } from "../lib/types";
import { FakeCore, ME } from "../test/fakeCore";
import FirstRun from "./FirstRun.svelte";

let core: FakeCore;

beforeEach(() => {
  core = new FakeCore().install();
});

afterEach(() => {
  cleanup();
  clearMocks();
});

const field = (id: string) => document.getElementById(id) as HTMLInputElement;

async function type(id: string, value: string) {
  await fireEvent.input(field(id), { target: { value } });
}

function setup(keyring = true, onstartup?: (found: Startup) => void) {
  const oncreated = vi.fn();
  render(FirstRun, { props: { defaultRelayUrl: "wss://relay.latch.example", keyring, oncreated, onstartup } });
  return oncreated;
}

async function fillAndCreate() {
  await type("profile-name", "ada");
  await type("profile-handle", "ada");
  await create();
}

const create = () => fireEvent.click(document.getElementById("create-profile") as HTMLButtonElement);
const errorText = () => document.getElementById("first-run-error")?.textContent?.trim();

describe("FirstRun", () => {
  it("prefills the relay, explains where keys live and focuses the first field", () => {
    setup();
    expect(field("relay-url").value).toBe("wss://relay.latch.example");
    const text = document.body.textContent?.replace(/\s+/g, " ");
    expect(text).toContain(
      "Your identity key and the key of your encrypted message database are kept in your system keyring (Secret Service)",
    );
    expect(text).toContain("messages are stored in an encrypted SQLCipher database; the relay only sees ciphertext");
    expect(document.activeElement).toBe(field("profile-name"));
    expect(field("use-passphrase").checked).toBe(false);
    expect(document.getElementById("passphrase")).toBeNull();
    expect(document.getElementById("first-run-error")?.getAttribute("role")).toBe("alert");
  });

  it("refuses bad names and handles with the reason, focusing the field, and sends nothing", async () => {
    setup();
    await type("profile-name", "Ada Lovelace");
    await type("profile-handle", "a-b");
    await create();
    // Upper case is folded as typed; the space is still not allowed.
    expect(field("profile-name").value).toBe("ada lovelace");
    expect(errorText()).toBe("Use only lower-case letters, digits, _ and -.");
    expect(field("profile-name").getAttribute("aria-invalid")).toBe("true");
    expect(document.activeElement).toBe(field("profile-name"));

    await type("profile-name", "ada");
    await create();
    expect(errorText()).toBe("Use only lower-case letters, digits, _ and dots.");
    expect(document.activeElement).toBe(field("profile-handle"));

    await type("profile-handle", "ad");
    await create();
    expect(errorText()).toBe("A handle has at least 3 characters.");
    expect(core.callsOf("create_profile")).toEqual([]);
  });

  it("creates the profile with the keyring, showing progress, and hands over the new profile", async () => {
    let answer: (value: unknown) => void = () => {};
    core.on("create_profile", (args) => new Promise((resolve) => (answer = () => resolve({ name: args.name, handle: args.handle, relay_url: args.relayUrl }))));
    const oncreated = setup();
    await type("profile-name", "ada");
    await type("profile-handle", "Ada.L");
    await type("relay-url", " ws://127.0.0.1:8443 ");
    await create();

    const button = document.getElementById("create-profile") as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.textContent?.trim()).toBe("Creating keys and registering…");
    expect(core.callsOf("create_profile")).toEqual([
      { name: "ada", handle: "ada.l", relayUrl: "ws://127.0.0.1:8443", passphrase: null },
    ]);
    // A second click while it runs sends nothing more.
    await create();
    expect(core.callsOf("create_profile")).toHaveLength(1);

    answer(null);
    await vi.waitFor(() => expect(oncreated).toHaveBeenCalledWith({ name: "ada", handle: "ada.l", relay_url: "ws://127.0.0.1:8443" }));
  });

  it("with a passphrase: at least 8 characters, both the same, then sent", async () => {
    const oncreated = setup();
    await type("profile-name", "ada");
    await type("profile-handle", "ada");
    await fireEvent.click(field("use-passphrase"));
    await type("passphrase", "short");
    await create();
    expect(errorText()).toBe("Use at least 8 characters.");

    await type("passphrase", "correct horse");
    await type("passphrase-confirm", "correct hoarse");
    await create();
    expect(errorText()).toBe("The two passphrases do not match.");
    expect(document.activeElement).toBe(field("passphrase-confirm"));
    expect(core.callsOf("create_profile")).toEqual([]);

    await type("passphrase-confirm", "correct horse");
    await create();
    await vi.waitFor(() => expect(oncreated).toHaveBeenCalled());
    expect(core.callsOf("create_profile")[0]?.passphrase).toBe("correct horse");
  });

  it("without a keyring the passphrase is required and says why", () => {
    setup(false);
    expect(field("use-passphrase").checked).toBe(true);
    expect(field("use-passphrase").disabled).toBe(true);
    expect(document.getElementById("no-keyring")?.textContent).toContain("No system keyring (Secret Service) is available");
    expect(field("passphrase")).toBeTruthy();
    expect(field("passphrase-confirm")).toBeTruthy();
  });

  it("shows the core's error as text and puts focus on the handle when it is taken", async () => {
    const oncreated = setup();
    await type("profile-name", "ada");
    await type("profile-handle", "taken");
    await create();
    await vi.waitFor(() => expect(errorText()).toBe("That handle is already taken. Choose another."));
    expect(document.activeElement).toBe(field("profile-handle"));
    expect((document.getElementById("create-profile") as HTMLButtonElement).disabled).toBe(false);
    expect(oncreated).not.toHaveBeenCalled();
  });

  it("after a timeout asks startup again and goes where it says: the profile may exist after all", async () => {
    core.on("create_profile", () => {
      throw { kind: "timeout", message: "Latch's core did not answer in time." };
    });
    core.startup = { state: "ready", me: ME };
    const onstartup = vi.fn();
    setup(true, onstartup);
    await fillAndCreate();
    await vi.waitFor(() => expect(onstartup).toHaveBeenCalledWith({ state: "ready", me: ME }));
    expect(core.callsOf("startup")).toHaveLength(1);
    expect(errorText()).toBe("");
  });

  it("when a retry finds the profile already there, goes to the screen startup names", async () => {
    core.on("create_profile", () => {
      throw { kind: "invalid", message: "This Latch already has a profile on this computer." };
    });
    core.startup = { state: "locked", name: "ada" };
    const onstartup = vi.fn();
    setup(true, onstartup);
    await fillAndCreate();
    await vi.waitFor(() => expect(onstartup).toHaveBeenCalledWith({ state: "locked", name: "ada" }));
  });

  it("stays and says why when startup still finds no profile", async () => {
    core.on("create_profile", () => {
      throw { kind: "timeout", message: "Latch's core did not answer in time." };
    });
    core.startup = { state: "new", default_relay_url: "wss://relay.latch.example", keyring: true };
    const onstartup = vi.fn();
    const oncreated = setup(true, onstartup);
    await fillAndCreate();
    await vi.waitFor(() => expect(errorText()).toBe("Latch's core did not answer in time."));
    expect(core.callsOf("startup")).toHaveLength(1);
    expect(onstartup).not.toHaveBeenCalled();
    expect(oncreated).not.toHaveBeenCalled();
    expect((document.getElementById("create-profile") as HTMLButtonElement).disabled).toBe(false);
    // Other errors do not ask startup.
    core.on("create_profile", () => {
      throw { kind: "invalid", message: "The relay address must start with ws:// or wss://." };
    });
    await create();
    await vi.waitFor(() => expect(errorText()).toBe("The relay address must start with ws:// or wss://."));
    expect(core.callsOf("startup")).toHaveLength(1);
  });

  it("keeps the storage check under About storage", async () => {
    setup();
    const details = document.getElementById("about-storage") as HTMLDetailsElement;
    expect(details.querySelector("summary")?.textContent).toBe("About storage");
    await fireEvent.click(screen.getByRole("button", { name: "Check encrypted storage" }));
    expect(await screen.findByText("4.6.1 community")).toBeTruthy();
  });
});
