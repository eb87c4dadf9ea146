//! Generates Tauri's context and the permission set for the app's own commands.

fn main() {
    // Declaring the commands makes each one need an explicit `allow-*` permission in a
    // capability, so a window can call only what its capability file lists.
    let manifest = tauri_build::AppManifest::new().commands(&["storage_check"]);
    if let Err(error) =
        tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
    {
        // `cargo::error=` takes one line, and Tauri's errors span several.
        let message = format!("{error:#}").replace('\n', " | ");
        println!("cargo::error=tauri build step failed: {message}");
    }
}
