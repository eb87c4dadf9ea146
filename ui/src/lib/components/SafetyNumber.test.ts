import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen } from "@testing-library/svelte";
import SafetyNumber from "./SafetyNumber.svelte";

afterEach(cleanup);

const DIGITS = "052347891230581230958123049812309458120398471092384710923847109"
  .slice(0, 60);

function finderPatternQr(size: number): boolean[][] {
  // Not a real code: a recognisable pattern with dark corners and a checkerboard middle.
  return Array.from({ length: size }, (_, y) =>
    Array.from({ length: size }, (_, x) => (x < 7 && y < 7) || (x + y) % 2 === 0),
  );
}

describe("SafetyNumber", () => {
  it("shows 60 digits as 12 groups of 5 that a screen reader reads group by group", () => {
    render(SafetyNumber, { props: { safety: { digits: DIGITS, qr: finderPatternQr(21) }, contactName: "Ada" } });
    const list = screen.getByRole("list", { name: "Safety number, 12 groups of 5 digits" });
    const items = Array.from(list.querySelectorAll("li"));
    expect(items).toHaveLength(12);
    expect(items[0]?.textContent).toBe(`Group 1: ${DIGITS.slice(0, 5).split("").join(" ")}`);
    expect(items[11]?.textContent).toBe(`Group 12: ${DIGITS.slice(55).split("").join(" ")}`);
    // The visible digits are exactly the 60 digits in 12 groups, hidden from screen readers
    // (which read the list), so copying or reading the text gives no group numbers.
    const shown = document.querySelector(".digits");
    expect(shown?.getAttribute("aria-hidden")).toBe("true");
    expect(Array.from(shown?.children ?? [], (group) => group.textContent)).toEqual(DIGITS.match(/\d{5}/g));
    expect(shown?.textContent?.replace(/\D/g, "")).toBe(DIGITS);
  });

  it("draws the QR matrix as SVG rects, module for module, with a quiet zone", () => {
    const qr = finderPatternQr(25);
    render(SafetyNumber, { props: { safety: { digits: DIGITS, qr }, contactName: "Ada" } });
    const svg = screen.getByRole("img", { name: "QR code of your safety number with Ada" });
    expect(svg.getAttribute("viewBox")).toBe("0 0 33 33");
    // Only rects and the title: the code is drawn from data, nothing else gets in.
    for (const child of Array.from(svg.querySelectorAll("*"))) {
      expect(["rect", "title"]).toContain(child.tagName.toLowerCase());
    }
    const drawn = Array.from({ length: 25 }, () => new Array<boolean>(25).fill(false));
    for (const rect of Array.from(svg.querySelectorAll("rect.dark"))) {
      const x = Number(rect.getAttribute("x")) - 4;
      const y = Number(rect.getAttribute("y")) - 4;
      const width = Number(rect.getAttribute("width"));
      expect(rect.getAttribute("height")).toBe("1");
      for (let i = 0; i < width; i++) {
        const row = drawn[y];
        expect(row?.[x + i]).toBe(false);
        if (row) row[x + i] = true;
      }
    }
    expect(drawn).toEqual(qr);
  });

  it("shows the contact's name as text", () => {
    const hostile = '<img src=x onerror="alert(1)">';
    render(SafetyNumber, { props: { safety: { digits: DIGITS, qr: finderPatternQr(21) }, contactName: hostile } });
    expect(screen.getByRole("heading").textContent).toBe(`Safety number with ${hostile}`);
    expect(document.querySelector("img")).toBeNull();
  });

  it("refuses to show a damaged safety number rather than showing part of it", () => {
    render(SafetyNumber, { props: { safety: { digits: DIGITS.slice(0, 59), qr: finderPatternQr(21) }, contactName: "Ada" } });
    expect(screen.getByRole("alert").textContent).toContain("could not be shown");
    expect(screen.queryByRole("list")).toBeNull();
    expect(screen.queryByRole("img")).toBeNull();
    cleanup();

    render(SafetyNumber, { props: { safety: { digits: DIGITS, qr: [[true, false]] }, contactName: "Ada" } });
    expect(screen.getByRole("alert")).toBeTruthy();
    expect(screen.queryByRole("img")).toBeNull();
  });
});
