//! The object-storage back-end: a user's root is a prefix in an S3-compatible bucket.
//!
//! The ObjectStore actor answers the same requests as the FileStore pool (stat, list, open for
//! reading and writing, finish an upload, MKD, RMD, DELE, RNFR/RNTO); `Store::ask` sends a
//! request here when its jail is a bucket. Every S3 call runs on one shared multi-threaded
//! runtime (`runtime`), so no Session's worker and no pool thread waits on the network; the
//! handlers return futures that await it. S3 is reached through `opendal` (requests signed,
//! retried with backoff, bounded by timeouts); diagrams/SPEC.md maps each FTP command to the
//! S3 calls it makes.
//!
//! SECURITY: the jail. Each `Bucket` is an opendal operator rooted at the user's prefix, and
//! every key is built from a `VirtualPath` (`keys.rs`), already normalised: no `.`, `..` or
//! empty component, so no key leaves the prefix; keys longer than S3 allows are refused
//! before any request. Upload temporary names stay unnameable here as on the disk.
//!
//! Files: this one holds the actor, the runtime, `Bucket` and the error mapping; `reads.rs`
//! stat, list and downloads; `writes.rs` uploads and the commands that change the bucket;
//! `stream.rs` the channels between the copy thread and the runtime.

mod attributes;
mod keys;
mod reads;
pub mod stream;
pub mod sweep;
mod writes;

pub use writes::uploads_in_flight;

use crate::error::StoreError;
use actix::prelude::*;
use opendal::Operator;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Requests and transfers on object storage all run here: a few threads, whatever the number
/// of sessions (they wait on the network, not the CPU).
const RUNTIME_THREADS: usize = 2;

/// How long a request may take before it is retried (by the retry layer) or fails, and how
/// often it is retried. Two sets: quick requests (HEAD, a listing page, a delete, a marker)
/// answer in milliseconds from a healthy store, so a hanging one is given up soon and the
/// client gets 451 within about half a minute; transfers and server-side copies (a 5 GiB
/// CopyObject takes minutes) get a long overall bound and an idle bound instead.
#[derive(Clone, Copy)]
struct Patience {
    /// One request, start to end (a copy, a stat, a page).
    request: Duration,
    /// A streaming read or write without a byte moving.
    idle: Duration,
    /// Attempts after the first for a failure worth retrying (throttling, 5xx, a reset
    /// connection, a timeout), with exponential backoff and jitter from `FIRST_BACKOFF`.
    retries: usize,
}

const QUICK: Patience = Patience {
    request: Duration::from_secs(6),
    idle: Duration::from_secs(6),
    retries: 2,
};
const BULK: Patience = Patience {
    request: Duration::from_secs(15 * 60),
    idle: Duration::from_secs(30),
    retries: 4,
};
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The shared runtime for S3 calls, started on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // `expect`: the daemon cannot serve object storage without it, and building a
        // runtime fails only when the OS cannot start threads at all.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("object-store")
            .enable_all()
            .build()
            .expect("cannot start the object-storage runtime")
    })
}

/// Runs `work` on the object-storage runtime and hands its answer to the caller's future.
fn on_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> ResponseFuture<Result<T, StoreError>> {
    let task = runtime().spawn(work);
    Box::pin(async move {
        task.await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("object-store task: {e}"))))
    })
}

/// Where a user's files live in object storage: `s3://BUCKET/PREFIX`, with an optional endpoint
/// and region (otherwise `AWS_ENDPOINT_URL` and `AWS_REGION` from the environment, as every S3
/// tool takes them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub bucket: String,
    /// No leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str) -> Result<Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("storage {url:?}: only s3://BUCKET/PREFIX is supported"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3 bucket names: 3-63 characters of lower-case letters, digits, dots and hyphens.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(format!(
                "storage {url:?}: {bucket:?} is not a valid bucket name"
            ));
        }
        let prefix = prefix.trim_matches('/');
        // SECURITY: the prefix is the jail; it is the operator's text, but a `..` or empty
        // component in it would make keys that S3 does not normalise the way a reader expects.
        if prefix
            .split('/')
            .any(|c| (c.is_empty() && !prefix.is_empty()) || c == "." || c == "..")
        {
            return Err(format!(
                "storage {url:?}: the prefix may not have empty, `.` or `..` components"
            ));
        }
        Ok(Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: None,
        })
    }

    /// The region requests are signed for: the configured one, else `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, else AWS's default (S3-compatible servers such as MinIO, Ceph
    /// or moto take any).
    pub fn region(&self) -> String {
        self.region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// `s3://BUCKET/PREFIX`, for logs (never credentials: they are not part of it).
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A user's root in object storage: operators rooted at the prefix. Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    /// For quick requests: HEAD, listings, deletes, markers, small reads.
    op: Operator,
    /// For transfers and server-side copies.
    bulk: Operator,
    location: Arc<Location>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.location.url())
    }
}

impl Bucket {
    /// The client for `location`. No request is made yet (`check` makes one). Credentials come
    /// from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
    /// or the shared credentials file, the way every S3 tool takes them.
    pub fn open(location: &Location) -> Result<Bucket, String> {
        install_crypto_provider();
        let mut builder = opendal::services::S3::default()
            .bucket(&location.bucket)
            .root(&format!("/{}", location.prefix));
        if let Some(endpoint) = &location.endpoint {
            builder = builder.endpoint(endpoint);
        }
        builder = builder.region(&location.region());
        let base =
            Operator::new(builder).map_err(|e| format!("storage {}: {e}", location.url()))?;
        let patient = |p: Patience| {
            with_shared_client(
                base.clone()
                    .layer(
                        opendal::layers::TimeoutLayer::new()
                            .with_timeout(p.request)
                            .with_io_timeout(p.idle),
                    )
                    .layer(
                        opendal::layers::RetryLayer::new()
                            .with_max_times(p.retries)
                            .with_min_delay(FIRST_BACKOFF)
                            .with_max_delay(MAX_BACKOFF)
                            .with_jitter(),
                    ),
            )
        };
        Ok(Bucket {
            op: patient(QUICK)?,
            bulk: patient(BULK)?,
            location: Arc::new(location.clone()),
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// One request that proves the bucket is reachable with these credentials (a listing of at
    /// most one key under the prefix). For start-up: a daemon that cannot reach a bucket says
    /// so in one line and stops.
    pub fn check(&self) -> Result<(), String> {
        let op = self.op.clone();
        let url = self.location.url();
        runtime().block_on(async move {
            use futures_util::TryStreamExt;
            let mut lister = op
                .lister_with("/")
                .limit(1)
                .await
                .map_err(|e| format!("storage {url} is not reachable: {}", describe(&e)))?;
            lister
                .try_next()
                .await
                .map_err(|e| format!("storage {url} is not reachable: {}", describe(&e)))?;
            Ok(())
        })
    }
}

/// One HTTP client (connection pool, TLS sessions) for every bucket, on rustls with ring.
fn shared_client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                // Several pooled connections rather than one multiplexed one: large transfers
                // in parallel do not share one TCP connection's window.
                .http1_only()
                .build()
                .map_err(|e| format!("cannot start the S3 client: {e}"))
        })
        .clone()
}

/// `op`, sending through the shared client.
fn with_shared_client(op: Operator) -> Result<Operator, String> {
    let client = shared_client()?;
    let transport = opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    );
    let ctx = op.base_context().clone().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

/// The S3 client's TLS uses the process's default provider: ring, as FTPS does (no second
/// crypto library in the binary).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An opendal error in the words of the one failure-to-reply table. The full error goes to
/// the log; the client sees our own text.
fn store_error(e: opendal::Error) -> StoreError {
    use opendal::ErrorKind as K;
    match e.kind() {
        K::NotFound => StoreError::NotFound,
        K::PermissionDenied => {
            log::warn!("object storage: {}", describe(&e));
            StoreError::PermissionDenied
        }
        K::AlreadyExists | K::ConditionNotMatch => StoreError::AlreadyExists,
        K::IsADirectory => StoreError::IsADirectory,
        K::NotADirectory => StoreError::NotADirectory,
        K::RateLimited => {
            log::warn!("object storage: {}", describe(&e));
            StoreError::Unavailable("object storage is throttling requests; try again".into())
        }
        // What is left after the retries is the network or the server: the client may try
        // again later (451), whatever the cause.
        K::Unexpected => {
            log::warn!("object storage: {}", describe(&e));
            StoreError::Unavailable(match cause(&e) {
                Cause::Unreachable => "object storage is unreachable; try again".into(),
                Cause::Timeout => "object storage did not answer in time; try again".into(),
                Cause::Other => "object storage failed the request; try again".into(),
            })
        }
        _ => {
            log::warn!("object storage: {}", describe(&e));
            StoreError::Io(describe(&e))
        }
    }
}

enum Cause {
    Unreachable,
    Timeout,
    Other,
}

/// What lies at the bottom of an error's chain of sources.
fn cause(e: &opendal::Error) -> Cause {
    let text = innermost(e).to_ascii_lowercase();
    if text.contains("timed out") || text.contains("timeout") || text.contains("deadline") {
        Cause::Timeout
    } else if text.contains("connect") || text.contains("refused") || text.contains("dns") {
        Cause::Unreachable
    } else {
        Cause::Other
    }
}

/// The innermost source's message: "tcp connect error: Connection refused (os error 111)"
/// rather than "send http request".
fn innermost(e: &opendal::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// An opendal error on one line for the log and for start-up: what it means where we can say,
/// else its kind and innermost cause, never request dumps or backtraces.
fn describe(e: &opendal::Error) -> String {
    use opendal::ErrorKind as K;
    let inner = innermost(e);
    let line = match e.kind() {
        K::PermissionDenied => "access denied (check the credentials and the bucket policy)".into(),
        _ if inner.contains("NoSuchBucket") || inner.contains("status: 404") => {
            "the bucket does not exist".into()
        }
        kind => {
            // Cut the request context opendal appends.
            let cut = [" context:", ", context", " response:"]
                .iter()
                .filter_map(|m| inner.find(m))
                .min()
                .unwrap_or(inner.len());
            format!("{kind}: {}", &inner[..cut])
        }
    };
    crate::printable::escape_controls(line.lines().next().unwrap_or(""))
        .chars()
        .take(300)
        .collect()
}

/// The object-storage back-end's actor. Stateless: the bucket travels in each request's jail.
#[derive(Debug, Default)]
pub struct ObjectStore;

impl Actor for ObjectStore {
    type Context = Context<Self>;
}

/// The bucket of a request's jail; a local root here is a routing mistake, answered as an error.
fn bucket_of(jail: &super::Jail) -> Result<Bucket, StoreError> {
    jail.bucket()
        .cloned()
        .ok_or_else(|| StoreError::Io("a local root reached the object store".into()))
}
