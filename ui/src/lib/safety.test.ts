import { describe, expect, it } from "vitest";
import { digitGroups, qrRuns, safetyLayout } from "./safety";

const DIGITS = "123456789012345678901234567890123456789012345678901234567890";

function matrixFromRuns(size: number, runs: { x: number; y: number; length: number }[]) {
  const matrix = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  for (const run of runs) {
    for (let x = run.x; x < run.x + run.length; x++) {
      const row = matrix[run.y];
      if (row) row[x] = true;
    }
  }
  return matrix;
}

describe("digitGroups", () => {
  it("splits 60 digits into 12 groups of 5", () => {
    const groups = digitGroups(DIGITS);
    expect(groups).toHaveLength(12);
    expect(groups?.[0]).toBe("12345");
    expect(groups?.[11]).toBe("67890");
    expect(groups?.join("")).toBe(DIGITS);
  });

  it("refuses anything but exactly 60 ASCII digits", () => {
    expect(digitGroups(DIGITS.slice(1))).toBeNull();
    expect(digitGroups(DIGITS + "1")).toBeNull();
    expect(digitGroups(DIGITS.slice(1) + "a")).toBeNull();
    expect(digitGroups(DIGITS.slice(1) + "٣")).toBeNull();
    expect(digitGroups("")).toBeNull();
  });
});

describe("qrRuns", () => {
  it("round-trips a random matrix", () => {
    let seed = 42;
    const size = 37;
    const qr = Array.from({ length: size }, () =>
      Array.from({ length: size }, () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % 3 === 0;
      }),
    );
    const runs = qrRuns(qr);
    expect(runs).not.toBeNull();
    expect(matrixFromRuns(size, runs ?? [])).toEqual(qr);
  });

  it("merges adjacent dark modules into one run, including at the row's end", () => {
    expect(qrRuns([[true, true, false], [false, true, true], [true, false, true]])).toEqual([
      { x: 0, y: 0, length: 2 },
      { x: 1, y: 1, length: 2 },
      { x: 0, y: 2, length: 1 },
      { x: 2, y: 2, length: 1 },
    ]);
  });

  it("refuses matrices that are not square booleans of QR size", () => {
    expect(qrRuns([])).toBeNull();
    expect(qrRuns([[true, false], [true]])).toBeNull();
    expect(qrRuns([[true, false]])).toBeNull();
    expect(qrRuns([[true, 1 as unknown as boolean], [true, false]])).toBeNull();
    const huge = Array.from({ length: 178 }, () => new Array<boolean>(178).fill(false));
    expect(qrRuns(huge)).toBeNull();
  });

  it("needs both parts valid for a layout", () => {
    expect(safetyLayout({ digits: DIGITS, qr: [[true]] })?.size).toBe(1);
    expect(safetyLayout({ digits: "1", qr: [[true]] })).toBeNull();
    expect(safetyLayout({ digits: DIGITS, qr: [] })).toBeNull();
  });
});
