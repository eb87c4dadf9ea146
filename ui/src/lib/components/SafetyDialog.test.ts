import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import { markVerified } from "../api";
import { MAX_IMAGE_BYTES } from "../images";
import { FakeCore, safetyReport } from "../../test/fakeCore";
import SafetyDialog from "./SafetyDialog.svelte";

let core: FakeCore;

beforeEach(() => {
  core = new FakeCore().install();
  core.safety.set(7, safetyReport(7, { contact_name: "ada" }));
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
  delete (navigator as { mediaDevices?: unknown }).mediaDevices;
});

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function setup() {
  const onclose = vi.fn();
  const onscanverified = vi.fn();
  const { rerender } = render(SafetyDialog, {
    props: {
      contactId: 7,
      contactName: "ada",
      onclose,
      onscanverified,
      setVerified: (v: boolean, digits: string) => markVerified(7, v, digits),
    },
  });
  await vi.waitFor(() => expect(byId("safety-digits")).toBeTruthy());
  return { onclose, onscanverified, rerender };
}

const digitsShown = () => byId("safety-digits").textContent?.replace(/\D/g, "");
const DIGITS = "123456789012345678901234567890123456789012345678901234567890";
const NEW_DIGITS = "999990000011111222223333344444555556666677777888889999900000";

async function chooseFile(file: File) {
  const input = byId<HTMLInputElement>("scan-image-input");
  Object.defineProperty(input, "files", { configurable: true, value: [file] });
  await fireEvent.change(input);
}

const result = () => byId("verify-result");

describe("SafetyDialog", () => {
  it("is a labelled modal with the digits, the QR code and the verification state", async () => {
    await setup();
    const dialog = screen.getByRole("dialog", { name: "Safety number with ada" });
    expect(dialog.id).toBe("safety-dialog");
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(byId("safety-digits").textContent?.replace(/\D/g, "")).toHaveLength(60);
    expect(byId("safety-qr").tagName.toLowerCase()).toBe("svg");
    expect(byId("safety-state").textContent).toContain("Not verified yet.");
    expect(document.activeElement).toBe(byId("safety-close"));
    expect(core.callsOf("safety_number")).toEqual([{ contactId: 7 }]);
  });

  it("checks a chosen image and says it verified the contact", async () => {
    const { onscanverified } = await setup();
    await chooseFile(new File([PNG], "code.png", { type: "image/png" }));
    await vi.waitFor(() => expect(result().dataset.result).toBe("verified"));
    expect(core.callsOf("verify_qr_image")).toEqual([{ contactId: 7, image: "iVBORw0KGgo=" }]);
    expect(result().getAttribute("role")).toBe("status");
    expect(result().textContent).toContain("You have verified ada's safety number");
    expect(byId("safety-state").textContent).toContain("You have verified ada.");
    expect(onscanverified).toHaveBeenCalled();
    expect(byId("clear-verification")).toBeTruthy();
    expect(byId("mark-verified")).toBeNull();
  });

  it("says clearly when the code does not match, or when there is no code", async () => {
    await setup();
    core.qrResult = "mismatch";
    await chooseFile(new File([PNG], "code.jpg", { type: "image/jpeg" }));
    await vi.waitFor(() => expect(result().dataset.result).toBe("mismatch"));
    expect(result().textContent?.replace(/\s+/g, " ")).toContain(
      "This code does not match your safety number with ada. Do not trust this chat until you compare in person.",
    );
    expect(byId("mark-verified")).toBeTruthy();

    core.qrResult = "no_code";
    await chooseFile(new File([PNG], "code.png", { type: "image/png" }));
    await vi.waitFor(() => expect(result().dataset.result).toBe("no_code"));
    expect(result().textContent?.trim()).toBe("No safety-number QR code was found in that image.");
  });

  it("refuses images over 16 MiB and other formats without asking the core", async () => {
    await setup();
    const big = new File([PNG], "huge.png", { type: "image/png" });
    Object.defineProperty(big, "size", { value: MAX_IMAGE_BYTES + 1 });
    await chooseFile(big);
    expect(screen.getByText(/larger than 16 MiB/)).toBeTruthy();
    await chooseFile(new File(["GIF89a"], "x.gif", { type: "image/gif" }));
    expect(screen.getByText("Choose a PNG or JPEG image.")).toBeTruthy();
    expect(core.callsOf("verify_qr_image")).toEqual([]);
    expect(result().dataset.result).toBeUndefined();
  });

  it("checks an image dropped on the drop zone or pasted with Ctrl+V", async () => {
    await setup();
    const zone = document.querySelector("[data-drop-zone]") as HTMLElement;
    const file = new File([PNG], "drop.png", { type: "image/png" });
    await fireEvent.drop(zone, { dataTransfer: { files: [file], items: [] } });
    await vi.waitFor(() => expect(core.callsOf("verify_qr_image")).toHaveLength(1));

    core.qrResult = "mismatch";
    const paste = new Event("paste", { bubbles: true, cancelable: true });
    Object.defineProperty(paste, "clipboardData", {
      value: { files: [], items: [{ kind: "file", getAsFile: () => file }] },
    });
    document.body.dispatchEvent(paste);
    expect(paste.defaultPrevented).toBe(true);
    await vi.waitFor(() => expect(result().dataset.result).toBe("mismatch"));
    expect(core.callsOf("verify_qr_image")).toHaveLength(2);
  });

  it("marks verified with the digits compared, and clears it", async () => {
    await setup();
    await fireEvent.click(byId("mark-verified"));
    await vi.waitFor(() => expect(byId("clear-verification")).toBeTruthy());
    expect(core.callsOf("mark_verified")).toEqual([{ contactId: 7, verified: true, digits: DIGITS }]);
    await fireEvent.click(byId("clear-verification"));
    await vi.waitFor(() => expect(byId("mark-verified")).toBeTruthy());
    expect(core.callsOf("mark_verified")[1]).toEqual({ contactId: 7, verified: false, digits: "" });
  });

  it("says so and shows the new number when the core refuses the digits as stale", async () => {
    await setup();
    // The key changed after the dialog loaded the number.
    core.safety.set(7, safetyReport(7, { contact_name: "ada", digits: NEW_DIGITS, key_change_pending: true }));
    await fireEvent.click(byId("mark-verified"));
    await vi.waitFor(() => expect(digitsShown()).toBe(NEW_DIGITS));
    expect(core.callsOf("mark_verified")).toEqual([{ contactId: 7, verified: true, digits: DIGITS }]);
    expect(screen.getByRole("alert").textContent).toBe(
      "The safety number changed while you were comparing it. Compare the new one.",
    );
    expect(byId("safety-state").textContent).toContain("ada's key changed");
    expect(byId("mark-verified")).toBeTruthy();
    // Comparing the new number and marking it works.
    await fireEvent.click(byId("mark-verified"));
    await vi.waitFor(() => expect(byId("clear-verification")).toBeTruthy());
    expect(core.lastCallOf("mark_verified")).toEqual({ contactId: 7, verified: true, digits: NEW_DIGITS });
  });

  it("keeps a pending key change pending after a scan or a mark: only accepting the key ends it", async () => {
    core.safety.set(7, safetyReport(7, { contact_name: "ada", key_change_pending: true }));
    await setup();
    await fireEvent.click(byId("mark-verified"));
    await vi.waitFor(() => expect(byId("clear-verification")).toBeTruthy());
    await fireEvent.click(byId("clear-verification"));
    await vi.waitFor(() => expect(byId("mark-verified")).toBeTruthy());
    // Not verified, and the key change is still to be accepted.
    expect(byId("safety-state").textContent).toContain("ada's key changed");

    await chooseFile(new File([PNG], "code.png", { type: "image/png" }));
    await vi.waitFor(() => expect(result().dataset.result).toBe("verified"));
    await fireEvent.click(byId("clear-verification"));
    await vi.waitFor(() => expect(byId("mark-verified")).toBeTruthy());
    expect(byId("safety-state").textContent).toContain("ada's key changed");
  });

  it("reloads the number when the contact's key changes while it is open", async () => {
    const { rerender } = await setup();
    expect(digitsShown()).toBe(DIGITS);
    core.safety.set(7, safetyReport(7, { contact_name: "ada", digits: NEW_DIGITS, key_change_pending: true }));
    await rerender({ keyChanges: 1 });
    await vi.waitFor(() => expect(digitsShown()).toBe(NEW_DIGITS));
    expect(core.callsOf("safety_number")).toHaveLength(2);
    expect(result().getAttribute("role")).toBe("status");
    expect(result().textContent).toContain("The safety number changed while this was open");
    expect(byId("safety-state").textContent).toContain("ada's key changed");
  });

  it("explains a refused camera", async () => {
    Object.defineProperty(navigator, "mediaDevices", {
      configurable: true,
      value: { getUserMedia: vi.fn().mockRejectedValue(new DOMException("denied", "NotAllowedError")) },
    });
    await setup();
    await fireEvent.click(byId("scan-camera"));
    expect(await screen.findByText(/Latch may not use the camera/)).toBeTruthy();
    expect(byId("scan-camera").textContent).toContain("Scan with camera");
  });

  it("scans camera frames until a code is read, then stops the camera", async () => {
    const stop = vi.fn();
    const getUserMedia = vi.fn().mockResolvedValue({ getTracks: () => [{ stop }] });
    Object.defineProperty(navigator, "mediaDevices", { configurable: true, value: { getUserMedia } });
    vi.spyOn(HTMLMediaElement.prototype, "play").mockResolvedValue(undefined);
    vi.spyOn(HTMLMediaElement.prototype, "readyState", "get").mockReturnValue(4);
    vi.spyOn(HTMLVideoElement.prototype, "videoWidth", "get").mockReturnValue(320);
    vi.spyOn(HTMLVideoElement.prototype, "videoHeight", "get").mockReturnValue(240);
    vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue({ drawImage: vi.fn() } as never);
    vi.spyOn(HTMLCanvasElement.prototype, "toBlob").mockImplementation((done) => done(new Blob([PNG], { type: "image/png" })));
    let frames = 0;
    core.on("verify_qr_image", () => ({ result: ++frames < 2 ? "no_code" : "verified" }));

    await setup();
    await fireEvent.click(byId("scan-camera"));
    expect(getUserMedia).toHaveBeenCalledWith({ video: { facingMode: "environment" }, audio: false });
    await vi.waitFor(() => expect(result().dataset.result).toBe("verified"), { timeout: 3000 });
    expect(frames).toBe(2);
    expect(stop).toHaveBeenCalled();
    expect(document.querySelector("video")).toBeNull();
  });

  it("turns the camera off when the dialog closes", async () => {
    const stop = vi.fn();
    Object.defineProperty(navigator, "mediaDevices", {
      configurable: true,
      value: { getUserMedia: vi.fn().mockResolvedValue({ getTracks: () => [{ stop }] }) },
    });
    vi.spyOn(HTMLMediaElement.prototype, "play").mockResolvedValue(undefined);
    await setup();
    await fireEvent.click(byId("scan-camera"));
    await vi.waitFor(() => expect(screen.getByText(/Hold the other person's code/)).toBeTruthy());
    cleanup();
    expect(stop).toHaveBeenCalled();
  });

  it("keeps Tab inside and closes on Escape", async () => {
    const { onclose } = await setup();
    const close = byId("safety-close");
    close.focus();
    await fireEvent.keyDown(close, { key: "Tab" });
    const dialog = byId("safety-dialog");
    expect(dialog.contains(document.activeElement)).toBe(true);
    expect(document.activeElement).not.toBe(close);
    await fireEvent.keyDown(document.activeElement as HTMLElement, { key: "Tab", shiftKey: true });
    expect(document.activeElement).toBe(close);
    await fireEvent.keyDown(close, { key: "Escape" });
    expect(onclose).toHaveBeenCalled();
  });
});
