import type { CallView } from "./types";

/** How long a call lasted, as a chat shows it: "0:42", "3:12", "1:04:09". */
export function callDuration(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** The line a call leaves in its chat ("Missed voice call", "Video call · 3:12"). */
export function callLabel(call: CallView, direction: "incoming" | "outgoing"): string {
  const kind = call.kind === "video" ? "video" : "voice";
  const Kind = kind === "video" ? "Video" : "Voice";
  switch (call.outcome) {
    case "completed":
      return call.duration_secs === null ? `${Kind} call` : `${Kind} call · ${callDuration(call.duration_secs)}`;
    case "missed":
      return `Missed ${kind} call`;
    case "declined":
      return direction === "incoming" ? `Declined ${kind} call` : `${Kind} call declined`;
    case "busy":
      return `${Kind} call · busy`;
    case "no_answer":
      return `${Kind} call · no answer`;
    case "cancelled":
      return `Cancelled ${kind} call`;
    case "failed":
      return call.duration_secs === null
        ? `${Kind} call failed`
        : `${Kind} call · ${callDuration(call.duration_secs)} · connection lost`;
  }
}
