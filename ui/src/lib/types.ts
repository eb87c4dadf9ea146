// The data contract between the Rust engine (through the Tauri shell) and the UI. These are the
// serialized shapes the shell sends; components and state modules take nothing else.

export type ConversationKind = "standard" | "secret";
export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "failed" | "received";

export interface MessageView {
  id: number;
  conversation_id: number;
  direction: "incoming" | "outgoing";
  status: MessageStatus;
  body: string;
  sent_at: number /* unix ms */;
  expires_at: number | null /* unix ms */;
  edited: boolean;
  deleted: boolean;
}

export interface ConversationView {
  id: number;
  kind: ConversationKind;
  contact_id: number;
  contact_name: string;
  verified: boolean;
  disappear_after_secs: number | null;
  timer_set_by_me?: boolean | null; // who last changed the timer (null: nobody since the start)
  unread: number;
  last_message: { body: string; sent_at: number } | null;
}

export interface SafetyNumberView {
  digits: string /* 60 digits */;
  qr: boolean[][] /* modules, true = dark */;
}

export type EngineEvent =
  | { type: "message"; message: MessageView }
  | { type: "message_updated"; message: MessageView } // status/edit/delete
  | { type: "messages_expired"; conversation_id: number; message_ids: number[] }
  | { type: "timer_changed"; conversation_id: number; seconds: number | null; by_me: boolean }
  | { type: "key_changed"; contact_id: number; contact: string; was_verified: boolean }
  | { type: "connection"; state: "connecting" | "online" | "offline" }
  // A contact opened a conversation this device did not know yet: reload the list.
  | { type: "conversation_started"; conversation_id: number; kind: ConversationKind }
  // Everything queued while offline has arrived.
  | { type: "synced" }
  // The relay ran low on this device's one-time prekeys; a fresh batch was published.
  | { type: "prekeys_replenished"; count: number }
  // An envelope from the relay was unusable and dropped (the reason never holds content).
  | { type: "receive_failed"; reason: string };
