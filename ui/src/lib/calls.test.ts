import { describe, expect, it } from "vitest";
import { callDuration, callLabel } from "./calls";

describe("call rows", () => {
  it("names each outcome as a chat shows it", () => {
    expect(callLabel({ kind: "voice", outcome: "missed", duration_secs: null }, "incoming")).toBe("Missed voice call");
    expect(callLabel({ kind: "video", outcome: "completed", duration_secs: 192 }, "outgoing")).toBe("Video call · 3:12");
    expect(callLabel({ kind: "voice", outcome: "declined", duration_secs: null }, "outgoing")).toBe("Voice call declined");
    expect(callLabel({ kind: "voice", outcome: "declined", duration_secs: null }, "incoming")).toBe("Declined voice call");
    expect(callLabel({ kind: "video", outcome: "busy", duration_secs: null }, "outgoing")).toBe("Video call · busy");
    expect(callLabel({ kind: "voice", outcome: "failed", duration_secs: 65 }, "incoming")).toBe(
      "Voice call · 1:05 · connection lost",
    );
  });

  it("formats durations with hours only when there are some", () => {
    expect(callDuration(0)).toBe("0:00");
    expect(callDuration(59.9)).toBe("0:59");
    expect(callDuration(3849)).toBe("1:04:09");
    expect(callDuration(-3)).toBe("0:00");
  });
});
