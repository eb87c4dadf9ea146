// The data contract between the Rust engine (through the Tauri shell) and the UI. These are the
// serialized shapes the shell sends; components and state modules take nothing else.

export type ConversationKind = "standard" | "secret";
/** Whether the user let a contact in: accepted, a message request not answered yet, or blocked. */
export type ContactStanding = "accepted" | "request" | "blocked";
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
  /** Set when the row is a call in the chat, not a message (its body is then empty). */
  call: CallView | null;
}

/** A call as its chat shows it. */
export interface CallView {
  kind: "voice" | "video";
  outcome: "completed" | "missed" | "declined" | "busy" | "no_answer" | "cancelled" | "failed";
  duration_secs: number | null;
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
  /** The newest message, for the list's preview; null when the chat is empty. */
  last_message: MessageView | null;
  /** The contact's identity key changed and the user has not accepted the new one yet. */
  key_change_pending: boolean;
  /** The contact's current key (hex): what accepting a pending change accepts. */
  contact_key: string;
  /**
   * `request` while someone the user never added wrote first and has not been answered (no text
   * in notifications or the list, nothing can be sent until accepted); `blocked` when the user
   * blocked them (what they send is dropped unread).
   */
  standing: ContactStanding;
  /** The unsent text kept for this chat (standard chats only; secret chats' are never stored). */
  draft: string | null;
}

/** The profile this device runs as. */
export interface Me {
  name: string;
  /** The relay handle; null until one is registered. */
  handle: string | null;
  relay_url: string;
}

/** What the shell finds at start-up: no profile yet, a passphrase-locked one, or one ready. */
export type Startup =
  | { state: "new"; default_relay_url: string; keyring: boolean }
  | { state: "locked"; name: string }
  | { state: "ready"; me: Me };

/** A key change the user has not accepted yet, as its banner shows it. */
export interface KeyChange {
  was_verified: boolean;
  /** The new key (hex), sent back when the user accepts it. */
  key: string;
}

export interface SafetyNumberView {
  /** 60 digits; `mark_verified` sends back the ones the user compared. */
  digits: string;
  qr: boolean[][] /* modules, true = dark */;
}

/** `safety_number`'s answer: the number with whom it is shared and its verification state. */
export interface SafetyNumberReport extends SafetyNumberView {
  contact_id: number;
  contact_name: string;
  verified: boolean;
  key_change_pending: boolean;
}

/** `mark_verified`'s arguments: `digits` is the number compared (required to verify, "" to clear). */
export interface MarkVerifiedArgs {
  contactId: number;
  verified: boolean;
  digits: string;
}

/** What a scanned safety-number QR code said. */
export type QrVerifyResult = "verified" | "mismatch" | "no_code";

export type EngineEvent =
  | { type: "message"; message: MessageView }
  | { type: "message_updated"; message: MessageView } // status/edit/delete
  | { type: "messages_expired"; conversation_id: number; message_ids: number[] }
  | { type: "timer_changed"; conversation_id: number; seconds: number | null; by_me: boolean }
  // `key` names the new key: accepting the change sends it back, so a key that changed again
  // after the banner appeared is refused rather than accepted unseen.
  | { type: "key_changed"; contact_id: number; contact: string; was_verified: boolean; key: string }
  | { type: "connection"; state: "connecting" | "online" | "offline" }
  // A contact opened a conversation this device did not know yet: reload the list.
  | { type: "conversation_started"; conversation_id: number; kind: ConversationKind }
  // Everything queued while offline has arrived.
  | { type: "synced" }
  // The user accepted, blocked or unblocked a contact: every chat with them changed standing.
  | { type: "contact_standing"; contact_id: number; standing: ContactStanding }
  // A contact and their chats were deleted (a declined message request).
  | { type: "contact_removed"; contact_id: number; conversation_ids: number[] }
  // The relay ran low on this device's one-time prekeys; a fresh batch was published.
  | { type: "prekeys_replenished"; count: number }
  // An envelope from the relay was unusable and dropped (the reason never holds content).
  | { type: "receive_failed"; reason: string }
  // A call changed state; `reason` only when it ended.
  | {
      type: "call";
      call_id: string;
      conversation_id: number;
      direction: "incoming" | "outgoing";
      media: "audio" | "video";
      state: CallState;
      reason: CallEndReason | null;
      remote_video: boolean;
    };

export type CallState = "dialing" | "ringing" | "connecting" | "connected" | "reconnecting" | "ended";
export type CallEndReason =
  | "declined"
  | "busy"
  | "no_answer"
  | "cancelled"
  | "hung_up"
  | "failed"
  | "not_allowed";

/**
 * What the `subscribe` channel carries: engine events, and `resync` when the shell dropped
 * events (its buffer overflowed), after which the UI reloads what it shows.
 */
export type UiEvent = EngineEvent | { type: "resync" };
