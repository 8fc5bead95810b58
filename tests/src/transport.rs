//! Which transport the suite's agents use, and the certificates QUIC needs.
//!
//! `FULCRUM_TEST_TRANSPORT=quic` runs every agent the harness starts over QUIC, against relays
//! that serve QUIC with a test CA's certificate; the default (`ws`) uses the WebSocket. `.ci/run`
//! runs the integration suite both ways. Tests about one transport in particular (proxies, a
//! TCP cut) set it themselves.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use fulcrum_agent::{link::RelayTarget, transport::TransportMode};
use fulcrum_relay::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// The transport the suite runs on.
pub fn mode() -> TransportMode {
    match std::env::var("FULCRUM_TEST_TRANSPORT").as_deref() {
        Ok("quic") => TransportMode::Quic,
        Ok("auto") => TransportMode::Auto,
        Ok("ws") | Err(_) => TransportMode::Ws,
        Ok(other) => panic!("FULCRUM_TEST_TRANSPORT={other}: use ws, quic or auto"),
    }
}

/// A CA and a certificate it signs for `localhost` and `127.0.0.1`, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate, for the agent to trust.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub tls: TlsFiles,
}

/// Makes a [`Pki`] in `dir`, its files named after `name`.
pub fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let write = |file: &str, pem: String| {
        let path = dir.join(format!("{name}-{file}"));
        std::fs::write(&path, pem).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        tls: TlsFiles {
            cert_file: write("cert.pem", cert.pem()),
            key_file: write("key.pem", key.serialize_pem()),
        },
    }
}

/// The test process's own PKI, made once, for relays that serve QUIC without HTTPS.
pub fn test_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        make_pki(&dir, "suite")
    })
}

/// QUIC ports of the relays started in this process, by their HTTP address, so agents find
/// them and a restarted relay keeps its port.
fn ports() -> &'static Mutex<HashMap<SocketAddr, u16>> {
    static PORTS: OnceLock<Mutex<HashMap<SocketAddr, u16>>> = OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// Records where the relay at `http` serves QUIC.
pub fn remember_quic(http: SocketAddr, quic: Option<SocketAddr>) {
    if let Some(quic) = quic {
        ports().lock().unwrap().insert(http, quic.port());
    }
}

/// The QUIC port of the relay at `http`, if one was started here.
pub fn quic_port(http: SocketAddr) -> Option<u16> {
    ports().lock().unwrap().get(&http).copied()
}

/// The HTTP address in a relay URL.
fn addr_of(url: &str) -> Option<SocketAddr> {
    url.split_once("://")?.1.trim_end_matches('/').parse().ok()
}

/// How an agent reaches the relay at `url` in this run's mode. `extra_ca` wins over the test
/// CA, for relays with certificates of their own.
pub fn target(url: &str, token: &str, extra_ca: Option<PathBuf>) -> RelayTarget {
    let mut target = RelayTarget::new(url, token);
    target.extra_ca = extra_ca;
    target.transport = mode();
    if target.transport != TransportMode::Ws {
        target.quic_port = addr_of(url).and_then(quic_port);
        if target.extra_ca.is_none() {
            target.extra_ca = Some(test_pki().ca.clone());
        }
    }
    target
}

/// The `fulcrum agent` flags for the same.
pub fn agent_flags(url: &str) -> Vec<String> {
    let target = target(url, "", None);
    let mut flags = vec![
        "--transport".to_owned(),
        match target.transport {
            TransportMode::Ws => "ws",
            TransportMode::Quic => "quic",
            TransportMode::Auto => "auto",
        }
        .to_owned(),
    ];
    if let Some(port) = target.quic_port {
        flags.extend(["--quic-port".to_owned(), port.to_string()]);
    }
    if let Some(ca) = target.extra_ca {
        flags.extend(["--ca-file".to_owned(), ca.display().to_string()]);
    }
    flags
}
