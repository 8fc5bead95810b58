//! The agent reaches the relay through an HTTP proxy (`HTTP_PROXY`/`HTTPS_PROXY`, with
//! credentials), and goes direct for hosts in `NO_PROXY`. Real `fulcrum agent` binary, real
//! forwarding proxy.

use fulcrum_tests::{processes::*, *};

const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
];

fn agent_with_env(
    url: &str,
    token: &str,
    root: &std::path::Path,
    state: &std::path::Path,
    env: &[(&str, String)],
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(workspace_binary("fulcrum"));
    cmd.args(["agent", "--relay", url, "--root"])
        .arg(root)
        .arg("--state-dir")
        .arg(state)
        .env("FULCRUM_AGENT_TOKEN", token)
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("agent binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_tunnels_through_http_proxy_and_honours_no_proxy() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let proxy = ConnectProxy::start().await;
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();

    // Through the proxy, with credentials in its URL.
    let mut agent = agent_with_env(
        &relay.url(),
        &alice.agent_token,
        repo.path(),
        state.path(),
        &[("HTTP_PROXY", format!("http://agent:s3cret@{}", proxy.addr))],
    );
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("CONNECT {} HTTP/1.1\r\n", relay.addr)),
        "{}",
        seen[0]
    );
    // "agent:s3cret" in base64.
    assert!(seen[0].contains("Proxy-Authorization: Basic YWdlbnQ6czNjcmV0\r\n"));
    signal(&agent, nix::sys::signal::Signal::SIGTERM);
    let _ = agent.wait().await;
    events
        .workspace_where(|x| x["id"] == w["id"] && x["online"] == false)
        .await
        .unwrap();

    // NO_PROXY names the relay's host: straight there, the proxy sees nothing new.
    let mut agent = agent_with_env(
        &relay.url(),
        &alice.agent_token,
        repo.path(),
        state.path(),
        &[
            ("HTTP_PROXY", format!("http://{}", proxy.addr)),
            ("NO_PROXY", "localhost,127.0.0.1".into()),
        ],
    );
    events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    assert_eq!(proxy.seen().len(), 1);
    signal(&agent, nix::sys::signal::Signal::SIGTERM);
    let _ = agent.wait().await;
    relay.shutdown().await.unwrap();
}
