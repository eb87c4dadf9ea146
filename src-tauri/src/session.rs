//! The app's one profile and its running engine, shared by every command.
//!
//! One data directory holds one profile for the app (the first one, or `LATCH_PROFILE`). A
//! keyring-protected profile opens at start-up without asking; a passphrase-protected one
//! waits for [`Latch::unlock`]. Once open, the engine runs until the app exits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use latch_client::events::ConnectionState;
use latch_client::profile::{DEFAULT_RELAY, KEYRING_SERVICE, default_home};
use latch_client::{Engine, Event, OpenProfile, Profiles, Protection};
use latch_store::{KeyName, KeyStore, OsKeyring, ProfileId, SecretBytes};
use serde::Serialize;
use tauri::async_runtime::JoinHandle;
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;

use crate::error::CommandError;

/// Who this app is, as the UI shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Me {
    /// The profile's name.
    pub(crate) name: String,
    /// The handle others reach it by, once registered.
    pub(crate) handle: Option<String>,
    /// The relay it uses.
    pub(crate) relay_url: String,
}

/// What the UI shows first.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum Startup {
    /// No profile yet: the first-run screen.
    New {
        /// The relay URL to prefill.
        default_relay_url: String,
        /// Whether the OS keyring works here; without it the profile needs a passphrase.
        keyring: bool,
    },
    /// A passphrase protects the profile: the unlock screen.
    Locked {
        /// The profile's name.
        name: String,
    },
    /// The profile is open.
    Ready {
        /// Who we are.
        me: Me,
    },
}

/// What the shell pushes to the UI: the engine's events, and `resync` when the UI fell so
/// far behind that it must reload what it shows.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum UiEvent {
    /// An engine event, as is.
    Engine(Event),
    /// Events were dropped; reload.
    Shell(ShellEvent),
}

/// Events the shell itself adds.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ShellEvent {
    /// The UI missed events: reload conversations and the open chat.
    Resync,
}

/// The state every command shares.
pub(crate) struct Latch {
    profiles: Profiles,
    home: PathBuf,
    engine: RwLock<Option<Engine>>,
    forwarder: Mutex<Option<JoinHandle<()>>>,
}

impl Latch {
    /// The profiles under `LATCH_HOME`, else the same place the `latch` CLI uses.
    pub(crate) fn new() -> Result<Self, CommandError> {
        let home = std::env::var_os("LATCH_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(default_home)
            .ok_or(CommandError::NO_DATA_DIR)?;
        Ok(Self {
            profiles: Profiles::new(&home, Box::new(OsKeyring::new(KEYRING_SERVICE))),
            home,
            engine: RwLock::new(None),
            forwarder: Mutex::new(None),
        })
    }

    /// Where the app keeps its profiles and its own files (window size, instance lock).
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// The running engine.
    pub(crate) fn engine(&self) -> Result<Engine, CommandError> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(CommandError::NO_PROFILE)
    }

    /// The running engine, if a profile is open.
    pub(crate) fn engine_if_open(&self) -> Option<Engine> {
        self.engine().ok()
    }

    /// The profile this app uses: `LATCH_PROFILE` if it exists, else the first one.
    fn profile_name(&self) -> Result<Option<String>, CommandError> {
        let names = self.profiles.list()?;
        let wanted = std::env::var_os("LATCH_PROFILE").and_then(|n| n.into_string().ok());
        Ok(match wanted {
            Some(name) => names.into_iter().find(|n| *n == name),
            None => names.into_iter().next(),
        })
    }

    /// Decides the first screen, opening a keyring profile on the way. Blocking.
    pub(crate) fn startup(&self) -> Result<(Startup, Option<Engine>), CommandError> {
        if let Some(engine) = self.engine_if_open() {
            return Ok((Startup::Ready { me: me(&engine)? }, None));
        }
        let Some(name) = self.profile_name()? else {
            return Ok((
                Startup::New {
                    default_relay_url: DEFAULT_RELAY.to_owned(),
                    keyring: keyring_works(),
                },
                None,
            ));
        };
        if self.profiles.info(&name)?.protection == Protection::Passphrase {
            return Ok((Startup::Locked { name }, None));
        }
        let engine = Engine::new(self.profiles.open(&name)?)?;
        Ok((Startup::Ready { me: me(&engine)? }, Some(engine)))
    }

    /// Creates the profile (keys in the keyring, or under `passphrase`). Blocking.
    pub(crate) fn create(
        &self,
        name: &str,
        relay_url: &str,
        passphrase: Option<&str>,
    ) -> Result<Engine, CommandError> {
        if self.engine_if_open().is_some() || self.profile_name()?.is_some() {
            return Err(CommandError::PROFILE_EXISTS);
        }
        let profile: OpenProfile = match passphrase {
            Some(p) => self.profiles.create_with_passphrase(name, relay_url, p)?,
            None => self.profiles.create(name, relay_url)?,
        };
        Ok(Engine::new(profile)?)
    }

    /// Deletes a profile whose registration failed (its engine already shut down), so the
    /// user can try again. Blocking: the keyring is involved.
    pub(crate) fn abandon(&self, engine: Engine) {
        let name = engine.info().name.clone();
        drop(engine);
        if self.profiles.delete(&name).is_err() {
            // Keys that cannot be removed are useless without the files; the files must go,
            // or the next attempt would find a profile that never registered.
            let _ = std::fs::remove_dir_all(self.home.join("profiles").join(&name));
        }
    }

    /// Opens the passphrase-protected profile. Blocking (Argon2id on purpose).
    pub(crate) fn unlock(&self, passphrase: &str) -> Result<Engine, CommandError> {
        if let Some(engine) = self.engine_if_open() {
            return Ok(engine);
        }
        let name = self.profile_name()?.ok_or(CommandError::NO_PROFILE)?;
        Ok(Engine::new(
            self.profiles.open_with_passphrase(&name, passphrase)?,
        )?)
    }

    /// Makes `engine` the app's engine and starts its relay connection.
    pub(crate) fn activate(&self, engine: &Engine) {
        let mut slot = self.engine.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            engine.start();
            *slot = Some(engine.clone());
        }
    }

    /// Forwards the engine's events to the UI through `channel`, replacing an earlier
    /// subscription (the page reloaded). The connection state is sent first, so the UI never
    /// waits for a change to learn it.
    pub(crate) fn subscribe(&self, channel: Channel<UiEvent>) -> Result<(), CommandError> {
        let engine = self.engine()?;
        let mut events = engine.subscribe();
        let mut connection = engine.connection();
        let task = tauri::async_runtime::spawn(async move {
            let state: ConnectionState = *connection.borrow_and_update();
            if channel
                .send(UiEvent::Engine(Event::Connection { state }))
                .is_err()
            {
                return;
            }
            loop {
                let event = match events.recv().await {
                    Ok(event) => UiEvent::Engine(event),
                    Err(RecvError::Lagged(_)) => UiEvent::Shell(ShellEvent::Resync),
                    Err(RecvError::Closed) => return,
                };
                // The page went away (reload or exit): a new subscription takes over.
                if channel.send(event).is_err() {
                    return;
                }
            }
        });
        let old = self
            .forwarder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
        Ok(())
    }

    /// Stops the engine so its last commits finish and the profile's lock is released.
    pub(crate) async fn shutdown(&self) {
        let engine = self
            .engine
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
    }
}

/// Who the engine's profile is.
pub(crate) fn me(engine: &Engine) -> Result<Me, CommandError> {
    Ok(Me {
        name: engine.info().name.clone(),
        handle: engine.handle()?,
        relay_url: engine.info().relay_url.clone(),
    })
}

/// Whether the OS keyring stores and returns a secret here: a throw-away entry is written,
/// read back and deleted, so first run can offer a passphrase before anything is created.
pub(crate) fn keyring_works() -> bool {
    probe(&OsKeyring::new(KEYRING_SERVICE))
}

fn probe(keys: &dyn KeyStore) -> bool {
    let Ok(id) = ProfileId::new("latch-keyring-probe") else {
        return false;
    };
    let name = KeyName::database_key(&id);
    // Not a secret: only proves that what goes in comes back out.
    let bytes = *b"latch keyring ok";
    let written = keys.set(&name, &SecretBytes::new(bytes.to_vec())).is_ok();
    let read_back = written && keys.get(&name).is_ok_and(|s| s.expose() == bytes);
    let _ = keys.delete(&name);
    read_back
}

/// The shared state, as Tauri manages it.
pub(crate) type SharedLatch = Arc<Latch>;

#[cfg(test)]
mod tests {
    use latch_store::MemoryKeyStore;

    use super::*;

    #[test]
    fn a_working_key_store_passes_the_probe_and_keeps_nothing() {
        let keys = MemoryKeyStore::new();
        assert!(probe(&keys));
        let id = ProfileId::new("latch-keyring-probe").unwrap();
        assert!(keys.get(&KeyName::database_key(&id)).is_err());
    }

    #[test]
    fn a_key_store_that_refuses_fails_the_probe() {
        struct Refusing;
        impl KeyStore for Refusing {
            fn set(&self, _: &KeyName, _: &SecretBytes) -> Result<(), latch_store::KeyStoreError> {
                Err(latch_store::KeyStoreError::Unavailable("no bus".into()))
            }
            fn get(&self, n: &KeyName) -> Result<SecretBytes, latch_store::KeyStoreError> {
                Err(latch_store::KeyStoreError::NotFound(n.clone()))
            }
            fn delete(&self, _: &KeyName) -> Result<(), latch_store::KeyStoreError> {
                Ok(())
            }
        }
        assert!(!probe(&Refusing));
    }

    #[test]
    fn ui_events_serialize_as_the_ui_expects() {
        let resync = serde_json::to_string(&UiEvent::Shell(ShellEvent::Resync)).unwrap();
        assert_eq!(resync, r#"{"type":"resync"}"#);
        let online = serde_json::to_string(&UiEvent::Engine(Event::Connection {
            state: ConnectionState::Online,
        }))
        .unwrap();
        assert_eq!(online, r#"{"type":"connection","state":"online"}"#);
        // Message requests and blocking reach the UI as its types.ts names them.
        let standing = serde_json::to_string(&UiEvent::Engine(Event::ContactStanding {
            contact_id: 7,
            standing: "blocked",
        }))
        .unwrap();
        assert_eq!(
            standing,
            r#"{"type":"contact_standing","contact_id":7,"standing":"blocked"}"#
        );
        let removed = serde_json::to_string(&UiEvent::Engine(Event::ContactRemoved {
            contact_id: 7,
            conversation_ids: vec![3, 4],
        }))
        .unwrap();
        assert_eq!(
            removed,
            r#"{"type":"contact_removed","contact_id":7,"conversation_ids":[3,4]}"#
        );
    }
}
