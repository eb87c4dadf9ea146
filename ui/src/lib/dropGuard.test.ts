import { afterEach, describe, expect, it } from "vitest";
import { installDropGuard } from "./dropGuard";

let remove: (() => void) | undefined;

afterEach(() => {
  remove?.();
  document.body.replaceChildren();
});

function drop(target: Element, type: "drop" | "dragover"): Event {
  const event = new Event(type, { bubbles: true, cancelable: true });
  target.dispatchEvent(event);
  return event;
}

describe("installDropGuard", () => {
  it("cancels drops outside a drop zone and leaves those inside alone", () => {
    remove = installDropGuard(window);
    const outside = document.createElement("p");
    const zone = document.createElement("div");
    zone.dataset.dropZone = "";
    const inner = document.createElement("span");
    zone.append(inner);
    document.body.append(outside, zone);

    expect(drop(outside, "dragover").defaultPrevented).toBe(true);
    expect(drop(outside, "drop").defaultPrevented).toBe(true);
    expect(drop(inner, "dragover").defaultPrevented).toBe(false);
    expect(drop(inner, "drop").defaultPrevented).toBe(false);

    remove();
    remove = undefined;
    expect(drop(outside, "drop").defaultPrevented).toBe(false);
  });
});
