import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import TimerPicker from "./TimerPicker.svelte";

afterEach(cleanup);

function radio(name: string) {
  return screen.getByRole("radio", { name }) as HTMLInputElement;
}

const setButton = () => screen.getByRole("button", { name: "Set timer" });

async function typeCustom(amount: string, unit: string) {
  await fireEvent.input(screen.getByLabelText("Custom time"), { target: { value: amount } });
  await fireEvent.change(screen.getByLabelText("Unit"), { target: { value: unit } });
}

describe("TimerPicker", () => {
  it("offers off, the seven presets and custom in a named group", () => {
    render(TimerPicker, { props: { value: null } });
    const group = screen.getByRole("group", { name: "Disappearing messages" });
    const names = Array.from(group.querySelectorAll("input[type=radio]"), (input) =>
      input.closest("label")?.textContent?.trim(),
    );
    expect(names).toEqual([
      "Off",
      "5 seconds",
      "30 seconds",
      "1 minute",
      "5 minutes",
      "1 hour",
      "8 hours",
      "24 hours",
      "Custom",
    ]);
    expect(radio("Off").checked).toBe(true);
    expect(screen.queryByLabelText("Custom time")).toBeNull();
    expect(group.textContent).toContain("Now: Off");
  });

  it("applies a preset only when asked, so moving through the choices sends nothing", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange } });
    for (const name of ["5 seconds", "30 seconds", "1 minute"]) await fireEvent.click(radio(name));
    expect(onchange).not.toHaveBeenCalled();
    expect(radio("1 minute").checked).toBe(true);

    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenCalledExactlyOnceWith(60);
    expect(screen.getByRole("group").textContent).toContain("Now: 1 minute");

    // Applying the current value again changes nothing.
    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenCalledTimes(1);

    await fireEvent.click(radio("Off"));
    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenLastCalledWith(null);
  });

  it("sets a custom value in range, by button or Enter", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: 300, onchange } });
    await fireEvent.click(radio("Custom"));
    await typeCustom("2", "hours");
    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenLastCalledWith(7_200);

    await typeCustom("45", "seconds");
    await fireEvent.keyDown(screen.getByLabelText("Custom time"), { key: "Enter" });
    expect(onchange).toHaveBeenLastCalledWith(45);
    expect(radio("Custom").checked).toBe(true);
  });

  it("refuses values out of range with a clear message and sets nothing", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange } });
    await fireEvent.click(radio("Custom"));
    const amount = screen.getByLabelText("Custom time") as HTMLInputElement;
    const alert = screen.getByRole("alert");

    await typeCustom("25", "hours");
    await fireEvent.click(setButton());
    expect(alert.textContent).toBe("Choose a time between 5 seconds and 24 hours.");
    expect(amount.getAttribute("aria-invalid")).toBe("true");
    expect(amount.getAttribute("aria-describedby")).toContain(alert.id);

    await typeCustom("4", "seconds");
    await fireEvent.click(setButton());
    expect(alert.textContent).toContain("between 5 seconds and 24 hours");

    await typeCustom("1.5", "minutes");
    await fireEvent.click(setButton());
    expect(alert.textContent).toBe("Enter a whole number.");

    await typeCustom("", "minutes");
    await fireEvent.click(setButton());
    expect(alert.textContent).toBe("Enter how long messages should last.");
    expect(onchange).not.toHaveBeenCalled();

    await typeCustom("90", "seconds");
    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenCalledExactlyOnceWith(90);
    expect(alert.textContent).toBe("");
    expect(amount.getAttribute("aria-invalid")).toBe("false");
  });

  it("shows a custom value that equals a preset as the preset", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange } });
    await fireEvent.click(radio("Custom"));
    await typeCustom("5", "seconds");
    await fireEvent.click(setButton());
    expect(onchange).toHaveBeenCalledExactlyOnceWith(5);
    expect(radio("5 seconds").checked).toBe(true);
  });

  it("shows a custom value set elsewhere in the custom fields", () => {
    render(TimerPicker, { props: { value: 5_400 } });
    expect(radio("Custom").checked).toBe(true);
    expect((screen.getByLabelText("Custom time") as HTMLInputElement).value).toBe("90");
    expect((screen.getByLabelText("Unit") as HTMLSelectElement).value).toBe("minutes");
    expect(screen.getByRole("group").textContent).toContain("Now: 1 hour 30 minutes");
  });

  it("follows the value when the other side changes the timer", async () => {
    const { rerender } = render(TimerPicker, { props: { value: null } });
    await rerender({ value: 28_800 });
    expect(radio("8 hours").checked).toBe(true);
    expect(radio("Off").checked).toBe(false);

    await fireEvent.click(radio("Custom"));
    expect(screen.getByLabelText("Custom time")).toBeTruthy();
    await rerender({ value: 3_600 });
    expect(radio("1 hour").checked).toBe(true);
    expect(screen.queryByLabelText("Custom time")).toBeNull();
  });

  it("leaves Off out when allowOff is false (secret chats) and refuses to apply nothing", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: 3_600, onchange, allowOff: false, applyId: "timer-apply" } });
    expect(screen.queryByRole("radio", { name: "Off" })).toBeNull();
    const values = Array.from(document.querySelectorAll<HTMLInputElement>("input[type=radio]"), (r) => r.value);
    expect(values).toEqual(["5", "30", "60", "300", "3600", "28800", "86400", "custom"]);
    expect(radio("1 hour").checked).toBe(true);

    await fireEvent.click(radio("30 seconds"));
    await fireEvent.click(document.getElementById("timer-apply") as HTMLButtonElement);
    expect(onchange).toHaveBeenCalledExactlyOnceWith(30);
  });

  it("a secret chat's picker shown with no timer selects nothing and sends nothing", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange, allowOff: false } });
    expect(document.querySelectorAll("input[type=radio]:checked")).toHaveLength(0);
    await fireEvent.click(setButton());
    expect(onchange).not.toHaveBeenCalled();
    expect(screen.getByRole("alert").textContent).toBe("Choose how long messages last.");
  });

  it("offers Off by default, with value attributes the end-to-end tests use", () => {
    render(TimerPicker, { props: { value: null } });
    expect(radio("Off").value).toBe("off");
    expect(radio("5 seconds").value).toBe("5");
    expect(radio("Custom").value).toBe("custom");
  });
});
