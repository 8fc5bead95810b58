//! Real processes and a real network for the failure tests: the relay and agent binaries (so a
//! test can SIGKILL them), and a TCP forwarder a test can cut and restore.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::watch,
};

use crate::{TestDb, WAIT, workspace_binary};

/// A `fulcrum-relay serve` process.
pub struct RelayProcess {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Everything it logged after it began listening (the last 8 MiB).
    pub logs: Arc<std::sync::Mutex<String>>,
}

/// Starts `fulcrum-relay serve` on `db` at `listen` (port 0 for any), with extra TOML config,
/// and waits until it listens.
pub async fn spawn_relay(db: &TestDb, data: &Path, listen: &str, config: &str) -> RelayProcess {
    spawn_relay_logging(db, data, listen, config, "warn").await
}

/// [`spawn_relay`], logging at `level` (`FULCRUM_LOG`), the logs kept in [`RelayProcess::logs`].
pub async fn spawn_relay_logging(
    db: &TestDb,
    data: &Path,
    listen: &str,
    config: &str,
    level: &str,
) -> RelayProcess {
    let config_file = data.join("relay.toml");
    let mut config = config.to_owned();
    if crate::transport::mode() != fulcrum_agent::transport::TransportMode::Ws {
        // QUIC with the suite's certificate, on the port a relay here had before, if any.
        let listen: SocketAddr = listen.parse().expect("listen is host:port");
        let port = crate::transport::quic_port(listen).unwrap_or(0);
        let pki = crate::transport::test_pki();
        config = format!(
            "{config}\n[quic]\nlisten = \"{}\"\ncert_file = {:?}\nkey_file = {:?}\n",
            SocketAddr::new(listen.ip(), port),
            pki.tls.cert_file,
            pki.tls.key_file,
        );
    }
    std::fs::write(&config_file, config).unwrap();
    let mut child = Command::new(workspace_binary("fulcrum-relay"))
        .args(["serve", "--listen", listen, "--config"])
        .arg(&config_file)
        .env("FULCRUM_DATABASE_URL", &db.url)
        .env("FULCRUM_DATA_DIR", data)
        .env("FULCRUM_LOG", level)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("relay binary starts");
    // It says where it listens on stderr, among its logs.
    let stdout = child.stderr.take().unwrap();
    let logs: Arc<std::sync::Mutex<String>> = Default::default();
    let kept = logs.clone();
    let (url, quic) = tokio::time::timeout(WAIT, async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut quic = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("fulcrum-relay QUIC on udp/") {
                quic = Some(addr.trim().parse::<SocketAddr>().expect("a QUIC address"));
            }
            if let Some(url) = line.strip_prefix("fulcrum-relay listening on ") {
                // Keep draining its logs, so it never blocks on a full pipe.
                tokio::spawn(async move {
                    while let Ok(Some(line)) = lines.next_line().await {
                        let mut kept = kept.lock().unwrap();
                        if kept.len() < 8 << 20 {
                            kept.push_str(&line);
                            kept.push('\n');
                        }
                    }
                });
                return (url.trim().to_owned(), quic);
            }
        }
        panic!("the relay exited before listening");
    })
    .await
    .expect("the relay listens in time");
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("the relay prints host:port");
    crate::transport::remember_quic(addr, quic);
    RelayProcess {
        child,
        url,
        addr,
        logs,
    }
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    let pid = child.id().expect("still running") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal delivered");
}

impl RelayProcess {
    /// SIGKILL: no shutdown, no flush, no goodbye to the agents.
    pub async fn kill9(mut self) {
        signal(&self.child, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait().await;
    }
}

/// Starts the `fulcrum agent` binary.
pub fn spawn_agent(url: &str, token: &str, root: &Path, state: &Path) -> Child {
    Command::new(workspace_binary("fulcrum"))
        .args(["agent", "--relay", url])
        .args(crate::transport::agent_flags(url))
        .arg("--root")
        .arg(root)
        .arg("--state-dir")
        .arg(state)
        .env("FULCRUM_AGENT_TOKEN", token)
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("agent binary starts")
}

/// A TCP forwarder in front of a server that a test can cut (every connection dropped, new
/// ones closed at once) and restore.
pub struct Cuttable {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    _stop: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    /// Forwards connections on a new port to `target`.
    pub async fn new(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        let stop = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    let done = Arc::new(AtomicBool::new(false));
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                    done.store(true, Ordering::Relaxed);
                });
            }
        });
        Self {
            addr,
            cut,
            _stop: stop,
        }
    }

    /// The URL to give clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// A forwarding HTTP proxy that tunnels `CONNECT` requests and remembers each request's head.
pub struct ConnectProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts the proxy on a free port.
    pub async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                        match client.read_u8().await {
                            Ok(b) => head.push(b),
                            Err(_) => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head
                        .strip_prefix("CONNECT ")
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_owned);
                    seen.lock().unwrap().push(head);
                    let Some(target) = target else {
                        let _ = client
                            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                            .await;
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            addr,
            seen,
            _task: task,
        }
    }

    /// The request heads it received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
