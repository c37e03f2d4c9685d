//! File descriptors: how many the daemon may open, how many sessions that leaves room for, and
//! a spare descriptor for refusing connections when they have run out anyway.
//!
//! At start (`server::start`) the soft `RLIMIT_NOFILE` is raised to the hard one, and
//! `--max-sessions` is lowered, with one log line, if that many sessions could need more
//! descriptors than the limit leaves after the daemon's own. Sessions over the limit then get
//! 421 from the Listener instead of starving logged-in sessions of descriptors (a PASV that
//! cannot bind) and new clients of an answer (an accept that fails with `EMFILE`).
//!
//! The arithmetic (`sessions_that_fit`) is pure; only `raise_soft_limit`, `open_descriptors`
//! and `Reserve` make system calls. Nothing here touches sessions or sockets it does not own.

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::io;
use std::os::fd::AsFd;

/// Descriptors one session can hold at once, counted from the code: the control connection;
/// a pending passive listener (PASV/EPSV while a transfer runs); the transfer's data socket and
/// the clone the DataChannel keeps to shut it down under a blocking copy (`AbortSwitch`); the
/// file; and either the pipe pair of a spliced TYPE I upload (2) or, in TLS, the socket clone
/// rustls reads and writes through (1). Worst case, a clear STOR: 1 + 1 + 2 + 1 + 2 = 7.
pub const FDS_PER_SESSION: u64 = 7;

/// Descriptors kept free beyond the daemon's fixed ones and the sessions': connections the
/// Listener is refusing with 421, admin and metrics requests, the FileStore and Resolver
/// threads' directory handles while they open a file, log files.
pub const SLACK: u64 = 32;

/// Requests the admin endpoint, and the metrics endpoint, serve at once (each is one socket);
/// the next connection is closed unanswered.
pub const ENDPOINT_REQUESTS_AT_ONCE: usize = 16;

/// What raising the soft limit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the daemon uses epoll, so descriptors
/// above 1024 are fine). A failure leaves the limit as it was and is reported in `now`.
pub fn raise_soft_limit() -> Raised {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum || limit.maximum.is_none() {
        // Already at the hard limit, or the hard limit is "unlimited", which Linux refuses as
        // a soft NOFILE value: keep what we have.
        return Raised {
            before,
            now: before,
        };
    }
    let wanted = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let now = match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => limit.maximum,
        Err(e) => {
            let shown = before.map_or("unlimited".to_owned(), |n| n.to_string());
            log::warn!("could not raise the open-file limit from {shown}: {e}");
            before
        }
    };
    Raised { before, now }
}

/// Descriptors this process has open now (`None` without `/proc`).
pub fn open_descriptors() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle being read is one of them.
    Some((dir.count() as u64).saturating_sub(1))
}

/// How many sessions fit, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    /// The `--max-sessions` to use (per listening address).
    pub max_sessions: usize,
    /// One log line when `max_sessions` is below what was asked for.
    pub note: Option<String>,
}

/// The sessions that fit in `limit` descriptors (`None`: unlimited) after `fixed` for the
/// daemon itself and `SLACK`, at `FDS_PER_SESSION` each (`--max-sessions` counts the sessions
/// of every listening address together). Never more than `requested`, never less than one.
pub fn sessions_that_fit(limit: Option<u64>, fixed: u64, requested: usize) -> Fit {
    let Some(limit) = limit else {
        return Fit {
            max_sessions: requested,
            note: None,
        };
    };
    let reserved = fixed.saturating_add(SLACK);
    let room = limit.saturating_sub(reserved);
    let fits = usize::try_from(room / FDS_PER_SESSION).unwrap_or(usize::MAX);
    if fits >= requested {
        return Fit {
            max_sessions: requested,
            note: None,
        };
    }
    let max_sessions = fits.max(1);
    Fit {
        max_sessions,
        note: Some(format!(
            "--max-sessions lowered from {requested} to {max_sessions}: the \
             open-file limit (RLIMIT_NOFILE) of {limit}, less {reserved} kept for the daemon, \
             leaves room for {fits} sessions of up to {FDS_PER_SESSION} descriptors each; raise \
             the hard limit (ulimit -Hn, LimitNOFILE=) to serve more"
        )),
    }
}

/// Descriptors the daemon itself will hold besides its sessions, given what it has open now
/// (`open_now`, before its threads start): per runtime (the System's and each worker's) an
/// epoll and an eventfd; the signal handler's socket pair; the transfer log; and a file plus a
/// directory for each FileStore thread and each worker's Resolver while they open one; and the
/// requests the admin and metrics endpoints serve at once (`ENDPOINT_REQUESTS_AT_ONCE` each).
pub fn fixed_descriptors(open_now: u64, workers: usize, store_threads: usize) -> u64 {
    let runtimes = workers as u64 + 1;
    let endpoints = 2 * ENDPOINT_REQUESTS_AT_ONCE as u64;
    open_now + 2 * runtimes + 2 + 1 + 2 * (store_threads as u64 + workers as u64) + endpoints
}

/// Is this accept error the process (`EMFILE`) or the system (`ENFILE`) out of descriptors?
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    let raw = e.raw_os_error();
    raw == Some(Errno::MFILE.raw_os_error()) || raw == Some(Errno::NFILE.raw_os_error())
}

/// A descriptor held back for the moment the others have run out. When `accept` fails with
/// `EMFILE`, the listener's queue is not drained by waiting: the clients in it hang. With the
/// spare closed, one more connection can be accepted, told `421`, and closed, and the spare is
/// opened again. Repeated, this answers every queued client until descriptors are free again.
#[derive(Debug)]
pub struct Reserve {
    spare: Option<std::fs::File>,
}

impl Reserve {
    /// Opens the spare (`/dev/null`). Without one, `refuse_one` refuses nothing.
    pub fn new() -> Reserve {
        Reserve {
            spare: std::fs::File::open("/dev/null").ok(),
        }
    }

    /// True while the spare is held.
    pub fn is_armed(&self) -> bool {
        self.spare.is_some()
    }

    /// After `accept` failed with `is_out_of_descriptors`: frees the spare, accepts one pending
    /// connection (without blocking), sends it `reply` (a whole `421 ...\r\n` line, which a new
    /// socket's buffer always takes), closes it, and takes the spare again. Returns whether a
    /// connection was refused (`false`: none was waiting, or there is no spare).
    pub fn refuse_one<L: AsFd>(&mut self, listener: L, reply: &[u8]) -> io::Result<bool> {
        use rustix::net::{accept_with, send, SendFlags, SocketFlags};
        let Some(spare) = self.spare.take() else {
            return Ok(false);
        };
        drop(spare);
        let refused = match accept_with(&listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok(conn) => {
                // Best effort: the client may be gone already.
                let _ = send(&conn, reply, SendFlags::NOSIGNAL);
                let _ = rustix::net::shutdown(&conn, rustix::net::Shutdown::Write);
                Ok(true)
            }
            Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => Ok(false),
            Err(e) => Err(e.into()),
        };
        self.spare = std::fs::File::open("/dev/null").ok();
        refused
    }
}

impl Default for Reserve {
    fn default() -> Self {
        Reserve::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn sessions_that_fit_the_descriptor_limit() {
        // (limit, fixed, requested) -> max_sessions, lowered?
        let cases = [
            (Some(1_048_576), 40, 2000, 2000, false),
            (None, 40, 2000, 2000, false),
            // 120 - (40 + 32) = 48 free: 6 sessions of 7.
            (Some(120), 40, 2000, 6, true),
            // Exactly enough: 72 + 7 * 10.
            (Some(142), 40, 10, 10, false),
            (Some(141), 40, 10, 9, true),
            // Nothing left: still one session, and a note.
            (Some(50), 40, 2000, 1, true),
            (Some(u64::MAX), u64::MAX, 2000, 1, true),
            (Some(u64::MAX), 0, 2000, 2000, false),
        ];
        for (limit, fixed, requested, want, lowered) in cases {
            let fit = sessions_that_fit(limit, fixed, requested);
            assert_eq!(fit.max_sessions, want, "{limit:?} {fixed} {requested}");
            assert_eq!(fit.note.is_some(), lowered, "{fit:?}");
        }
    }

    #[test]
    fn the_note_is_one_line_naming_both_numbers_and_the_limit() {
        let fit = sessions_that_fit(Some(120), 40, 2000);
        let note = fit.note.expect("lowered");
        assert!(!note.contains('\n'), "{note}");
        assert!(
            note.contains("from 2000 to 6") && note.contains("120"),
            "{note}"
        );
    }

    #[test]
    fn fixed_descriptors_count_runtimes_and_pools() {
        // 10 open, 2 workers: 3 runtimes * 2 + signal 2 + xferlog 1 + (4 + 2) * 2, and 16
        // requests at once on each of the admin and metrics endpoints.
        assert_eq!(fixed_descriptors(10, 2, 4), 10 + 6 + 2 + 1 + 12 + 32);
    }

    #[test]
    fn out_of_descriptor_errors_are_recognised() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            Errno::MFILE.raw_os_error()
        )));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            Errno::NFILE.raw_os_error()
        )));
        assert!(!is_out_of_descriptors(&io::Error::from(
            io::ErrorKind::WouldBlock
        )));
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise_soft_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(raised.now, after.current);
        if after.maximum.is_some() {
            assert_eq!(after.current, after.maximum);
        }
        assert!(open_descriptors().is_some_and(|n| n >= 3));
    }

    #[test]
    fn a_reserve_refuses_a_waiting_client_with_421_and_is_armed_again() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let mut reserve = Reserve::new();
        assert!(reserve.is_armed());
        // Nobody waiting: nothing refused, the spare is back.
        assert!(!reserve
            .refuse_one(&listener, b"421 x\r\n")
            .expect("no error"));
        assert!(reserve.is_armed());
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reply = b"421 Too many open files, try again later\r\n";
        assert!(reserve.refuse_one(&listener, reply).expect("refused"));
        assert!(reserve.is_armed());
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("421 then EOF");
        assert_eq!(got, reply);
    }
}
