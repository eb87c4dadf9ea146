//! Generates Tauri's context and the permission set for the app's own commands.

/// Every command the UI may call. `capabilities/main-window.json` grants each to the main
/// window, `ui/isolation/index.js` lets each through, and a unit test checks that the three
/// lists and `generate_handler!` agree.
const COMMANDS: &[&str] = &[
    "storage_check",
    "startup",
    "create_profile",
    "unlock_profile",
    "subscribe",
    "conversations",
    "messages",
    "send_message",
    "mark_read",
    "edit_message",
    "delete_message",
    "set_timer",
    "save_draft",
    "start_chat",
    "safety_number",
    "verify_qr_image",
    "mark_verified",
    "accept_key_change",
    "accept_request",
    "decline_request",
    "block_contact",
    "unblock_contact",
    "search",
    "start_call",
    "answer_call",
    "decline_call",
    "hang_up_call",
    "set_call_muted",
    "open_link",
    "set_active_conversation",
    "ui_ready",
];

fn main() {
    // Declaring the commands makes each one need an explicit `allow-*` permission in a
    // capability, so a window can call only what its capability file lists.
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    println!("cargo::rustc-env=LATCH_COMMANDS={}", COMMANDS.join(","));
    if let Err(error) =
        tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
    {
        // `cargo::error=` takes one line, and Tauri's errors span several.
        let message = format!("{error:#}").replace('\n', " | ");
        println!("cargo::error=tauri build step failed: {message}");
    }
}
