// jsdom does no layout: every element is 0 px tall, so a virtualized list would think nothing
// fits. Tests that render chats give the scroll viewport a height.

import { afterEach, beforeEach } from "vitest";

/** Gives `.virtual-list` viewports a height of `height` px for each test in the file. */
export function withViewportHeight(height = 640): void {
  let original: PropertyDescriptor | undefined;
  beforeEach(() => {
    original = Object.getOwnPropertyDescriptor(HTMLElement.prototype, "clientHeight");
    Object.defineProperty(HTMLElement.prototype, "clientHeight", {
      configurable: true,
      get(this: HTMLElement) {
        return this.classList.contains("virtual-list") ? height : 0;
      },
    });
  });
  afterEach(() => {
    if (original) Object.defineProperty(HTMLElement.prototype, "clientHeight", original);
  });
}
