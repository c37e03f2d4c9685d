//! The daemon's log: text or JSON lines, to stderr or a file that SIGHUP reopens (logrotate),
//! and the transfer log's reopening. Sets up `env_logger` (with rustls' own warnings kept out
//! by default); knows nothing of sessions.
//!
//! SECURITY: messages quote user names, paths and command lines that clients chose. Their
//! control characters are escaped always, not only on a terminal (log files get `cat`ed and
//! `tail`ed too), so a CR or LF in a message cannot forge a line and an escape sequence cannot
//! drive the operator's terminal. JSON output escapes them the same way before encoding.

use crate::config_file::{LogFormat, LogSettings};
use crate::printable::escape_controls;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A file opened for appending that `reopen` replaces by the file now at its path (after
/// logrotate moved the old one away). Clones share the file.
#[derive(Clone)]
pub struct AppendFile {
    path: Arc<PathBuf>,
    file: Arc<Mutex<File>>,
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl AppendFile {
    pub fn open(path: &Path) -> io::Result<AppendFile> {
        Ok(AppendFile {
            path: Arc::new(path.to_path_buf()),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the path again; on failure the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let new = open_append(&self.path)?;
        *self.lock() = new;
        Ok(())
    }
}

impl Write for AppendFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One write per log line with O_APPEND: lines never interleave.
        self.lock().write_all(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// Whether stderr is connected to the systemd journal (`JOURNAL_STREAM` names its device and
/// inode), which time-stamps every line itself and reads `<N>` priority prefixes.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stream = stream.to_string_lossy().into_owned();
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    match rustix::fs::fstat(rustix::stdio::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// syslog(3) priority of a level, for the journal's `<N>` prefix.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Sets up the global logger. Returns the log file, to reopen on SIGHUP.
pub fn init(settings: &LogSettings) -> Result<Option<AppendFile>, String> {
    let file = match &settings.file {
        Some(path) => {
            Some(AppendFile::open(path).map_err(|e| format!("log file {}: {e}", path.display()))?)
        }
        None => None,
    };
    let journal = file.is_none() && stderr_is_journal();
    let format = settings.format;
    let mut builder = env_logger::Builder::new();
    // rustls warns, with no session id, about client mistakes it copes with: every client
    // that connects by IP address sends that address as SNI ("Illegal SNI"), one warning per
    // connection. Its lines are kept to errors unless RUST_LOG or --log-level name `rustls`;
    // a handshake that fails is logged by the connection, with its session id.
    builder.filter_module("rustls", log::LevelFilter::Error);
    // opendal logs each retry of an S3 request with the whole error and a backtrace; the
    // ObjectStore logs one line when a request finally fails (or RUST_LOG names `opendal`).
    builder.filter_module("opendal", log::LevelFilter::Error);
    builder.parse_env(env_logger::Env::default().default_filter_or(settings.level.as_str()));
    builder.format(move |buf, record| {
        let text = match record.args().as_str() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(record.args().to_string()),
        };
        let message = escape_controls(&text);
        let level = record.level();
        match format {
            LogFormat::Json => {
                let mut line = serde_json::Map::new();
                if !journal {
                    line.insert("time".into(), buf.timestamp_millis().to_string().into());
                }
                line.insert("level".into(), level.as_str().into());
                line.insert("target".into(), record.target().into());
                line.insert("message".into(), message.into_owned().into());
                let prefix = if journal {
                    format!("<{}>", priority(level))
                } else {
                    String::new()
                };
                writeln!(buf, "{prefix}{}", serde_json::Value::Object(line))
            }
            LogFormat::Text if journal => writeln!(
                buf,
                "<{}>[{level:<5} {}] {message}",
                priority(level),
                record.target()
            ),
            LogFormat::Text => {
                let style = buf.default_level_style(level);
                writeln!(
                    buf,
                    "[{} {style}{level:<5}{style:#} {}] {message}",
                    buf.timestamp_millis(),
                    record.target()
                )
            }
        }
    });
    if let Some(f) = &file {
        builder.target(env_logger::Target::Pipe(Box::new(f.clone())));
    }
    builder
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(file)
}

/// The transfer log behind a pipe, so it can be reopened on SIGHUP without the `XferLog` actor
/// knowing: the actor appends to `/proc/self/fd/N` (the pipe's write end) and a relay thread
/// copies whole buffers to the file, which `reopen` replaces.
pub struct XferRelay {
    file: AppendFile,
    read: Arc<Mutex<File>>,
    write: Option<OwnedFd>,
}

impl XferRelay {
    /// Opens `path` (so a bad path stops the start naming it) and the pipe. `None` without
    /// /proc: the caller then gives the actor the path itself (no reopening).
    pub fn open(path: &Path) -> Result<Option<XferRelay>, String> {
        let file =
            AppendFile::open(path).map_err(|e| format!("transfer log {}: {e}", path.display()))?;
        if !Path::new("/proc/self/fd").is_dir() {
            return Ok(None);
        }
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("transfer log pipe: {e}"))?;
        rustix::io::ioctl_fionbio(&read, true).map_err(|e| format!("transfer log pipe: {e}"))?;
        Ok(Some(XferRelay {
            file,
            read: Arc::new(Mutex::new(File::from(read))),
            write: Some(write),
        }))
    }

    /// The path to give the `XferLog` actor instead of the real one.
    pub fn actor_path(&self) -> Option<PathBuf> {
        self.write
            .as_ref()
            .map(|w| PathBuf::from(format!("/proc/self/fd/{}", w.as_raw_fd())))
    }

    /// Once the actor has opened its end: closes ours and starts the relay thread (after any
    /// privilege switch: it is a thread).
    pub fn start(&mut self) -> Result<(), String> {
        self.write = None;
        let read = self.read.clone();
        let mut file = self.file.clone();
        let fd = rustix::io::dup(&*lock(&read)).map_err(|e| format!("transfer log pipe: {e}"))?;
        std::thread::Builder::new()
            .name("xferlog-relay".into())
            .spawn(move || loop {
                // Wait for data (or the end) without holding the lock, then copy under it.
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
                    continue;
                }
                if copy_available(&read, &mut file) {
                    break;
                }
            })
            .map_err(|e| format!("transfer log relay thread: {e}"))?;
        Ok(())
    }

    /// Copies what the pipe holds now (at shutdown, so no line is lost).
    pub fn drain(&self) {
        copy_available(&self.read, &mut self.file.clone());
    }

    pub fn reopen(&self) -> io::Result<()> {
        self.file.reopen()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn lock(m: &Mutex<File>) -> MutexGuard<'_, File> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Copies everything readable now; true at the pipe's end.
fn copy_available(read: &Mutex<File>, file: &mut AppendFile) -> bool {
    let mut pipe = lock(read);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                if let Err(e) = file.write(&buf[..n]) {
                    log::error!("transfer log write failed: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
