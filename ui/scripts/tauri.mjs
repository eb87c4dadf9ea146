// Runs the Tauri CLI with the layout spelled out: the shell crate is ../src-tauri (where a
// symlink points at the root tauri.conf.json) and the frontend is this folder. Without this the
// CLI guesses from the working directory, and the root config beside a virtual workspace
// manifest confuses it.
import { fileURLToPath } from "node:url";
import path from "node:path";
import { run } from "@tauri-apps/cli";

const ui = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.env.TAURI_APP_PATH = path.resolve(ui, "../src-tauri");
process.env.TAURI_FRONTEND_PATH = ui;

run(process.argv.slice(2), "npm run tauri").catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
