import { describe, expect, it } from "vitest";
import { previewLine } from "./previewLine";

describe("previewLine", () => {
  it("folds lines and spaces into one line", () => {
    expect(previewLine("  hello\n\n  there\tyou  ")).toBe("hello there you");
  });

  it("cuts long text on a character boundary and marks the cut", () => {
    const long = "🔒".repeat(500);
    const line = previewLine(long, 10);
    expect(line).toBe(`${"🔒".repeat(10)}…`);
    expect(previewLine("x".repeat(1_000_000)).length).toBe(161);
  });

  it("keeps hostile text as the same characters", () => {
    const hostile = "<script>alert(1)</script>\u202Egnp.exe";
    expect(previewLine(hostile)).toBe(hostile);
  });
});
