//! The commands the UI may invoke. Each validates its input, calls the engine and returns a
//! serializable view or a [`CommandError`]. Each is listed in `build.rs`, granted in
//! `capabilities/main-window.json` and let through by `ui/isolation/index.js`.
//!
//! The engine's store calls block on SQLCipher, so they run on the blocking pool and the
//! webview's IPC thread never waits on disk.

use base64::Engine as _;
use latch_client::{ConversationView, Engine, MessageView};
use latch_store::selftest::{self, StorageReport};
use latch_store::{ContactId, ConversationId, MessageId};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use zeroize::Zeroizing;

use crate::desktop::Desktop;
use crate::error::CommandError;
use crate::session::{Me, SharedLatch, Startup, UiEvent, me};

/// Messages per history page.
const MAX_PAGE: u32 = 500;
/// Search results shown at most.
const SEARCH_LIMIT: u32 = 50;
/// The largest image accepted for QR scanning (a 4K screenshot is far smaller).
const MAX_IMAGE_BYTES: usize = 16 * 1024 * 1024;
/// The shortest passphrase accepted for a new profile.
const MIN_PASSPHRASE_CHARS: usize = 8;
/// The link schemes that open in a browser.
const LINK_SCHEMES: [&str; 2] = ["http", "https"];

/// Runs blocking engine work off the IPC thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|_| CommandError::INTERRUPTED)?
}

/// Runs blocking work on the open profile's engine.
async fn with_engine<T: Send + 'static>(
    latch: &SharedLatch,
    work: impl FnOnce(&Engine) -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    let engine = latch.engine()?;
    blocking(move || work(&engine)).await
}

/// Proves encrypted storage works on this machine and reports the SQLCipher version.
#[tauri::command]
pub(crate) async fn storage_check<R: Runtime>(
    app: AppHandle<R>,
) -> Result<StorageReport, CommandError> {
    let dir = app
        .path()
        .app_cache_dir()
        .map_err(|_| CommandError::NO_DATA_DIR)?;
    blocking(move || selftest::run(&dir).map_err(CommandError::from)).await
}

/// Decides the first screen; a keyring-protected profile is opened on the way.
#[tauri::command]
pub(crate) async fn startup(
    latch: State<'_, SharedLatch>,
    desktop: State<'_, Desktop>,
) -> Result<Startup, CommandError> {
    let shared = latch.inner().clone();
    let (startup, opened) = blocking(move || shared.startup()).await?;
    if let Some(engine) = opened {
        latch.activate(&engine);
        desktop.watch(&engine);
    }
    Ok(startup)
}

/// Creates the profile, registers its handle with the relay and starts it.
#[tauri::command]
pub(crate) async fn create_profile(
    latch: State<'_, SharedLatch>,
    desktop: State<'_, Desktop>,
    name: String,
    handle: String,
    relay_url: String,
    passphrase: Option<String>,
) -> Result<Me, CommandError> {
    let relay_url = relay_url.trim().to_owned();
    if !(relay_url.starts_with("ws://") || relay_url.starts_with("wss://")) {
        return Err(CommandError::BAD_RELAY_URL);
    }
    let passphrase = passphrase.map(Zeroizing::new);
    if passphrase
        .as_ref()
        .is_some_and(|p| p.chars().count() < MIN_PASSPHRASE_CHARS)
    {
        return Err(CommandError::SHORT_PASSPHRASE);
    }
    let shared = latch.inner().clone();
    let name = name.trim().to_owned();
    let engine = blocking(move || {
        shared.create(&name, &relay_url, passphrase.as_deref().map(String::as_str))
    })
    .await?;
    if let Err(e) = engine.register(&handle).await {
        // Nothing was promised to anyone yet: remove the half-made profile so the user can
        // pick another handle or relay and try again.
        let shared = latch.inner().clone();
        engine.shutdown().await;
        blocking(move || {
            shared.abandon(engine);
            Ok(())
        })
        .await?;
        return Err(e.into());
    }
    latch.activate(&engine);
    desktop.watch(&engine);
    me(&engine)
}

/// Opens the passphrase-protected profile.
#[tauri::command]
pub(crate) async fn unlock_profile(
    latch: State<'_, SharedLatch>,
    desktop: State<'_, Desktop>,
    passphrase: String,
) -> Result<Me, CommandError> {
    let passphrase = Zeroizing::new(passphrase);
    let shared = latch.inner().clone();
    let engine = blocking(move || shared.unlock(&passphrase)).await?;
    latch.activate(&engine);
    desktop.watch(&engine);
    me(&engine)
}

/// Streams the engine's events to the UI.
#[tauri::command]
pub(crate) fn subscribe(
    latch: State<'_, SharedLatch>,
    on_event: Channel<UiEvent>,
) -> Result<(), CommandError> {
    latch.subscribe(on_event)
}

/// Every conversation, as the list shows them.
#[tauri::command]
pub(crate) async fn conversations(
    latch: State<'_, SharedLatch>,
) -> Result<Vec<ConversationView>, CommandError> {
    with_engine(&latch, |e| Ok(e.conversations()?)).await
}

/// A page of a conversation's history, oldest first, before message `before` (or the newest).
#[tauri::command]
pub(crate) async fn messages(
    latch: State<'_, SharedLatch>,
    conversation_id: i64,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<MessageView>, CommandError> {
    let limit = limit.clamp(1, MAX_PAGE);
    with_engine(&latch, move |e| {
        Ok(e.messages(
            ConversationId(conversation_id),
            before.map(MessageId),
            limit,
        )?)
    })
    .await
}

/// Sends a text message (queued while offline).
#[tauri::command]
pub(crate) async fn send_message(
    latch: State<'_, SharedLatch>,
    conversation_id: i64,
    body: String,
) -> Result<MessageView, CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.send_text(ConversationId(conversation_id), &body)?)
    })
    .await
}

/// Marks a conversation read: starts the disappearing clocks and sends read receipts.
#[tauri::command]
pub(crate) async fn mark_read(
    latch: State<'_, SharedLatch>,
    desktop: State<'_, Desktop>,
    conversation_id: i64,
) -> Result<usize, CommandError> {
    let marked = with_engine(&latch, move |e| {
        Ok(e.mark_read(ConversationId(conversation_id))?)
    })
    .await?;
    desktop.conversation_read(conversation_id);
    Ok(marked)
}

/// Edits one of our messages.
#[tauri::command]
pub(crate) async fn edit_message(
    latch: State<'_, SharedLatch>,
    message_id: i64,
    body: String,
) -> Result<MessageView, CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.edit_message(MessageId(message_id), &body)?)
    })
    .await
}

/// Deletes one of our messages for everyone.
#[tauri::command]
pub(crate) async fn delete_message(
    latch: State<'_, SharedLatch>,
    message_id: i64,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.delete_for_everyone(MessageId(message_id))?)
    })
    .await
}

/// Sets a conversation's disappearing timer (`None`: off, standard chats only).
#[tauri::command]
pub(crate) async fn set_timer(
    latch: State<'_, SharedLatch>,
    conversation_id: i64,
    seconds: Option<u32>,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.set_timer(ConversationId(conversation_id), seconds)?)
    })
    .await
}

/// Keeps a chat's unsent text across restarts (empty clears it); returns whether it was
/// stored (never for secret chats). The engine bounds its size.
#[tauri::command]
pub(crate) async fn save_draft(
    latch: State<'_, SharedLatch>,
    conversation_id: i64,
    text: String,
) -> Result<bool, CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.save_draft(ConversationId(conversation_id), &text)?)
    })
    .await
}

/// Starts a chat with `handle`: standard (reopened if it exists) or, with the lock toggle on,
/// a new secret chat with its timer. An unknown handle is looked up on the relay first.
#[tauri::command]
pub(crate) async fn start_chat(
    latch: State<'_, SharedLatch>,
    handle: String,
    secret: bool,
    timer_secs: Option<u32>,
) -> Result<ConversationView, CommandError> {
    let engine = latch.engine()?;
    let known = {
        let (e, h) = (engine.clone(), handle.clone());
        blocking(move || Ok(e.contact_by_handle(&h).ok().map(|c| c.id))).await?
    };
    let contact = match known {
        Some(id) => id,
        None => engine.add_contact(&handle).await?,
    };
    let id = if secret {
        let timer = timer_secs.ok_or(CommandError::NO_TIMER)?;
        engine.start_secret_chat(contact, timer).await?
    } else {
        let e = engine.clone();
        blocking(move || Ok(e.open_standard_chat(contact)?)).await?
    };
    blocking(move || Ok(engine.conversation(id)?)).await
}

/// A safety number as the verification screen shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SafetyNumberView {
    contact_id: i64,
    contact_name: String,
    /// 60 digits.
    digits: String,
    /// The QR code's modules (`true` = dark), drawn as SVG by the UI.
    qr: Vec<Vec<bool>>,
    verified: bool,
    key_change_pending: bool,
}

/// The safety number with a contact and its QR code.
#[tauri::command]
pub(crate) async fn safety_number(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
) -> Result<SafetyNumberView, CommandError> {
    with_engine(&latch, move |e| {
        let id = ContactId(contact_id);
        let contact = e
            .contacts()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(latch_client::ClientError::NotFound("contact"))?;
        let number = e.safety_number(id)?;
        Ok(SafetyNumberView {
            contact_id,
            contact_name: contact.address,
            qr: number
                .qr_modules()
                .map_err(latch_client::ClientError::from)?,
            verified: number.verified,
            key_change_pending: e.key_change_pending(id)?,
            digits: number.digits,
        })
    })
    .await
}

/// The outcome of scanning an image for the contact's QR code.
#[derive(Debug, Serialize)]
pub(crate) struct ScanResult {
    result: ScanOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ScanOutcome {
    /// The code is the contact's safety number: they are now verified.
    Verified,
    /// A code was found but it is not this safety number.
    Mismatch,
    /// No readable QR code in the image.
    NoCode,
}

/// Verifies a contact from a screenshot or camera frame of their QR code (PNG or JPEG,
/// base64), decoded in Rust.
#[tauri::command]
pub(crate) async fn verify_qr_image(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
    image: String,
) -> Result<ScanResult, CommandError> {
    if image.len() > MAX_IMAGE_BYTES.div_ceil(3) * 4 {
        return Err(CommandError::BAD_IMAGE);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image.as_bytes())
        .map_err(|_| CommandError::BAD_IMAGE)?;
    with_engine(&latch, move |e| {
        let result = match e.verify_image(ContactId(contact_id), &bytes) {
            Ok(true) => ScanOutcome::Verified,
            Ok(false) => ScanOutcome::Mismatch,
            Err(latch_client::ClientError::Qr(_)) => ScanOutcome::NoCode,
            Err(other) => return Err(other.into()),
        };
        Ok(ScanResult { result })
    })
    .await
}

/// Marks a contact verified after the user compared `digits` (the 60 digits the screen
/// showed; refused if the key changed since), or clears it.
#[tauri::command]
pub(crate) async fn mark_verified(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
    verified: bool,
    digits: String,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.set_verified(ContactId(contact_id), verified, &digits)?)
    })
    .await
}

/// Accepts a contact's new identity key, the one the banner announced (`key`): held
/// secret-chat messages are released. A key that changed again since is refused.
#[tauri::command]
pub(crate) async fn accept_key_change(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
    key: String,
) -> Result<(), CommandError> {
    if key.len() > MAX_KEY_NAME_LEN {
        return Err(CommandError::BAD_KEY);
    }
    Ok(latch
        .engine()?
        .accept_key_change(ContactId(contact_id), &key)
        .await?)
}

/// A contact key as the UI names it: 64 hex digits.
const MAX_KEY_NAME_LEN: usize = 64;

/// Accepts a message request: the contact's chats become ordinary chats.
#[tauri::command]
pub(crate) async fn accept_request(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
) -> Result<(), CommandError> {
    with_engine(
        &latch,
        move |e| Ok(e.accept_request(ContactId(contact_id))?),
    )
    .await
}

/// Declines a message request: the contact and their chats are deleted.
#[tauri::command]
pub(crate) async fn decline_request(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| {
        Ok(e.decline_request(ContactId(contact_id))?)
    })
    .await
}

/// Blocks a contact (a request or anyone else): what they send is dropped unread.
#[tauri::command]
pub(crate) async fn block_contact(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| Ok(e.block(ContactId(contact_id))?)).await
}

/// Unblocks a contact: they are an ordinary contact again.
#[tauri::command]
pub(crate) async fn unblock_contact(
    latch: State<'_, SharedLatch>,
    contact_id: i64,
) -> Result<(), CommandError> {
    with_engine(&latch, move |e| Ok(e.unblock(ContactId(contact_id))?)).await
}

/// A call id as the UI names it: 32 hex digits.
fn call_id(hex_id: &str) -> Result<latch_call::CallId, CommandError> {
    let bytes = hex::decode(hex_id).map_err(|_| CommandError::BAD_CALL_ID)?;
    let id: [u8; 16] = bytes.try_into().map_err(|_| CommandError::BAD_CALL_ID)?;
    Ok(latch_call::CallId(id))
}

/// Calls the contact of a chat (voice) through this computer's microphone and speaker;
/// returns the call's id. Progress arrives as `call` events.
#[tauri::command]
pub(crate) async fn start_call(
    latch: State<'_, SharedLatch>,
    conversation_id: i64,
) -> Result<String, CommandError> {
    let engine = latch.engine()?;
    let devices = blocking(|| Ok(latch_client::sound_devices::system_devices()?)).await?;
    let id = engine
        .start_call(
            ConversationId(conversation_id),
            latch_call::MediaKind::Audio,
            devices,
        )
        .await?;
    Ok(hex::encode(id.0))
}

/// Answers the ringing call through this computer's microphone and speaker.
#[tauri::command]
pub(crate) async fn answer_call(
    latch: State<'_, SharedLatch>,
    call_id: String,
) -> Result<(), CommandError> {
    let id = self::call_id(&call_id)?;
    let engine = latch.engine()?;
    let devices = blocking(|| Ok(latch_client::sound_devices::system_devices()?)).await?;
    Ok(engine.answer_call(id, false, devices).await?)
}

/// Declines the ringing call.
#[tauri::command]
pub(crate) async fn decline_call(
    latch: State<'_, SharedLatch>,
    call_id: String,
) -> Result<(), CommandError> {
    let id = self::call_id(&call_id)?;
    with_engine(&latch, move |e| Ok(e.decline_call(id)?)).await
}

/// Hangs up (or cancels) the current call.
#[tauri::command]
pub(crate) async fn hang_up_call(
    latch: State<'_, SharedLatch>,
    call_id: String,
) -> Result<(), CommandError> {
    let id = self::call_id(&call_id)?;
    with_engine(&latch, move |e| Ok(e.hang_up_call(id)?)).await
}

/// Mutes or unmutes this device's microphone in the call.
#[tauri::command]
pub(crate) async fn set_call_muted(
    latch: State<'_, SharedLatch>,
    call_id: String,
    muted: bool,
) -> Result<(), CommandError> {
    let id = self::call_id(&call_id)?;
    with_engine(&latch, move |e| Ok(e.set_call_muted(id, muted)?)).await
}

/// Full-text search over standard chats (secret chats are never indexed).
#[tauri::command]
pub(crate) async fn search(
    latch: State<'_, SharedLatch>,
    query: String,
) -> Result<Vec<MessageView>, CommandError> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    with_engine(&latch, move |e| Ok(e.search(&query, SEARCH_LIMIT)?)).await
}

/// Opens a web link in the system browser (the UI asked the user first).
#[tauri::command]
pub(crate) fn open_link(url: String) -> Result<(), CommandError> {
    let url = checked_link(&url)?;
    crate::desktop::open_in_browser(&url).map_err(|_| CommandError::NO_BROWSER)
}

/// Tells the shell which conversation is on screen in a focused window (notifications for
/// it are skipped and withdrawn).
#[tauri::command]
pub(crate) fn set_active_conversation(desktop: State<'_, Desktop>, conversation_id: Option<i64>) {
    desktop.set_active(conversation_id);
}

/// The UI shows an interactive conversation list (or its first screen): the launch
/// benchmark's finish line.
#[tauri::command]
pub(crate) fn ui_ready() {
    crate::launch::ready();
}

/// Accepts only absolute http(s) links without credentials, so a message cannot make the
/// browser open a file, a custom scheme or a phishing `user@host` form.
fn checked_link(raw: &str) -> Result<String, CommandError> {
    let url = tauri::Url::parse(raw.trim()).map_err(|_| CommandError::BAD_LINK)?;
    let ok = LINK_SCHEMES.contains(&url.scheme())
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none();
    if ok {
        Ok(url.to_string())
    } else {
        Err(CommandError::BAD_LINK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_web_links_open() {
        assert_eq!(
            checked_link(" https://example.org/a?b=c ").unwrap(),
            "https://example.org/a?b=c"
        );
        assert!(checked_link("http://example.org").is_ok());
        for hostile in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,<script>",
            "https://user:pw@example.org",
            "https://example.org@evil.example",
            "latch://x",
            "not a url",
        ] {
            assert_eq!(
                checked_link(hostile),
                Err(CommandError::BAD_LINK),
                "{hostile}"
            );
        }
    }
}
