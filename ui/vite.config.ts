import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Tauri serves `dist/` from its own protocol; the dev server only runs under `tauri dev`.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    target: "es2021",
    // No inline scripts or styles: the CSP allows 'self' only.
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
  },
  // Vitest runs in Node: resolve Svelte's browser build so components mount in jsdom.
  resolve: mode === "test" ? { conditions: ["browser"] } : undefined,
}));
