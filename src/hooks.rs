//! Upload hooks: after each completed upload, run a configured program (the path, user and size
//! as its arguments, never through a shell) and/or POST a JSON event to a URL. Sessions hand the
//! event to a bounded queue and go on; one thread of its own runs the hooks in order, each under
//! a timeout, and logs one line per failure. A full queue drops the event with a warning rather
//! than slow a session down. It never touches sessions, sockets of clients or the file store.

use serde::Serialize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Events waiting for the hook thread at most; more are dropped (and logged).
pub const QUEUE: usize = 1024;

/// How long one hook (the program, or the POST) may take before it is killed or given up.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How often a running hook program is looked at (the hook thread's own, not a session's).
const POLL: Duration = Duration::from_millis(20);

/// What to run after an upload (`--upload-hook`, `--upload-hook-url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookConfig {
    /// A program, run with PATH USER SIZE as arguments.
    pub command: Option<PathBuf>,
    /// An `http://` or `https://` URL that gets the event as a JSON POST.
    pub url: Option<String>,
}

impl HookConfig {
    pub fn is_set(&self) -> bool {
        self.command.is_some() || self.url.is_some()
    }

    /// Checks the settings (start-up): the URL's scheme, and a program named by absolute path.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{url:?} is not an http:// or https:// URL"));
            }
        }
        if let Some(cmd) = &self.command {
            if !cmd.is_absolute() {
                return Err(format!(
                    "{} must be an absolute path (it is run without a shell)",
                    cmd.display()
                ));
            }
        }
        Ok(())
    }
}

/// One completed upload, as the hook receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UploadEvent {
    pub event: &'static str,
    /// The file: its path on disk, or its URL in object storage.
    pub path: String,
    /// The path the client sees (from the user's root).
    pub virtual_path: String,
    pub user: String,
    pub size: u64,
    pub session: u64,
    pub remote: String,
    /// Unix seconds.
    pub time: i64,
}

/// The sessions' side: a clonable handle on the queue.
#[derive(Debug, Clone)]
pub struct UploadHooks {
    tx: SyncSender<UploadEvent>,
}

impl UploadHooks {
    /// Starts the hook thread; `None` when no hook is configured.
    pub fn start(config: &HookConfig) -> Result<Option<UploadHooks>, String> {
        if !config.is_set() {
            return Ok(None);
        }
        let (tx, rx) = sync_channel(QUEUE);
        let config = config.clone();
        std::thread::Builder::new()
            .name("upload-hooks".into())
            .spawn(move || run(config, rx))
            .map_err(|e| format!("cannot start the upload-hook thread: {e}"))?;
        Ok(Some(UploadHooks { tx }))
    }

    /// Queues an event without waiting: a full queue loses it, with a warning.
    pub fn notify(&self, event: UploadEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => log::warn!(
                "upload hook: queue full ({QUEUE} events), event for {} dropped",
                crate::printable::escape_controls(&e.virtual_path)
            ),
            Err(TrySendError::Disconnected(_)) => {
                log::error!("upload hook: the hook thread is gone")
            }
        }
    }
}

fn run(config: HookConfig, rx: Receiver<UploadEvent>) {
    let post = config.url.as_ref().and_then(|url| match Poster::new(url) {
        Ok(p) => Some(p),
        Err(e) => {
            log::error!("upload hook: {e}; the URL hook is off");
            None
        }
    });
    for event in rx {
        if let Some(cmd) = &config.command {
            if let Err(e) = run_program(cmd, &event, TIMEOUT) {
                log::warn!(
                    "upload hook {} for {}: {e}",
                    cmd.display(),
                    crate::printable::escape_controls(&event.virtual_path)
                );
            }
        }
        if let Some(post) = &post {
            if let Err(e) = post.send(&event) {
                log::warn!(
                    "upload hook {} for {}: {e}",
                    post.url,
                    crate::printable::escape_controls(&event.virtual_path)
                );
            }
        }
    }
}

/// Runs the program with PATH USER SIZE (no shell: the names are arguments, never parsed),
/// stdin empty and output discarded, killed after `timeout`.
fn run_program(cmd: &PathBuf, event: &UploadEvent, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new(cmd)
        .arg(&event.path)
        .arg(&event.user)
        .arg(event.size.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("ended with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

/// The URL hook: a small runtime of the hook thread's own and one HTTP client.
struct Poster {
    url: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Poster {
    fn new(url: &str) -> Result<Poster, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // A connection per event: a pooled one the receiver has closed since would fail
            // the next POST (events are rare; a fresh connection costs little).
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the hook runtime: {e}"))?;
        Ok(Poster {
            url: url.to_owned(),
            client,
            runtime,
        })
    }

    fn send(&self, event: &UploadEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        // Built inside the runtime: reqwest arms its timeout timer when the request is sent.
        let response = self
            .runtime
            .block_on(async {
                self.client
                    .post(&self.url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
            })
            .map_err(|e| format!("POST failed: {e}"))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("POST answered {s}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_settings_are_checked() {
        let ok = HookConfig {
            command: Some("/usr/bin/true".into()),
            url: Some("http://127.0.0.1:9/x".into()),
        };
        assert_eq!(ok.check(), Ok(()));
        let relative = HookConfig {
            command: Some("scan.sh".into()),
            url: None,
        };
        assert!(relative.check().is_err());
        let ftp = HookConfig {
            command: None,
            url: Some("ftp://x/".into()),
        };
        assert!(ftp.check().is_err());
        assert!(!HookConfig::default().is_set());
    }

    #[test]
    fn a_program_that_fails_or_is_missing_is_reported() {
        let event = UploadEvent {
            event: "upload",
            path: "/tmp/x".into(),
            virtual_path: "/x".into(),
            user: "alice".into(),
            size: 1,
            session: 1,
            remote: "127.0.0.1".into(),
            time: 0,
        };
        let sleep = PathBuf::from("/bin/sleep");
        // `sleep /tmp/x alice 1` fails at once (a bad interval): an exit status, not a hang.
        assert!(run_program(&sleep, &event, Duration::from_secs(5)).is_err());
        let fine = PathBuf::from("/bin/true");
        assert_eq!(run_program(&fine, &event, Duration::from_secs(5)), Ok(()));
        let missing = PathBuf::from("/nonexistent/hook");
        assert!(run_program(&missing, &event, Duration::from_secs(5))
            .unwrap_err()
            .contains("cannot start"));
    }
}
