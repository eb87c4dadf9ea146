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

/**
 * How long a command may take before the UI gives up on it. A command refused by the isolation
 * hook never settles, and a stuck core must not leave the UI spinning forever.
 */
export const COMMAND_TIMEOUT_MS = 30_000;

/** Invokes a command, rejecting with a `timeout` error if the core does not answer in time. */
function call<T>(command: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject({ kind: "timeout", message: "Latch's core did not answer in time." }),
      COMMAND_TIMEOUT_MS,
    );
    invoke<T>(command).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Asks the core to prove that encrypted storage works on this machine. */
export function storageCheck(): Promise<StorageReport> {
  return call<StorageReport>("storage_check");
}
