//! The webview's limits and tuning: it may only show the app's own pages, may use the camera
//! (QR scanning) and nothing else, and on Linux runs WebKitGTK with settings that cut its
//! memory without changing what the UI does.

use tauri::{Runtime, Url, Webview, plugin::TauriPlugin};

/// Whether `url` is one of the app's own pages (or the isolation frame). Linux and macOS
/// serve the app from `tauri://localhost`; Windows from `http://tauri.localhost`, a name
/// that elsewhere may resolve to a local server, so it counts only there, and only without a
/// port.
pub(crate) fn is_app_page(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "tauri" | "ipc" => host == "localhost",
        "isolation" => true,
        "http" | "https" if cfg!(windows) => {
            url.port().is_none() && (host == "tauri.localhost" || host == "ipc.localhost")
        }
        "http" => tauri::is_dev() && host == "localhost" && url.port() == Some(5173),
        "about" => url.path() == "blank",
        _ => false,
    }
}

/// Refuses every navigation away from the app: links open in the system browser through the
/// `open_link` command, after the user confirmed them.
pub(crate) fn navigation_guard<R: Runtime>() -> TauriPlugin<R> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|_webview: &Webview<R>, url| is_app_page(url))
        .build()
}

/// Applies the WebKitGTK settings: camera for the app page only, the document-viewer cache
/// model (no page cache, small memory cache), no WebGL (the UI draws none), and no GPU
/// compositing unless `LATCH_WEBVIEW_COMPOSITING=1` (it costs ~70 MB of web-process memory;
/// scrolling stays smooth without it).
#[cfg(target_os = "linux")]
pub(crate) fn tune(window: &tauri::WebviewWindow) {
    let _ = window.with_webview(|platform| {
        use webkit2gtk::glib::prelude::Cast;
        use webkit2gtk::{
            CacheModel, HardwareAccelerationPolicy, PermissionRequestExt, SettingsExt,
            UserMediaPermissionRequest, UserMediaPermissionRequestExt, WebContextExt, WebViewExt,
        };

        let view = platform.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_enable_media_stream(true);
            settings.set_enable_webgl(false);
            settings.set_enable_page_cache(false);
            settings.set_enable_webaudio(false);
            // For tests on machines without a camera: WebKit's generated test picture
            // stands in for one, through the same permission request.
            if std::env::var_os("LATCH_WEBVIEW_MOCK_CAMERA").is_some_and(|v| v == "1") {
                settings.set_enable_mock_capture_devices(true);
            }
            if std::env::var_os("LATCH_WEBVIEW_COMPOSITING").is_none_or(|v| v != "1") {
                settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
        view.connect_permission_request(|view, request| {
            let on_app_page = view
                .uri()
                .and_then(|u| Url::parse(&u).ok())
                .is_some_and(|u| is_app_page(&u));
            let camera_only = request
                .downcast_ref::<UserMediaPermissionRequest>()
                .is_some_and(|m| m.is_for_video_device() && !m.is_for_audio_device());
            if on_app_page && camera_only {
                request.allow();
            } else {
                request.deny();
            }
            true
        });
    });
}

/// Nothing to tune on the other platforms yet.
#[cfg(not(target_os = "linux"))]
pub(crate) fn tune(_window: &tauri::WebviewWindow) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apps_own_pages_may_load() {
        for ok in [
            "tauri://localhost/index.html",
            "isolation://localhost/abc/index.html",
            "about:blank",
        ] {
            assert!(is_app_page(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in [
            "https://example.org/",
            "http://localhost:8080/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://tauri.localhost.evil.example/",
            "http://tauri.localhost:8080/",
            "tauri://evil.example/",
            "data:text/html,hi",
        ] {
            assert!(!is_app_page(&Url::parse(bad).unwrap()), "{bad}");
        }
    }
}
