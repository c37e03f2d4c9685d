//! Settings for sharing the server fairly: bandwidth limits, the greeting file and the upload
//! hooks, checked into their `Config` form. Reads the banner file; nothing else touches the disk.

use super::{value, Setting};
use crate::data_channel::{parse_rate, Rate};
use crate::hooks::HookConfig;
use std::io::Read;
use std::path::PathBuf;

/// The largest banner file read, and the most lines of it shown: a greeting is sent to every
/// client before it logs in.
pub const MAX_BANNER: u64 = 4096;
pub const MAX_BANNER_LINES: usize = 20;

pub(super) fn rate(s: &Option<Setting<String>>) -> Result<Rate, String> {
    match s {
        Some(s) => parse_rate(&s.value).map_err(|e| s.fail(e)),
        None => Ok(None),
    }
}

/// The 220 greeting from `--banner FILE` (lines joined by `\n`; the reply encoder frames them as
/// a multi-line 220 and sanitises each), or `default`.
pub(super) fn banner(s: &Option<Setting<PathBuf>>, default: String) -> Result<String, String> {
    let Some(s) = s else {
        return Ok(default);
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&s.value)
        .and_then(|f| f.take(MAX_BANNER + 1).read_to_end(&mut bytes))
        .map_err(|e| s.fail(format!("{}: {e}", s.value.display())))?;
    // SECURITY: bounded, so a mistaken path (a log, /dev/zero) cannot flood every client.
    if bytes.len() as u64 > MAX_BANNER {
        return Err(s.fail(format!("larger than {MAX_BANNER} bytes")));
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .take(MAX_BANNER_LINES)
        .collect();
    let joined = lines.join("\n");
    if joined.trim().is_empty() {
        return Ok(default);
    }
    Ok(joined)
}

pub(super) fn upload_hook(
    command: &Option<Setting<String>>,
    url: &Option<Setting<String>>,
) -> Result<HookConfig, String> {
    let hook = HookConfig {
        command: value(command).map(PathBuf::from),
        url: value(url),
    };
    if let Err(e) = hook.check() {
        let s = command.as_ref().or(url.as_ref());
        return Err(s.map_or(e.clone(), |s| s.fail(&e)));
    }
    Ok(hook)
}
