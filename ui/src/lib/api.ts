// The UI's only door to the Rust core. Every command goes through here with its types, so a
// component never builds a command name or parses a raw reply itself.
import { invoke } from "@tauri-apps/api/core";

/** What `storage_check` reports: the encryption library the app really runs on. */
export interface StorageReport {
  cipher_version: string;
  sqlite_version: string;
}

/** The serialized `CommandError` of the shell. */
export interface CommandError {
  kind: string;
  message: string;
}

function isCommandError(value: unknown): value is CommandError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as CommandError).kind === "string" &&
    typeof (value as CommandError).message === "string"
  );
}

/** Turns anything a rejected command throws into one sentence to show the user. */
export function describeError(error: unknown): string {
  if (isCommandError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Asks the core to prove that encrypted storage works on this machine. */
export function storageCheck(): Promise<StorageReport> {
  return invoke<StorageReport>("storage_check");
}
