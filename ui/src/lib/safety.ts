// Checks and layout for a safety number from the engine: the 60 digits split into the 12 groups
// people read aloud, and the QR matrix turned into horizontal runs of dark modules, which the
// component draws as SVG <rect>s.

import type { SafetyNumberView } from "./types";

/** A safety number's digits, grouped the way both screens show them. */
export const SAFETY_DIGITS = 60;
/** Digits per group. */
export const GROUP_SIZE = 5;
/** The largest QR code (version 40) is 177 modules a side; anything bigger is not a QR code. */
export const MAX_QR_MODULES = 177;

/** A horizontal run of dark modules in row `y`, from column `x`, `length` modules long. */
export interface QrRun {
  x: number;
  y: number;
  length: number;
}

/** Splits 60 digits into 12 groups of 5; null when the digits are not exactly 60 digits. */
export function digitGroups(digits: string): string[] | null {
  if (digits.length !== SAFETY_DIGITS || !/^[0-9]+$/.test(digits)) return null;
  const groups: string[] = [];
  for (let start = 0; start < SAFETY_DIGITS; start += GROUP_SIZE) {
    groups.push(digits.slice(start, start + GROUP_SIZE));
  }
  return groups;
}

/** Turns the QR matrix into runs; null when it is not a square boolean matrix of QR size. */
export function qrRuns(qr: boolean[][]): QrRun[] | null {
  const size = qr.length;
  if (size === 0 || size > MAX_QR_MODULES) return null;
  const runs: QrRun[] = [];
  for (let y = 0; y < size; y++) {
    const row = qr[y];
    if (!Array.isArray(row) || row.length !== size) return null;
    let start = -1;
    for (let x = 0; x <= size; x++) {
      const dark = x < size ? row[x] : false;
      if (typeof dark !== "boolean") return null;
      if (dark && start < 0) start = x;
      if (!dark && start >= 0) {
        runs.push({ x: start, y, length: x - start });
        start = -1;
      }
    }
  }
  return runs;
}

/** Everything the safety-number screen draws, or null when the engine sent something malformed. */
export function safetyLayout(
  view: SafetyNumberView,
): { groups: string[]; runs: QrRun[]; size: number } | null {
  const groups = digitGroups(view.digits);
  const runs = qrRuns(view.qr);
  if (groups === null || runs === null) return null;
  return { groups, runs, size: view.qr.length };
}
