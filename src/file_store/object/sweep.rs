//! The sweep of stale multipart uploads: uploads under our prefixes that were started longer
//! ago than `STALE_AFTER` and never completed (a daemon that crashed or was killed mid-upload,
//! here or on another machine) are aborted, so their parts stop costing storage. It runs at
//! start and then every `SWEEP_EVERY`.
//!
//! opendal has no call for ListMultipartUploads, so these two requests are made here: signed
//! by `reqsign` (the signer opendal itself uses, with the same credential chain), sent by the
//! shared HTTP client, and the small XML answer read with plain string scanning.

use super::{runtime, Bucket};
use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner};
use reqsign_core::{Context, OsEnv, Signer};
use std::time::{Duration, SystemTime};

/// By default an upload older than this is taken for abandoned (`--stale-upload-age`). Long
/// enough for a slow, large upload's daemon to be alive; short enough that a crash's parts do
/// not linger for days.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the sweep runs after the first.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Where requests for `bucket` go, path-style: `ENDPOINT/BUCKET`, as opendal addresses them.
fn bucket_url(bucket: &Bucket) -> String {
    let loc = bucket.location();
    let endpoint = loc
        .endpoint
        .clone()
        .or_else(|| {
            ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_S3_ENDPOINT"]
                .iter()
                .find_map(|n| std::env::var(n).ok())
        })
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", bucket.location().region()));
    format!(
        "{}/{}",
        endpoint.trim_end_matches('/'),
        encode(&loc.bucket, false)
    )
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` in a path), as
/// S3's signature version 4 wants it.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The texts inside each `<tag>...</tag>` of `xml`, in order.
fn inner<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        rest = &rest[at + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(&rest[..end]);
        rest = &rest[end + close.len()..];
    }
    out
}

/// XML text with its five predefined entities (and numeric ones) decoded.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One multipart upload in progress.
#[derive(Debug, PartialEq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// RFC 3339, as S3 gives it.
    pub initiated: String,
}

/// The uploads of one ListMultipartUploads page, and the markers of the next page if any.
fn parse_page(xml: &str) -> (Vec<PendingUpload>, Option<(String, String)>) {
    let uploads = inner(xml, "Upload")
        .into_iter()
        .filter_map(|u| {
            Some(PendingUpload {
                key: unescape(inner(u, "Key").first()?),
                upload_id: unescape(inner(u, "UploadId").first()?),
                initiated: unescape(inner(u, "Initiated").first()?),
            })
        })
        .collect();
    let truncated = inner(xml, "IsTruncated").first() == Some(&"true");
    let next = match (
        inner(xml, "NextKeyMarker").first(),
        inner(xml, "NextUploadIdMarker").first(),
    ) {
        (Some(k), Some(u)) if truncated => Some((unescape(k), unescape(u))),
        _ => None,
    };
    (uploads, next)
}

struct Client {
    http: reqwest::Client,
    signer: Signer<reqsign_aws_v4::Credential>,
}

impl Client {
    fn new(bucket: &Bucket) -> Result<Client, String> {
        let http = super::shared_client()?;
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv);
        let signer = Signer::new(
            ctx,
            DefaultCredentialProvider::new(),
            RequestSigner::new("s3", &bucket.location().region()),
        );
        Ok(Client { http, signer })
    }

    /// A signed request; the status and body of the answer.
    async fn send(&self, method: http::Method, url: &str) -> Result<(u16, String), String> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(())
            .map_err(|e| e.to_string())?;
        let (mut parts, ()) = request.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| format!("signing: {e}"))?;
        let request = http::Request::from_parts(parts, Vec::<u8>::new());
        let request = reqwest::Request::try_from(request).map_err(|e| e.to_string())?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

/// Every multipart upload in progress under the bucket's prefix (`base`: its URL).
async fn pending_uploads(
    bucket: &Bucket,
    client: &Client,
    base: &str,
) -> Result<Vec<PendingUpload>, String> {
    let prefix = match bucket.location().prefix.as_str() {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let mut all = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut url = format!("{base}?prefix={}&uploads=", encode(&prefix, false));
        if let Some((key, id)) = &markers {
            url = format!(
                "{base}?key-marker={}&prefix={}&upload-id-marker={}&uploads=",
                encode(key, false),
                encode(&prefix, false),
                encode(id, false)
            );
        }
        let (status, body) = client.send(http::Method::GET, &url).await?;
        if status != 200 {
            return Err(format!("ListMultipartUploads answered {status}"));
        }
        let (page, next) = parse_page(&body);
        all.extend(page);
        match next {
            Some(m) => markers = Some(m),
            None => return Ok(all),
        }
    }
}

/// Aborts the uploads under the bucket's prefix started more than `older_than` ago; returns
/// how many.
pub async fn abort_stale(bucket: &Bucket, older_than: Duration) -> Result<usize, String> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff = opendal::raw::Timestamp::try_from(cutoff).map_err(|e| e.to_string())?;
    let client = Client::new(bucket)?;
    let base = bucket_url(bucket);
    let mut aborted = 0;
    for upload in pending_uploads(bucket, &client, &base).await? {
        let Ok(started) = upload.initiated.parse::<opendal::raw::Timestamp>() else {
            continue;
        };
        if started > cutoff {
            continue;
        }
        let url = format!(
            "{base}/{}?uploadId={}",
            encode(&upload.key, true),
            encode(&upload.upload_id, false)
        );
        match client.send(http::Method::DELETE, &url).await {
            Ok((204 | 200 | 404, _)) => aborted += 1,
            Ok((status, _)) => log::warn!(
                "storage {}: abort of a stale upload of {} answered {status}",
                bucket.location().url(),
                upload.key
            ),
            Err(e) => log::warn!("storage {}: {e}", bucket.location().url()),
        }
    }
    Ok(aborted)
}

/// Sweeps every bucket now, then every `SWEEP_EVERY`, on the object-storage runtime: uploads
/// older than `age` are aborted.
pub fn start_sweeping(buckets: Vec<Bucket>, age: Duration) {
    if buckets.is_empty() {
        return;
    }
    runtime().spawn(async move {
        loop {
            for bucket in &buckets {
                match abort_stale(bucket, age).await {
                    Ok(0) => {}
                    Ok(n) => log::info!(
                        "storage {}: aborted {n} stale multipart upload(s)",
                        bucket.location().url()
                    ),
                    Err(e) => log::warn!(
                        "storage {}: cannot sweep stale uploads: {e}",
                        bucket.location().url()
                    ),
                }
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn a_page_of_uploads_is_read_with_its_markers() {
        let xml = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>b</Bucket>\
            <IsTruncated>true</IsTruncated><NextKeyMarker>p/z&amp;y</NextKeyMarker>\
            <NextUploadIdMarker>id2</NextUploadIdMarker>\
            <Upload><Key>p/a &lt;b&gt;</Key><UploadId>id1</UploadId>\
            <Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>\
            <Upload><Key>p/z&amp;y</Key><UploadId>id2</UploadId>\
            <Initiated>2026-12-02T10:00:00.000Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let (uploads, next) = parse_page(xml);
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].key, "p/a <b>");
        assert_eq!(uploads[1].key, "p/z&y");
        assert_eq!(uploads[1].upload_id, "id2");
        assert_eq!(next, Some(("p/z&y".into(), "id2".into())));
        let (_, last) = parse_page("<IsTruncated>false</IsTruncated>");
        assert_eq!(last, None);
    }

    #[test]
    fn keys_are_encoded_as_sigv4_wants() {
        assert_eq!(encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(encode("a/b", false), "a%2Fb");
        assert_eq!(encode("é", false), "%C3%A9");
        assert_eq!(unescape("&#38;&#x41;&bogus;"), "&A&bogus;");
    }
}
