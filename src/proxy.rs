//! The PROXY protocol (HAProxy's v1 text and v2 binary header) on connections from a trusted
//! load balancer: which peers are trusted, reading one header (exactly its bytes, bounded in size
//! and in time) and what it says about the client. The parsing is the `ppp` crate's; this module
//! decides what to believe.
//!
//! It starts nothing and checks no peer itself: the Listener reads the control connection's
//! header before it asks the Gatekeeper, and the DataChannel a passive connection's before it
//! compares the client with the control connection's. A header is required from a trusted
//! proxy, and a connection from anyone else that starts with one is refused (`looks_like_header`),
//! so a client can never claim another address.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a trusted proxy has to send the whole header after connecting. HAProxy sends it at
/// once, with the connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest v1 header, `PROXY TCP6` with two full IPv6 addresses and ports and CRLF (the
/// protocol's own bound).
pub const V1_MAX: usize = 107;

/// The v2 header's fixed part: the signature, version and command, family, and the length of
/// what follows (at most 65,535 bytes: the addresses and TLVs).
const V2_FIXED: usize = 16;

/// The v2 signature. It is also the first thing read from every header: no v1 header is shorter
/// (`PROXY UNKNOWN\r\n` is 15 bytes), so reading it never takes a byte past a header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v1 header's first bytes.
const V1_PREFIX: &[u8] = b"PROXY ";

/// `--proxy-protocol` with `--trusted-proxies`: who may send a header, and must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<Network>,
    pub header_timeout: Duration,
}

impl ProxyProtocol {
    /// `CIDR,CIDR,...` (a bare address is one host). Empty is refused: nobody could connect
    /// through a proxy, and a header from anyone is refused anyway.
    pub fn parse(list: &str) -> Result<ProxyProtocol, String> {
        let trusted = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Network::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if trusted.is_empty() {
            return Err("names no network (CIDR,CIDR,...)".into());
        }
        Ok(ProxyProtocol {
            trusted,
            header_timeout: HEADER_TIMEOUT,
        })
    }

    /// SECURITY: only a connection from one of these networks may say who the client is (an
    /// IPv4-mapped IPv6 peer is compared as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }
}

/// A trusted network in CIDR form (a bare address is one host). This module is a leaf that
/// the DataChannel uses, so it has its own few lines of matching rather than `auth`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(s: &str) -> Result<Network, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix in {s:?}"))?,
        };
        Ok(Network {
            addr: unmapped(addr),
            prefix: if addr.is_ipv6() && unmapped(addr).is_ipv4() {
                prefix.saturating_sub(96)
            } else {
                prefix
            },
        })
    }

    /// SECURITY: an IPv4-mapped IPv6 address (a dual-stack socket's peer) is compared as IPv4.
    fn contains(&self, ip: IpAddr) -> bool {
        let bits = u32::from(self.prefix);
        match (self.addr, unmapped(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The proxy relays a client: its address, and the address it connected to (the proxy's).
    Client {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The proxy speaks for itself (v2 `LOCAL`: a health check), or relays a client without an
    /// IP address (v1 `UNKNOWN`, v2 `UNSPEC` or a UNIX socket): the protocol says the
    /// connection's own addresses then stand.
    Proxy,
}

impl Origin {
    /// The client's address: the header's, or the connection's own peer for `Proxy`.
    pub fn client(self, peer: SocketAddr) -> SocketAddr {
        match self {
            Origin::Client { source, .. } => source,
            Origin::Proxy => peer,
        }
    }
}

/// Why a trusted proxy's connection was refused.
#[derive(Debug)]
pub enum HeaderError {
    TimedOut,
    /// The connection closed or failed before the header was complete.
    Io(io::Error),
    /// The first bytes are neither a v1 nor a v2 header.
    Missing,
    /// A v1 line without its CRLF within `V1_MAX` bytes.
    TooLong,
    Malformed(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TimedOut => write!(f, "no PROXY header within {HEADER_TIMEOUT:?}"),
            HeaderError::Io(e) => write!(f, "connection ended inside the PROXY header: {e}"),
            HeaderError::Missing => f.write_str("no PROXY header (v1 or v2)"),
            HeaderError::TooLong => write!(f, "PROXY v1 header longer than {V1_MAX} bytes"),
            HeaderError::Malformed(why) => write!(f, "bad PROXY header: {why}"),
        }
    }
}

impl From<io::Error> for HeaderError {
    fn from(e: io::Error) -> Self {
        HeaderError::Io(e)
    }
}

/// Reads one header from a trusted proxy's connection: exactly its bytes, so that what follows
/// (FTP commands, a file's first bytes) stays in the socket for its reader.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Origin, HeaderError> {
    // SECURITY: a proxy that connects and says nothing (or too slowly) is cut off.
    match tokio::time::timeout(timeout, read_exactly_the_header(stream)).await {
        Ok(r) => r,
        Err(_) => Err(HeaderError::TimedOut),
    }
}

async fn read_exactly_the_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Origin, HeaderError> {
    let mut buf = vec![0u8; V2_SIGNATURE.len()];
    stream.read_exact(&mut buf).await?;
    if buf[..] == V2_SIGNATURE[..] {
        buf.resize(V2_FIXED, 0);
        stream.read_exact(&mut buf[V2_SIGNATURE.len()..]).await?;
        // SECURITY: bounded by the header's own 16-bit length field: at most 16 + 65,535
        // bytes, once, from a trusted proxy only.
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        buf.resize(V2_FIXED + len, 0);
        stream.read_exact(&mut buf[V2_FIXED..]).await?;
        return parse_v2(&buf);
    }
    // SECURITY: anything else than a header from a trusted proxy is refused, never taken for
    // the client's first command.
    if !buf.starts_with(V1_PREFIX) {
        return Err(HeaderError::Missing);
    }
    // A v1 header is a line: read a byte at a time, so not one byte past its CRLF is taken.
    while !buf.ends_with(b"\r\n") {
        // SECURITY: a line that does not end within the protocol's bound is refused.
        if buf.len() >= V1_MAX {
            return Err(HeaderError::TooLong);
        }
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        buf.push(byte[0]);
    }
    parse_v1(&buf)
}

/// A complete v1 line (CRLF included).
pub fn parse_v1(line: &[u8]) -> Result<Origin, HeaderError> {
    use ppp::v1::{Addresses, Header};
    let header = Header::try_from(line).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    // SECURITY: the parser stops at the first CR; a header must be the whole line read.
    if header.header.len() != line.len() {
        return Err(HeaderError::Malformed("text after the header's CR".into()));
    }
    Ok(match header.addresses {
        Addresses::Tcp4(a) => Origin::Client {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        Addresses::Tcp6(a) => Origin::Client {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        Addresses::Unknown => Origin::Proxy,
    })
}

/// A complete v2 header (the fixed part and as many bytes as its length field says).
pub fn parse_v2(bytes: &[u8]) -> Result<Origin, HeaderError> {
    use ppp::v2::{Addresses, Command, Header, Protocol};
    let header = Header::try_from(bytes).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    if header.command == Command::Local {
        return Ok(Origin::Proxy);
    }
    // SECURITY: FTP is TCP; a datagram's addresses say nothing about this connection.
    if header.protocol == Protocol::Datagram {
        return Err(HeaderError::Malformed(
            "a UDP header on a TCP connection".into(),
        ));
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Origin::Client {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        Addresses::IPv6(a) => Origin::Client {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        Addresses::Unspecified | Addresses::Unix(_) => Origin::Proxy,
    })
}

/// Whether the first bytes of a connection from an untrusted peer are a PROXY header: `Some`
/// once that is decided, `None` while they could still become one (a prefix of either).
pub fn looks_like_header(first: &[u8]) -> Option<bool> {
    let starts = |sig: &[u8]| {
        let n = first.len().min(sig.len());
        first[..n] == sig[..n]
    };
    match (starts(V1_PREFIX), starts(V2_SIGNATURE)) {
        (false, false) => Some(false),
        _ if first.len() >= V1_PREFIX.len() && starts(V1_PREFIX) => Some(true),
        _ if first.len() >= V2_SIGNATURE.len() && starts(V2_SIGNATURE) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(addresses: ppp::v2::Addresses, command: u8) -> Vec<u8> {
        ppp::v2::Builder::with_addresses(0x20 | command, ppp::v2::Protocol::Stream, addresses)
            .build()
            .expect("header")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn v1_headers() {
        let cases: [(&[u8], Option<Origin>); 7] = [
            (
                b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 21\r\n",
                Some(Origin::Client {
                    source: addr("192.0.2.7:5555"),
                    destination: addr("10.0.0.1:21"),
                }),
            ),
            (
                b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 21\r\n",
                Some(Origin::Client {
                    source: addr("[2001:db8::7]:5555"),
                    destination: addr("[2001:db8::1]:21"),
                }),
            ),
            (b"PROXY UNKNOWN\r\n", Some(Origin::Proxy)),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 5555\r\n", None),
            (b"PROXY TCP4 300.0.2.7 10.0.0.1 5555 21\r\n", None),
            (b"PROXY TCP4 2001:db8::7 10.0.0.1 5555 21\r\n", None),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 21\rX\r\n", None),
        ];
        for (line, want) in cases {
            let got = parse_v1(line).ok();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn v2_headers() {
        let relayed = v2((addr("192.0.2.7:5555"), addr("10.0.0.1:21")).into(), 1);
        assert_eq!(
            parse_v2(&relayed).ok(),
            Some(Origin::Client {
                source: addr("192.0.2.7:5555"),
                destination: addr("10.0.0.1:21"),
            })
        );
        let local = v2(ppp::v2::Addresses::Unspecified, 0);
        assert_eq!(parse_v2(&local).ok(), Some(Origin::Proxy));
        let mut bad_command = relayed.clone();
        bad_command[12] = 0x2f;
        assert!(parse_v2(&bad_command).is_err());
        let mut bad_version = relayed.clone();
        bad_version[12] = 0x11;
        assert!(parse_v2(&bad_version).is_err());
    }

    /// Reads a header from `bytes`, then the rest: what the header left for the FTP reader.
    fn read(bytes: &[u8]) -> (Result<Origin, HeaderError>, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut input = bytes;
            let got = read_header(&mut input, HEADER_TIMEOUT).await;
            (got, input.to_vec())
        })
    }

    #[test]
    fn exactly_the_header_is_read() {
        let (got, rest) = read(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 21\r\nUSER a\r\n");
        assert_eq!(
            got.ok().map(|o| o.client(addr("1.1.1.1:1"))),
            Some(addr("192.0.2.7:5555"))
        );
        assert_eq!(rest, b"USER a\r\n");
        let mut bytes = v2((addr("192.0.2.7:5555"), addr("10.0.0.1:21")).into(), 1);
        bytes.extend_from_slice(b"\r\n\r\nfile bytes");
        let (got, rest) = read(&bytes);
        assert!(matches!(got, Ok(Origin::Client { .. })), "{got:?}");
        assert_eq!(rest, b"\r\n\r\nfile bytes");
    }

    #[test]
    fn what_is_not_a_header_is_refused() {
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(V1_MAX));
        let cases: [&[u8]; 5] = [
            b"USER anonymous\r\n",
            b"PROXY TCP4 192.0.2.7",
            long.as_bytes(),
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00",
            b"proxy TCP4 192.0.2.7 10.0.0.1 5555 21\r\n",
        ];
        for bytes in cases {
            let (got, _) = read(bytes);
            assert!(
                got.is_err(),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let (got, rest) = read(long.as_bytes());
        assert!(matches!(got, Err(HeaderError::TooLong)), "{got:?}");
        assert_eq!(
            long.len() - rest.len(),
            V1_MAX,
            "read no further than the bound"
        );
    }

    #[test]
    fn headers_are_recognised_from_their_first_bytes() {
        let cases: [(&[u8], Option<bool>); 9] = [
            (b"", None),
            (b"PRO", None),
            (b"PROXY TCP4", Some(true)),
            (b"\r\n\r\n", None),
            (b"\r\n\r\n\0\r\nQUIT\n!", Some(true)),
            (b"USER a\r\n", Some(false)),
            (b"PROXIMITY", Some(false)),
            (b"\r\nUSER", Some(false)),
            (b"proxy tcp4", Some(false)),
        ];
        for (bytes, want) in cases {
            assert_eq!(looks_like_header(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn trusted_networks() {
        let p = ProxyProtocol::parse("127.0.0.1, 10.0.0.0/8,::1").expect("valid");
        assert!(p.trusts("127.0.0.1".parse().expect("ip")));
        assert!(p.trusts("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(p.trusts("::1".parse().expect("ip")));
        assert!(!p.trusts("127.0.0.2".parse().expect("ip")));
        assert!(ProxyProtocol::parse("").is_err());
        assert!(ProxyProtocol::parse("10.0.0.0/33").is_err());
        assert!(ProxyProtocol::parse("haproxy").is_err());
        assert!(ProxyProtocol::parse("10.0.0.0/").is_err());
        let nets =
            ProxyProtocol::parse("0.0.0.0/0,::ffff:192.0.2.0/120,2001:db8::/32").expect("ok");
        assert!(nets.trusts("8.8.8.8".parse().expect("ip")));
        assert!(nets.trusts("2001:db8:1::9".parse().expect("ip")));
        assert!(!nets.trusts("2001:db9::9".parse().expect("ip")));
        let mapped = ProxyProtocol::parse("::ffff:192.0.2.0/120").expect("ok");
        assert!(mapped.trusts("192.0.2.200".parse().expect("ip")));
        assert!(!mapped.trusts("192.0.3.1".parse().expect("ip")));
    }
}
