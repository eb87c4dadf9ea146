// Speed of linkify on 1 MB messages: `npx vitest bench --run src/lib/text`.
import { bench, describe } from "vitest";
import { linkify } from "./linkify";

const MB = 1 << 20;
const prose = "Lorem ipsum dolor sit amet, https://example.com/path?q=1 consectetur www.x.example. ";
const inputs: Record<string, string> = {
  "1 MB plain text": "x".repeat(MB),
  "1 MB prose with links": prose.repeat(Math.ceil(MB / prose.length)).slice(0, MB),
  "1 MB of near-matches (http:/)": "http:/".repeat(MB / 6),
  "1 MB of nested brackets in a link": "https://a.example/" + "(".repeat(MB / 2) + ")".repeat(MB / 2),
};

describe("linkify", () => {
  for (const [name, input] of Object.entries(inputs)) {
    bench(name, () => {
      linkify(input);
    });
  }
});
