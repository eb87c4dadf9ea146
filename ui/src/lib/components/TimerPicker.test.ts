import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import TimerPicker from "./TimerPicker.svelte";

afterEach(cleanup);

function radio(name: string) {
  return screen.getByRole("radio", { name }) as HTMLInputElement;
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
  });

  it("reports a preset as soon as it is chosen", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange } });
    await fireEvent.click(radio("30 seconds"));
    expect(onchange).toHaveBeenCalledExactlyOnceWith(30);
    expect(radio("30 seconds").checked).toBe(true);
    await fireEvent.click(radio("Off"));
    expect(onchange).toHaveBeenLastCalledWith(null);
  });

  it("sets a custom value in range, by button or Enter", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: 300, onchange } });
    await fireEvent.click(radio("Custom"));
    const amount = screen.getByLabelText("Custom time") as HTMLInputElement;
    await vi.waitFor(() => expect(document.activeElement).toBe(amount));

    await fireEvent.input(amount, { target: { value: "2" } });
    await fireEvent.change(screen.getByLabelText("Unit"), { target: { value: "hours" } });
    await fireEvent.click(screen.getByRole("button", { name: "Set" }));
    expect(onchange).toHaveBeenLastCalledWith(7_200);

    expect(screen.getByRole("alert").textContent).toBe("");
    expect(amount.getAttribute("aria-invalid")).toBe("false");
    await fireEvent.input(amount, { target: { value: "45" } });
    await fireEvent.change(screen.getByLabelText("Unit"), { target: { value: "seconds" } });
    await fireEvent.keyDown(amount, { key: "Enter" });
    expect(onchange).toHaveBeenLastCalledWith(45);
    expect(radio("Custom").checked).toBe(true);
  });

  it("refuses values out of range with a clear message and sets nothing", async () => {
    const onchange = vi.fn();
    render(TimerPicker, { props: { value: null, onchange } });
    await fireEvent.click(radio("Custom"));
    const amount = screen.getByLabelText("Custom time") as HTMLInputElement;

    await fireEvent.input(amount, { target: { value: "25" } });
    await fireEvent.change(screen.getByLabelText("Unit"), { target: { value: "hours" } });
    await fireEvent.click(screen.getByRole("button", { name: "Set" }));
    expect(screen.getByRole("alert").textContent).toBe("Choose a time between 5 seconds and 24 hours.");
    expect(amount.getAttribute("aria-invalid")).toBe("true");
    expect(amount.getAttribute("aria-describedby")).toContain(screen.getByRole("alert").id);

    await fireEvent.input(amount, { target: { value: "4" } });
    await fireEvent.change(screen.getByLabelText("Unit"), { target: { value: "seconds" } });
    await fireEvent.click(screen.getByRole("button", { name: "Set" }));
    expect(screen.getByRole("alert").textContent).toContain("between 5 seconds and 24 hours");

    await fireEvent.input(amount, { target: { value: "1.5" } });
    await fireEvent.click(screen.getByRole("button", { name: "Set" }));
    expect(screen.getByRole("alert").textContent).toBe("Enter a whole number.");
    expect(onchange).not.toHaveBeenCalled();

    await fireEvent.input(amount, { target: { value: "5" } });
    await fireEvent.click(screen.getByRole("button", { name: "Set" }));
    expect(onchange).toHaveBeenCalledExactlyOnceWith(5);
    // A custom value that equals a preset shows as that preset.
    expect(radio("5 seconds").checked).toBe(true);
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("shows a custom value set elsewhere in the custom fields", () => {
    render(TimerPicker, { props: { value: 5_400 } });
    expect(radio("Custom").checked).toBe(true);
    expect((screen.getByLabelText("Custom time") as HTMLInputElement).value).toBe("90");
    expect((screen.getByLabelText("Unit") as HTMLSelectElement).value).toBe("minutes");
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
});
