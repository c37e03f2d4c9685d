//! The network settings with rules of their own: the PROXY protocol's trusted proxies and the
//! passive port range.

use super::{Options, Setting};
use crate::config;
use std::ops::RangeInclusive;

/// `--proxy-protocol` with its `--trusted-proxies`: one without the other is a mistake.
pub(super) fn proxy_protocol(o: &Options) -> Result<Option<crate::proxy::ProxyProtocol>, String> {
    match (
        o.proxy_protocol.as_ref().filter(|s| s.value),
        &o.trusted_proxies,
    ) {
        (Some(_), Some(list)) => crate::proxy::ProxyProtocol::parse(&list.value)
            .map(Some)
            .map_err(|e| list.fail(e)),
        (Some(s), None) => Err(s.fail("needs --trusted-proxies CIDR,... (the load balancers)")),
        (None, Some(list)) => Err(list.fail("is only for --proxy-protocol, which is not given")),
        (None, None) => Ok(None),
    }
}

/// The passive range, and the rule that ties it to the session limits.
///
/// Each source (all its sessions together) may hold at most an eighth of the range, at least
/// one port (`gatekeeper::passive_share`), so a few sources cannot take it all. A range of one
/// port cannot keep that promise: refused. A share smaller than `--max-sessions-per-ip` is no
/// contradiction (a source's further PASV get 425 until one of its ports is given back), but
/// worth one warning line. So is a range that overlaps the kernel's `ephemeral` range.
pub(super) fn passive_range(
    s: &Setting<String>,
    per_ip: usize,
    ephemeral: &RangeInclusive<u16>,
    warnings: &mut Vec<String>,
) -> Result<RangeInclusive<u16>, String> {
    let range = config::parse_port_range(&s.value).map_err(|e| s.fail(e))?;
    if crate::gatekeeper::ports::overlaps(&range, ephemeral) {
        let default = crate::gatekeeper::ports::default_range(ephemeral);
        warnings.push(format!(
            "{s} {}: overlaps the kernel's ephemeral port range {}-{} \
             (net.ipv4.ip_local_port_range), where outgoing connections and their TIME_WAIT \
             sockets take ports too; a range outside it (the default is {}-{}) keeps PASV cheap",
            s.value,
            ephemeral.start(),
            ephemeral.end(),
            default.start(),
            default.end()
        ));
    }
    let ports = range.clone().count();
    if ports < 2 {
        return Err(s.fail(format!(
            "{} is one port: one client address could hold all of it; give at least 2 (a few \
             per expected concurrent passive transfer)",
            s.value
        )));
    }
    let share = crate::gatekeeper::passive_share(ports);
    if share < per_ip {
        warnings.push(format!(
            "{s} {}: one client address may hold {share} passive ports at once (an eighth of \
             the range) but open {per_ip} sessions (--max-sessions-per-ip); its further PASV \
             and EPSV get 425 until it gives a port back",
            s.value
        ));
    }
    Ok(range)
}
