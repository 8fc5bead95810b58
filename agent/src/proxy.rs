//! Reaching the relay through an HTTP proxy: `HTTPS_PROXY` for `wss://` relays, `HTTP_PROXY`
//! for `ws://` ones (upper or lower case), skipped for hosts listed in `NO_PROXY`.
//!
//! The agent opens a tunnel with `CONNECT host:port` and then speaks TLS and WebSocket through it
//! as if it had connected directly, so the relay's certificate is checked end to end. Credentials
//! in the proxy URL (`http://user:pass@proxy:3128`) are sent as `Proxy-Authorization: Basic` and
//! never shown in logs, errors or `Debug` output.
//!
//! `NO_PROXY` is a comma-separated list of host names, domain suffixes (`.example.com` or
//! `example.com`, both matching sub-domains), IP addresses, optional `:port`s, or `*` for
//! everything.

use std::time::Duration;

use base64::Engine;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Longest proxy answer to a CONNECT that is read.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// An HTTP proxy to tunnel through.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Proxy-Authorization` header value, when the URL had credentials.
    authorization: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl Proxy {
    /// Parses `http://[user:pass@]host[:port][/]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "proxy scheme {scheme:?} is not supported (use an http:// proxy)"
                ));
            }
            None => url,
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport, 80)
            .ok_or_else(|| "the proxy URL has no valid host and port".to_owned())?;
        let authorization = userinfo.map(|u| {
            let u = percent_decode(u);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        });
        Ok(Self {
            host,
            port,
            authorization,
        })
    }

    /// The proxy to use for `host:port`, from the environment; `None` for a direct connection.
    pub fn from_env(secure: bool, host: &str, port: u16) -> Result<Option<Self>, String> {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let url = if secure {
            get(&["HTTPS_PROXY", "https_proxy"])
        } else {
            get(&["HTTP_PROXY", "http_proxy"])
        };
        let Some(url) = url else {
            return Ok(None);
        };
        let no_proxy = get(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        if bypasses(&no_proxy, host, port) {
            return Ok(None);
        }
        Self::parse(url.trim()).map(Some)
    }

    /// Connects to the proxy and opens a tunnel to `host:port`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        wait: Duration,
    ) -> Result<TcpStream, String> {
        let tunnel = async {
            let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("cannot reach the proxy {self}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let target = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
            if let Some(auth) = &self.authorization {
                request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
            }
            request.push_str("\r\n");
            tcp.write_all(request.as_bytes())
                .await
                .map_err(|e| format!("the proxy {self} closed the connection: {e}"))?;
            // Read the answer's head byte by byte, so nothing of the tunnel is consumed.
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                if head.len() >= MAX_RESPONSE_HEAD {
                    return Err(format!("the proxy {self} sent an oversized answer"));
                }
                let b = tcp
                    .read_u8()
                    .await
                    .map_err(|e| format!("the proxy {self} closed the connection: {e}"))?;
                head.push(b);
            }
            let status_line = String::from_utf8_lossy(&head);
            let status_line = status_line.lines().next().unwrap_or_default().to_owned();
            let code = status_line.split_whitespace().nth(1).unwrap_or_default();
            if code != "200" {
                return Err(format!(
                    "the proxy {self} refused the tunnel to {target}: {status_line}"
                ));
            }
            Ok(tcp)
        };
        tokio::time::timeout(wait, tunnel)
            .await
            .map_err(|_| format!("the proxy {self} did not answer in time"))?
    }
}

/// Splits `host[:port]` (IPv6 in brackets); `None` if malformed.
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (s.to_owned(), default_port),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// Decodes `%XX` escapes (credentials in URLs are percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `NO_PROXY` says to connect to `host:port` directly.
pub fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = no_proxy_entry(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.to_ascii_lowercase();
            let suffix = name.trim_start_matches('.');
            !suffix.is_empty() && (host == suffix || host.ends_with(&format!(".{suffix}")))
        })
}

/// Splits a `NO_PROXY` entry into its name and optional port.
fn no_proxy_entry(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.split_once(':') {
        // Exactly one colon: name and port. More: a bare IPv6 address.
        Some((name, port)) if !port.contains(':') => (name, port.parse().ok()),
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_and_hide_their_credentials() {
        let p = Proxy::parse("http://alice:s%40cret@proxy.corp:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s@cret");
        assert_eq!(
            p.authorization.as_deref(),
            Some(&*format!("Basic {expected}"))
        );
        let shown = format!("{p:?} {p}");
        assert!(
            !shown.contains("cret") && !shown.contains(&expected),
            "{shown}"
        );
        assert_eq!(Proxy::parse("proxy:8080").unwrap().port, 8080);
        assert_eq!(Proxy::parse("http://[::1]:3128").unwrap().host, "::1");
        assert!(Proxy::parse("socks5://proxy:1080").is_err());
        assert!(Proxy::parse("http://:3128").is_err());
    }

    /// A one-shot proxy that answers the CONNECT with `answer`, then sends `after`.
    async fn fake_proxy(
        answer: &'static str,
        after: &'static [u8],
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(s.read_u8().await.unwrap());
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            s.write_all(after).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_tunnel_is_opened_with_connect_and_nothing_after_the_answer_is_lost() {
        let (port, seen) =
            fake_proxy("HTTP/1.1 200 Connection established\r\n\r\n", b"tunnel").await;
        let proxy = Proxy::parse(&format!("http://bob:pw@127.0.0.1:{port}")).unwrap();
        let mut tcp = proxy
            .connect("relay.example", 443, Duration::from_secs(5))
            .await
            .unwrap();
        let mut first = [0u8; 6];
        tcp.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"tunnel");
        let head = seen.await.unwrap();
        assert!(
            head.starts_with("CONNECT relay.example:443 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Proxy-Authorization: Basic Ym9iOnB3\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_refused_tunnel_says_why() {
        let (port, _) = fake_proxy("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", b"").await;
        let proxy = Proxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = proxy
            .connect("relay.example", 443, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            err.contains("refused the tunnel") && err.contains("407"),
            "{err}"
        );
    }

    #[test]
    fn no_proxy_matches_hosts_suffixes_ports_and_star() {
        let list = "localhost, .internal.example, corp.example:8443, 10.0.0.7, [::1]";
        assert!(bypasses(list, "localhost", 443));
        assert!(bypasses(list, "relay.internal.example", 443));
        assert!(bypasses(list, "internal.example", 443));
        assert!(!bypasses(list, "notinternal.example", 443));
        assert!(bypasses(list, "corp.example", 8443));
        assert!(!bypasses(list, "corp.example", 443));
        assert!(bypasses(list, "10.0.0.7", 443));
        assert!(bypasses(list, "[::1]", 443));
        assert!(!bypasses(list, "relay.example.com", 443));
        assert!(bypasses("*", "anything", 1));
        assert!(!bypasses("", "anything", 1));
    }
}
