//! The main window's size, remembered across launches in `<home>/window.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The smallest and largest sizes restored, so a damaged file cannot make the window vanish
/// or swallow the screen.
const MIN: (u32, u32) = (480, 400);
const MAX: (u32, u32) = (8192, 8192);

/// A window's logical size and whether it was maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowState {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) maximized: bool,
}

const FILE: &str = "window.json";

impl WindowState {
    /// The saved state, if there is a readable one.
    pub(crate) fn load(home: &Path) -> Option<Self> {
        let bytes = std::fs::read(home.join(FILE)).ok()?;
        let state: Self = serde_json::from_slice(&bytes).ok()?;
        Some(Self {
            width: state.width.clamp(MIN.0, MAX.0),
            height: state.height.clamp(MIN.1, MAX.1),
            maximized: state.maximized,
        })
    }

    /// Saves the state (best effort: a read-only home only loses the size).
    pub(crate) fn save(&self, home: &Path) {
        if let Ok(json) = serde_json::to_vec(self) {
            let tmp = home.join("window.json.tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(tmp, home.join(FILE));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_size_comes_back_and_nonsense_is_clamped() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(WindowState::load(home.path()), None);
        let state = WindowState {
            width: 1000,
            height: 700,
            maximized: true,
        };
        state.save(home.path());
        assert_eq!(WindowState::load(home.path()), Some(state));

        std::fs::write(
            home.path().join(FILE),
            r#"{"width":1,"height":99999999,"maximized":false}"#,
        )
        .unwrap();
        assert_eq!(
            WindowState::load(home.path()),
            Some(WindowState {
                width: MIN.0,
                height: MAX.1,
                maximized: false
            })
        );
        std::fs::write(home.path().join(FILE), "not json").unwrap();
        assert_eq!(WindowState::load(home.path()), None);
    }
}
