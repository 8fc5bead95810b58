//! Where a webhook may be sent: `http` or `https` URLs without credentials in them, and, unless
//! the relay's config allows private targets, never to a loopback, private, link-local or
//! otherwise non-public address (server-side request forgery). A name is checked when it is
//! resolved for each delivery, so a name that later points inside is refused too; redirects are
//! not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Longest endpoint URL.
pub const MAX_URL: usize = 2000;

/// Whether `ip` is an address anyone on the internet could reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15; reserved, 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // Addresses that carry an IPv4 one: IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96 and
    // 64:ff9b:1::/48, 6to4 2002::/16. They are as public as the address inside.
    if seg[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return public_v4(embedded(seg[6], seg[7]));
    }
    if (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1)
    {
        return public_v4(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return public_v4(embedded(seg[1], seg[2]));
    }
    let first = seg[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10, documentation
        // 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        || (first == 0x2001 && seg[1] == 0x0db8))
}

/// Why an endpoint URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL this relay sends to.
    #[error("{0}")]
    Invalid(String),
    /// A private or loopback target while they are not allowed.
    #[error(
        "{0} is a private, loopback or otherwise internal address; webhooks go to public \
         addresses only (the relay's [webhooks] allow_private_targets allows others)"
    )]
    Private(String),
}

/// Checks an endpoint URL: its form, and its host when that is an address (or `localhost`).
pub fn check(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    if url.len() > MAX_URL {
        return Err(TargetError::Invalid(format!(
            "a webhook URL is at most {MAX_URL} characters"
        )));
    }
    let parsed = Url::parse(url).map_err(|e| TargetError::Invalid(format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(
            "a webhook URL is http or https".into(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Invalid(
            "a webhook URL carries no credentials; the signature proves the sender".into(),
        ));
    }
    if !allow_private {
        match parsed.host() {
            Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => {
                return Err(TargetError::Private(ip.to_string()));
            }
            Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
                return Err(TargetError::Private(ip.to_string()));
            }
            Some(Host::Domain(d))
                if d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost") =>
            {
                return Err(TargetError::Private(d.to_owned()));
            }
            None => return Err(TargetError::Invalid("a webhook URL names a host".into())),
            _ => {}
        }
    }
    Ok(parsed)
}

/// Resolves names for webhook deliveries, keeping only public addresses: a name with none is
/// refused.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(TargetError::Private(host)) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:3000/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://127.1/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:c0a8:1::]/",
            "http://192.0.0.8/",
            "http://[fec0::1]/",
        ] {
            assert!(
                matches!(check(url, false), Err(TargetError::Private(_))),
                "{url}"
            );
            assert!(check(url, true).is_ok(), "{url}");
        }
        assert!(check("https://hooks.example.com/n8n", false).is_ok());
        assert!(check("https://8.8.8.8/", false).is_ok());
        assert!(check("https://[64:ff9b::808:808]/", false).is_ok());
        assert!(check("https://[2606:4700::1111]/", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(
                matches!(check(bad, true), Err(TargetError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(check(&format!("https://e.com/{}", "a".repeat(MAX_URL)), true).is_err());
    }
}
