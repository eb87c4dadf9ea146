// The per-message cost of a 100,000-message chat, outside the DOM:
// `npx vitest bench --run src/lib/chat.bench.ts`.
import { bench, describe } from "vitest";
import { RowHeights } from "./components/heights";
import { timelineBuilder, withDaySeparators } from "./days";
import { applyEvent, emptyChats, loadConversations, loadMessages } from "./state/chats";
import type { MessageView } from "./types";

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
