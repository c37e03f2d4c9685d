//! A self-signed certificate made at test time, and a rustls client that trusts exactly it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
pub struct Cert {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl Cert {
    /// The certificate file, as a command-line argument.
    pub fn cert_arg(&self) -> &str {
        self.cert.to_str().expect("temporary paths are UTF-8")
    }

    /// The key file, as a command-line argument.
    pub fn key_arg(&self) -> &str {
        self.key.to_str().expect("temporary paths are UTF-8")
    }
}

pub fn make_cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate a self-signed certificate");
    let dir = TempDir::new().expect("temporary directory for the certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key.pem");
    Cert {
        der: ck.cert.der().clone(),
        _dir: dir,
        cert,
        key,
    }
}

/// A client configuration that trusts exactly `cert` (ring provider).
pub fn client_config(cert: &Cert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.der.clone())
        .expect("trust the test certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// A TLS client stream over `sock` for `localhost`; the handshake runs on first use.
pub fn tls_client(
    sock: TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
    rustls::StreamOwned::new(conn, sock)
}
