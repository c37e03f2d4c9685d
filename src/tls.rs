//! FTPS (RFC 4217): the TLS configuration.
//!
//! One rustls `ServerConfig` is built at start from PEM files, with the `ring` provider chosen
//! explicitly (with two providers compiled in, rustls' default builder panics). It offers
//! session resumption by session ID and by ticket. When data connections must resume the
//! control connection's TLS session, each session gets its own copy of the configuration with
//! a private session cache and no tickets, so a data connection can only resume a session of
//! its own control connection. This module never reads FTP commands.

use rustls::server::{ServerConfig, ServerSessionMemoryCache};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Session IDs kept for resumption (shared configuration).
const SESSION_CACHE: usize = 4096;

/// TLS settings: the server configuration and the policies around it.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// For control connections; SIGHUP may replace it (new sessions take the new one).
    pub config: Arc<crate::swap::Shared<ServerConfig>>,
    /// USER is refused on a plaintext control connection.
    pub require_control: bool,
    /// Data connections must use PROT P.
    pub require_data: bool,
    /// A protected data connection must resume the control connection's TLS session.
    pub require_session_reuse: bool,
}

/// One session's TLS configurations: control, and data (same keys and session cache).
#[derive(Debug, Clone)]
pub struct SessionTls {
    pub control: Arc<ServerConfig>,
    pub data: Arc<ServerConfig>,
}

impl TlsPolicy {
    /// The configuration for one session's control connection.
    pub fn session_config(&self) -> Arc<ServerConfig> {
        let config = self.config.get();
        if !self.require_session_reuse {
            return config;
        }
        let mut own = (*config).clone();
        own.session_storage = ServerSessionMemoryCache::new(32);
        // Tickets decrypt under any configuration that shares the ticketer: off, so resumption
        // proves the data connection came from this control connection's TLS client.
        own.ticketer = Arc::new(NoTickets);
        own.send_tls13_tickets = 1;
        Arc::new(own)
    }
}

/// The data-connection twin of a control configuration: it shares the session cache and
/// ticketer (so data connections resume the control session) but issues no TLS 1.3 tickets
/// of its own. A client that only writes (an upload) never reads them, and closing a socket
/// with unread data makes the kernel send RST, which destroys upload bytes still in flight.
pub fn data_config(control: &Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut data = (**control).clone();
    data.send_tls13_tickets = 0;
    Arc::new(data)
}

/// A ticketer that never issues tickets (stateful resumption through the session cache only).
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// The crypto provider: ring, always, explicitly.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a certificate chain and its private key (PEM) into a server configuration.
/// Errors are one line naming the file and the problem (unreadable, empty, mismatched).
pub fn load_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no CERTIFICATE block",
            cert.display()
        ));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!(
                "TLS key {} does not fit certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).expect("cert");
        std::fs::write(&key, ck.key_pair.serialize_pem()).expect("key");
        (cert, key)
    }

    #[test]
    fn loads_a_matching_pair_and_refuses_mismatches() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cert_a, key_a) = write_pair(dir.path(), "a");
        let (_, key_b) = write_pair(dir.path(), "b");
        assert!(load_config(&cert_a, &key_a).is_ok());
        let err = load_config(&cert_a, &key_b).expect_err("mismatch");
        assert!(err.contains("does not fit"), "{err}");
        let err = load_config(&dir.path().join("none.crt"), &key_a).expect_err("missing");
        assert!(err.contains("none.crt"), "{err}");
        let err = load_config(&key_a, &key_a).expect_err("not a cert");
        assert!(err.contains("a.key"), "{err}");
    }

    #[test]
    fn session_reuse_gives_each_session_a_private_cache() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = write_pair(dir.path(), "a");
        let config = load_config(&cert, &key).expect("config");
        let shared = TlsPolicy {
            config: Arc::new(crate::swap::Shared::new(config.clone())),
            require_control: false,
            require_data: false,
            require_session_reuse: false,
        };
        assert!(Arc::ptr_eq(&shared.session_config(), &config));
        let strict = TlsPolicy {
            require_session_reuse: true,
            ..shared
        };
        let own = strict.session_config();
        assert!(!Arc::ptr_eq(&own, &config));
        assert!(!own.ticketer.enabled());
        let data = data_config(&own);
        assert_eq!(data.send_tls13_tickets, 0);
        assert!(Arc::ptr_eq(&data.session_storage, &own.session_storage));
    }
}
