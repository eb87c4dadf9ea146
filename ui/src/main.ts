import { mount } from "svelte";
import App from "./App.svelte";
import { installDropGuard } from "./lib/dropGuard";
import "./app.css";

// A file dropped anywhere but a drop zone must not navigate the webview away from Latch.
installDropGuard(window);

const target = document.getElementById("app");
if (!target) {
  throw new Error("Latch: #app is missing from index.html");
}
export default mount(App, { target });
