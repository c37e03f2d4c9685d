//! Health and readiness, for load-balancer checks and Kubernetes probes. `/health` says the
//! daemon answers at all; `/ready` says it should be sent new clients: not draining (SIGTERM
//! turns it off first, before the listeners stop accepting) and its storage reachable. The
//! storage probe (each local root a folder, each bucket one small listing) runs on a blocking
//! thread and its answer is kept for `PROBE_CACHE`, so a probe every second costs one S3 request
//! every few seconds at most. Neither answer reveals anything: no names, no paths.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a storage probe's answer is reused.
pub const PROBE_CACHE: Duration = Duration::from_secs(5);

/// The storage probe: `Ok` when every root can be reached (blocking; run off the reactor).
pub type Probe = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

pub struct Readiness {
    draining: AtomicBool,
    probe: Probe,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl Readiness {
    pub fn new(probe: Probe) -> Arc<Readiness> {
        Arc::new(Readiness {
            draining: AtomicBool::new(false),
            probe,
            last: Mutex::new(None),
        })
    }

    /// From now on `/ready` answers 503 (SIGTERM, before the listeners stop accepting).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether to send this daemon new clients; `Err` says why not (for the log).
    pub async fn check(self: &Arc<Self>) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining".into());
        }
        if let Some(answer) = self.cached() {
            return answer;
        }
        let me = self.clone();
        let answer = tokio::task::spawn_blocking(move || (me.probe)())
            .await
            .unwrap_or_else(|e| Err(format!("storage probe failed: {e}")));
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), answer.clone()));
        }
        answer
    }

    fn cached(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().ok()?;
        match &*last {
            Some((at, answer)) if at.elapsed() < PROBE_CACHE => Some(answer.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[actix_rt::test]
    async fn ready_until_draining_and_probes_are_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let ready = Readiness::new(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
        assert_eq!(ready.check().await, Ok(()));
        assert_eq!(ready.check().await, Ok(()));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second answer is the cached one"
        );
        ready.drain();
        assert_eq!(ready.check().await, Err("draining".into()));
    }

    #[actix_rt::test]
    async fn unreachable_storage_is_not_ready() {
        let ready = Readiness::new(Box::new(|| Err("bucket unreachable".into())));
        assert_eq!(ready.check().await, Err("bucket unreachable".into()));
    }
}
