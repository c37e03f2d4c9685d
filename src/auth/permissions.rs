//! What a user may do (`Permissions`) and where from (`IpNet`, the allowed source networks).
//! Pure values, parsed from the users file's names and CIDR strings.

use std::net::IpAddr;

/// What a user may do inside its root. Listing and downloading need `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub read: bool,
    /// Create new files (STOR of a new name, STOU).
    pub upload: bool,
    /// Replace, append to or resume existing files.
    pub overwrite: bool,
    pub delete: bool,
    pub rename: bool,
    /// MKD and RMD.
    pub mkdir: bool,
    /// SITE CHMOD and MFF `UNIX.mode` (permission bits only). Never for anonymous users,
    /// whatever the users file grants (the Session checks that too).
    pub chmod: bool,
}

impl Permissions {
    pub const ALL: Permissions = Permissions {
        read: true,
        upload: true,
        overwrite: true,
        delete: true,
        rename: true,
        mkdir: true,
        chmod: true,
    };
    pub const READ_ONLY: Permissions = Permissions {
        read: true,
        upload: false,
        overwrite: false,
        delete: false,
        rename: false,
        mkdir: false,
        chmod: false,
    };
    const NONE: Permissions = Permissions {
        read: false,
        upload: false,
        overwrite: false,
        delete: false,
        rename: false,
        mkdir: false,
        chmod: false,
    };

    /// Parses names: `all`, `read-only`, or any of `read upload overwrite delete rename mkdir`.
    pub fn from_names(names: &[String]) -> Result<Permissions, String> {
        let mut p = Permissions::NONE;
        for name in names {
            match name.as_str() {
                "all" => p = Permissions::ALL,
                "read-only" | "read" => p.read = true,
                "upload" => p.upload = true,
                "overwrite" => p.overwrite = true,
                "delete" => p.delete = true,
                "rename" => p.rename = true,
                "mkdir" => p.mkdir = true,
                "chmod" => p.chmod = true,
                other => {
                    return Err(format!(
                        "unknown permission {other:?} (known: all, read-only, read, upload, \
                         overwrite, delete, rename, mkdir, chmod)"
                    ))
                }
            }
        }
        Ok(p)
    }
}

/// An IP network in CIDR form (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("bad network address {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("bad prefix in {s:?}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }

    /// SECURITY: IPv4-mapped IPv6 peers compare as IPv4, so `::ffff:10.0.0.1` is in `10.0.0.0/8`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, crate::data_channel::canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("::1/128", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("10.0.0.0/8", "::1", false),
        ];
        for (net, ip, want) in cases {
            let net = IpNet::parse(net).expect("net");
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(net.contains(ip), want, "{net:?} {ip}");
        }
        assert!(IpNet::parse("nonsense").is_err());
    }
}
