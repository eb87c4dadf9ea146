//! The few W3C WebDriver commands the tests use, over plain HTTP to `tauri-driver` on loopback.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Upper bound on any single WebDriver request; launching the app is the slowest one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A WebDriver request that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebDriverError {
    /// The driver answered with a WebDriver error (e.g. `no such element`).
    #[error("{command}: {error}: {message}")]
    Command {
        /// The command that failed.
        command: String,
        /// The W3C error code.
        error: String,
        /// The driver's explanation.
        message: String,
    },
    /// The driver could not be reached or answered something that is not WebDriver JSON.
    #[error("{command}: {detail}")]
    Transport {
        /// The command that failed.
        command: String,
        /// What went wrong.
        detail: String,
    },
}

impl WebDriverError {
    /// Whether the driver said the element does not exist (yet).
    #[must_use]
    pub fn is_no_such_element(&self) -> bool {
        matches!(self, Self::Command { error, .. } if error == "no such element")
    }
}

/// A WebDriver session on one app window; deleted (which closes the app) when dropped.
#[derive(Debug)]
pub struct Session {
    agent: ureq::Agent,
    base: String,
}

/// A reference to an element in the session's document.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

impl Session {
    pub(crate) fn create(port: u16, app: &Path) -> Result<Self, WebDriverError> {
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
        let root = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "wry",
                    "tauri:options": { "application": app }
                }
            }
        });
        let value = send(
            &agent,
            "POST",
            &format!("{root}/session"),
            Some(capabilities),
        )?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| transport("new session", "no sessionId in the reply"))?;
        Ok(Self {
            base: format!("{root}/session/{id}"),
            agent,
        })
    }

    fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        send(&self.agent, method, &format!("{}{path}", self.base), body)
    }

    /// Finds the first element matching a CSS selector, failing at once if there is none.
    ///
    /// # Errors
    /// `no such element` when nothing matches, or a transport error.
    pub fn find(&self, css: &str) -> Result<Element, WebDriverError> {
        let value = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        let id = value
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| transport("find element", "no element reference in the reply"))?;
        Ok(Element { id: id.to_owned() })
    }

    /// Like [`Session::find`], but `None` when nothing matches yet.
    ///
    /// # Errors
    /// Any error other than `no such element`.
    pub fn try_find(&self, css: &str) -> Result<Option<Element>, WebDriverError> {
        match self.find(css) {
            Ok(element) => Ok(Some(element)),
            Err(e) if e.is_no_such_element() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Clicks an element.
    ///
    /// # Errors
    /// When the driver refuses (e.g. the element is not interactable).
    pub fn click(&self, element: &Element) -> Result<(), WebDriverError> {
        self.command(
            "POST",
            &format!("/element/{}/click", element.id),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Types `text` into an element as key presses (so the page sees real input events).
    /// [`ENTER`] presses Enter.
    ///
    /// # Errors
    /// When the element cannot take keyboard input.
    pub fn send_keys(&self, element: &Element, text: &str) -> Result<(), WebDriverError> {
        self.command(
            "POST",
            &format!("/element/{}/value", element.id),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// Empties an input or text area.
    ///
    /// # Errors
    /// When the element is not editable.
    pub fn clear(&self, element: &Element) -> Result<(), WebDriverError> {
        self.command(
            "POST",
            &format!("/element/{}/clear", element.id),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// An attribute of an element (`None` when it is absent).
    ///
    /// # Errors
    /// When the element is gone or the driver fails.
    pub fn attribute(
        &self,
        element: &Element,
        name: &str,
    ) -> Result<Option<String>, WebDriverError> {
        let value = self.command(
            "GET",
            &format!("/element/{}/attribute/{name}", element.id),
            None,
        )?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// The rendered text of an element.
    ///
    /// # Errors
    /// When the element is gone or the driver fails.
    pub fn text(&self, element: &Element) -> Result<String, WebDriverError> {
        let value = self.command("GET", &format!("/element/{}/text", element.id), None)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| transport("element text", "the text is not a string"))
    }

    /// Runs a script in the page and returns its JSON result.
    ///
    /// # Errors
    /// When the script throws or the driver fails.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, WebDriverError> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs an asynchronous script; it finishes by calling its last argument with the result.
    ///
    /// # Errors
    /// When the script throws, never calls back within the driver's script timeout, or the
    /// driver fails.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value, WebDriverError> {
        self.command(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// A PNG screenshot of the window.
    ///
    /// WebKitWebDriver takes it at the webview's next paint. The app ships without GPU
    /// compositing, and in that mode a page at rest does not paint at all (a focused field
    /// whose text is selected has no blinking caret), so the request would wait until its
    /// timeout. While the screenshot is pending, a pixel in the corner changes by one step of
    /// alpha every animation frame, which makes each frame paint; it is removed afterwards.
    ///
    /// # Errors
    /// When the driver fails or answers something that is not base64.
    pub fn screenshot(&self) -> Result<Vec<u8>, WebDriverError> {
        self.execute(PAINT_WHILE_WAITING, json!([true]))?;
        let shot = self.command("GET", "/screenshot", None);
        let stopped = self.execute(PAINT_WHILE_WAITING, json!([false]));
        let png = decode_png(&shot?, "screenshot")?;
        stopped?;
        Ok(png)
    }
}

/// Starts (`true`) or stops (`false`) a paint in every animation frame: a 1-pixel element in
/// the top-left corner whose background alternates between transparent and the faintest
/// alpha a pixel can hold.
const PAINT_WHILE_WAITING: &str = r"const [on] = arguments;
    const state = window.__latchE2ePaint ??= { element: null };
    if (!on) {
      state.element?.remove();
      state.element = null;
      return;
    }
    if (state.element) return;
    const element = document.createElement('div');
    element.setAttribute('aria-hidden', 'true');
    element.style.cssText =
      'position:fixed;left:0;top:0;width:1px;height:1px;pointer-events:none;z-index:2147483647';
    document.documentElement.append(element);
    state.element = element;
    let faint = false;
    const frame = () => {
      if (state.element !== element) return;
      faint = !faint;
      element.style.background = faint ? 'rgba(0, 0, 0, 0.004)' : 'transparent';
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);";

fn decode_png(value: &Value, command: &str) -> Result<Vec<u8>, WebDriverError> {
    let encoded = value
        .as_str()
        .ok_or_else(|| transport(command, "the image is not a string"))?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| transport(command, &e.to_string()))
}

/// The WebDriver key code of Enter, for [`Session::send_keys`].
pub const ENTER: &str = "\u{E007}";

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the session closes the app; if the app already died there is nothing to do.
        let _ = send(&self.agent, "DELETE", &self.base, None);
    }
}

/// Whether the driver on `port` reports itself ready for a new session.
pub(crate) fn is_ready(port: u16) -> bool {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    send(
        &agent,
        "GET",
        &format!("http://127.0.0.1:{port}/status"),
        None,
    )
    .is_ok_and(|status| status.get("ready").and_then(Value::as_bool) == Some(true))
}

fn transport(command: &str, detail: &str) -> WebDriverError {
    WebDriverError::Transport {
        command: command.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Sends one command and unwraps the W3C `{"value": …}` envelope, turning error replies
/// (which arrive with 4xx/5xx statuses) into [`WebDriverError::Command`].
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let command = format!(
        "{method} {}",
        url.rsplit_once("/session").map_or(url, |(_, p)| p)
    );
    let request = agent.request(method, url);
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(e)) => return Err(transport(&command, &e.to_string())),
    };
    let reply: Value = response
        .into_json()
        .map_err(|e| transport(&command, &format!("unreadable reply: {e}")))?;
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(WebDriverError::Command {
            command,
            error: error.to_owned(),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(value)
}
