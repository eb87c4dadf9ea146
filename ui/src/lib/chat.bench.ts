// The per-message cost of a 100,000-message chat, outside the DOM:
// `npx vitest bench --run src/lib/chat.bench.ts`.
import { bench, describe } from "vitest";
import { RowHeights, rowHeightsFor } from "./components/heights";
import { timelineBuilder, withDaySeparators } from "./days";
import { applyEvent, emptyChats, loadConversations, loadMessages } from "./state/chats";
import type { MessageView } from "./types";
import type { TimelineItem } from "./days";

const N = 100_000;
const START = Date.UTC(2026, 0, 1);
const messages: MessageView[] = Array.from({ length: N }, (_, i) => ({
  id: i,
  conversation_id: 1,
  direction: i % 2 === 0 ? "incoming" : "outgoing",
  status: i % 2 === 0 ? "received" : "read",
  body: `message ${i}`,
  sent_at: START + i * 60_000,
  expires_at: null,
  edited: false,
  deleted: false,
  call: null,
}));
const loaded = loadMessages(
  loadConversations(emptyChats(), [
    {
      id: 1,
      kind: "standard",
      contact_id: 1,
      contact_name: "Ada",
      verified: true,
      disappear_after_secs: null,
      unread: 0,
      last_message: null,
      key_change_pending: false,
      contact_key: "key",
      standing: "accepted",
      draft: null,
    },
  ]),
  1,
  messages,
);
let nextId = N;

describe("100,000-message chat", () => {
  bench("applyEvent: a new message", () => {
    applyEvent(loaded, {
      type: "message",
      message: { ...messages[0]!, id: nextId++, sent_at: START + N * 60_000 },
    });
  });
  bench("applyEvent: a receipt for the newest message", () => {
    applyEvent(loaded, { type: "message_updated", message: { ...messages[N - 1]!, status: "read" } });
  });
  bench("withDaySeparators", () => {
    withDaySeparators(messages, START + N * 60_000);
  });
  const build = timelineBuilder();
  let current: MessageView[] = messages;
  build(current, START + N * 60_000);
  bench("timelineBuilder: one message appended (with the store's array copy)", () => {
    current = [...current, { ...messages[0]!, id: nextId++, sent_at: START + nextId * 60_000 }];
    build(current, START + N * 60_000);
  });
  bench("RowHeights: build", () => {
    new RowHeights(new Float64Array(N + 70).fill(64));
  });
});

// An older page of 100 arriving above about 50,000 loaded messages, as ChatTimeline and
// VirtualList see it: "before" is what every page cost until now (both rebuilt in full), "now"
// adds the page in front. The "now" run scrolls back from 50,000 to 60,000 loaded messages a page
// at a time and starts over (one full build per 100 pages, included). Each run also copies the
// loaded list, as the store does.
describe("an older page arriving above 50,000 loaded messages", () => {
  const PAGE = 100;
  const FROM = 50_000;
  const now = START + N * 60_000;
  const loadedWith = (pages: number) => messages.slice(N - FROM - PAGE * pages);
  const measured = new Map<string | number, number>();
  for (const row of withDaySeparators(messages, now)) if (typeof row.key === "number" && row.key % 3 === 0) measured.set(row.key, 80);
  const heightOf = (row: TimelineItem) => measured.get(row.key) ?? 64;

  bench("loadMessages: the page merged before the loaded history", () => {
    const state = { ...loaded, messages: new Map([[1, messages.slice(N - FROM)]]) };
    loadMessages(state, 1, messages.slice(N - FROM - PAGE, N - FROM));
  });

  bench("before: timeline and row heights rebuilt, a lookup per row", () => {
    const rows = withDaySeparators(loadedWith(1), now);
    rowHeightsFor(rows, heightOf, null, true);
  });

  let pages = 0;
  let build = timelineBuilder();
  let rows: TimelineItem[] = [];
  let heights = new RowHeights([]);
  bench("now: the page added in front of the timeline and the row heights", () => {
    if (pages % 100 === 0) {
      build = timelineBuilder();
      rows = build(loadedWith(0), now);
      heights = rowHeightsFor(rows, heightOf, null, true);
      pages = 0;
    }
    pages++;
    const previous = { items: rows, rows: heights };
    rows = build(loadedWith(pages), now);
    heights = rowHeightsFor(rows, heightOf, previous, true);
  });
});
