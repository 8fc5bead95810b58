//! The relay serves the install script (with its own URL filled in), the agent binaries it has,
//! and their SHA-256 checksums.

use fulcrum_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_serves_the_installer_and_checksummed_binaries() {
    let db = TestDb::new(Backend::Sqlite).await;
    let downloads = tempfile::tempdir().unwrap();
    let (os, arch) = fulcrum_relay::install::this_platform();
    let agent = downloads.path().join(format!("fulcrum-{os}-{arch}"));
    std::fs::copy(workspace_binary("fulcrum"), &agent).unwrap();
    let mut config = relay_config(&db, &RelayOptions::default());
    config.downloads_dir = Some(downloads.path().to_path_buf());
    let relay = fulcrum_relay::Relay::start(config).await.unwrap();
    let http = reqwest::Client::new();

    let script = http
        .get(format!("{}/install.sh", relay.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    let script = script.text().await.unwrap();
    assert!(
        script.starts_with("#!/bin/sh"),
        "{}",
        &script[..80.min(script.len())]
    );
    assert!(
        script.contains(&relay.url()),
        "the relay's URL is filled in"
    );

    let binary = http
        .get(format!("{}/download/fulcrum/{os}/{arch}", relay.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 200);
    let bytes = binary.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), std::fs::read(&agent).unwrap().as_slice());

    let sum = http
        .get(format!(
            "{}/download/fulcrum/{os}/{arch}/sha256",
            relay.url()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = std::process::Command::new("sha256sum")
        .arg(&agent)
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(sum, format!("{expected}  fulcrum\n"));

    for path in [
        "/download/fulcrum/windows/x86_64",
        "/download/fulcrum/linux/sparc",
        "/download/fulcrum/linux/..%2F..%2Fetc%2Fpasswd",
    ] {
        let r = http
            .get(format!("{}{path}", relay.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    relay.shutdown().await.unwrap();
}

/// Processes running `BIN agent`, by their `/proc` directory.
fn agents(bin: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|dir| {
            let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.len() >= 2 && args[0] == bin.as_os_str().as_encoded_bytes() && args[1] == b"agent"
        })
        .collect()
}

/// How many processes run `BIN agent`.
fn agents_running(bin: &std::path::Path) -> usize {
    agents(bin).len()
}

/// A network namespace of the test's own, joined to this one by a veth pair: a "workspace" that
/// reaches the relay over a network, as a real one does. Removed on drop.
struct NetNs {
    name: String,
    ip: std::path::PathBuf,
    /// The relay's side of the pair, reachable from inside.
    host: std::net::Ipv4Addr,
}

impl NetNs {
    /// Makes one, or says why it cannot (not root, no `ip`, no permission) and returns `None`.
    fn create() -> Option<Self> {
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists());
        // Without root (or CAP_NET_ADMIN) the first step fails, and says so.
        let Some(ip) = ip else {
            eprintln!("no network namespace: iproute2's ip is not installed");
            return None;
        };
        let n = std::process::id();
        let tag = format!("{:06x}", n & 0xff_ffff);
        let (a, b) = (10, 200 + (n % 50) as u8);
        let c = ((n / 50) % 64) as u8 * 4;
        let host = std::net::Ipv4Addr::new(a, b, c, 1);
        let inside = std::net::Ipv4Addr::new(a, b, c, 2);
        let ns = Self {
            name: format!("fulcrum-{tag}"),
            ip,
            host,
        };
        let (outer, inner) = (format!("fh{tag}"), format!("fn{tag}"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.name.clone()],
            [
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]
            .map(String::from)
            .to_vec(),
            ["link", "set", &inner, "netns", &ns.name]
                .map(String::from)
                .to_vec(),
            vec![
                "addr".into(),
                "add".into(),
                format!("{host}/30"),
                "dev".into(),
                outer.clone(),
            ],
            ["link", "set", &outer, "up"].map(String::from).to_vec(),
            vec![
                "-n".into(),
                ns.name.clone(),
                "addr".into(),
                "add".into(),
                format!("{inside}/30"),
                "dev".into(),
                inner.clone(),
            ],
            ["-n", &ns.name, "link", "set", &inner, "up"]
                .map(String::from)
                .to_vec(),
            ["-n", &ns.name, "link", "set", "lo", "up"]
                .map(String::from)
                .to_vec(),
        ];
        for step in steps {
            let out = std::process::Command::new(&ns.ip)
                .args(&step)
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!(
                    "no network namespace: ip {} failed: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
        }
        Some(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `curl …/install.sh | sh` in a fresh "workspace" (its own HOME, a plain PATH, no user
/// systemd, and, when the machine allows it, its own network namespace): the agent is
/// installed, runs and is online; running it again upgrades in place with still one agent;
/// `--uninstall` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_pipe_sh_installs_upgrades_and_uninstalls_the_agent() {
    let netns = NetNs::create();
    let db = TestDb::new(Backend::Sqlite).await;
    let downloads = tempfile::tempdir().unwrap();
    let (os, arch) = fulcrum_relay::install::this_platform();
    std::fs::copy(
        workspace_binary("fulcrum"),
        downloads.path().join(format!("fulcrum-{os}-{arch}")),
    )
    .unwrap();
    // In a namespace, the relay listens on its side of the veth pair.
    let listen = match &netns {
        Some(ns) => std::net::SocketAddr::new(ns.host.into(), 0),
        None => "127.0.0.1:0".parse().unwrap(),
    };
    let opts = RelayOptions {
        listen,
        ..Default::default()
    };
    let mut config = relay_config(&db, &opts);
    config.downloads_dir = Some(downloads.path().to_path_buf());
    let relay = fulcrum_relay::Relay::start(config).await.unwrap();
    let alice = make_user(&relay, "alice").await;
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();

    let home = tempfile::tempdir().unwrap();
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let bin = home.path().join("bin/fulcrum");
    let install = |extra: &str| {
        let script =
            format!("curl -fsSL \"$RELAY/install.sh\" | sh -s -- --bin-dir \"$HOME/bin\" {extra}");
        let mut cmd = match &netns {
            Some(ns) => {
                let mut cmd = tokio::process::Command::new(&ns.ip);
                cmd.args(["netns", "exec", &ns.name, "/bin/sh", "-c", &script]);
                cmd
            }
            None => {
                let mut cmd = tokio::process::Command::new("sh");
                cmd.arg("-c").arg(&script);
                cmd
            }
        };
        cmd.env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("RELAY", relay.url())
            .env("FULCRUM_AGENT_TOKEN", &alice.agent_token)
            // No user systemd here: the script runs the agent under its own supervisor.
            .env("XDG_RUNTIME_DIR", &runtime)
            .kill_on_drop(true);
        cmd
    };

    // A refused token: a clear exit 5, nothing installed.
    let mut refused = install("");
    refused.env("FULCRUM_AGENT_TOKEN", "fca_not-a-real-token");
    let out = refused.output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bin.exists());

    let out = install("").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    assert!(bin.is_file());
    assert_eq!(agents_running(&bin), 1);
    if netns.is_some() {
        let net = |dir: &std::path::Path| std::fs::read_link(dir.join("ns/net")).unwrap();
        assert_ne!(
            net(&agents(&bin)[0]),
            net(std::path::Path::new("/proc/self")),
            "the agent runs in the workspace's own network namespace"
        );
    }
    let token_file = home.path().join(".config/fulcrum/token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&alice.agent_token),
        "the token is never printed"
    );

    // Again: upgraded in place and restarted; still one agent, the same workspace.
    let out = install("").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
        .workspace_where(|x| x["id"] == w["id"] && x["online"] == true)
        .await
        .unwrap();
    assert_eq!(agents_running(&bin), 1);
    let listed = Api::new(&relay.url())
        .with_token(&alice.access)
        .workspaces()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "still one workspace");

    // Uninstall: the agent stops and its files are gone.
    let out = install("--uninstall").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
        .workspace_where(|x| x["id"] == w["id"] && x["online"] == false)
        .await
        .unwrap();
    assert_eq!(agents_running(&bin), 0);
    assert!(!bin.exists());
    assert!(!token_file.exists());
    relay.shutdown().await.unwrap();
}

/// The Coder module parses as HCL and has what a template needs: the three variables, a script
/// that runs on start, and no token anywhere but the sensitive variable.
#[test]
fn the_coder_module_parses_and_runs_the_installer_on_start() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../install/coder");
    let text = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    let body: hcl::Body = hcl::from_str(&text).expect("main.tf is valid HCL");
    let blocks: Vec<&hcl::Block> = body.blocks().collect();
    let variable = |name: &str| {
        blocks
            .iter()
            .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == name)
            .copied()
    };
    for name in ["agent_id", "relay_url", "token"] {
        assert!(variable(name).is_some(), "variable {name}");
    }
    let sensitive = variable("token")
        .unwrap()
        .body()
        .attributes()
        .find(|a| a.key() == "sensitive")
        .map(|a| a.expr().clone());
    assert_eq!(sensitive, Some(hcl::Expression::Bool(true)));
    let script = blocks
        .iter()
        .find(|b| b.identifier() == "resource" && b.labels()[0].as_str() == "coder_script")
        .expect("a coder_script resource");
    let run_on_start = script
        .body()
        .attributes()
        .find(|a| a.key() == "run_on_start")
        .map(|a| a.expr().clone());
    assert_eq!(run_on_start, Some(hcl::Expression::Bool(true)));
    let run = std::fs::read_to_string(dir.join("run.sh")).unwrap();
    assert!(run.contains("/install.sh"), "the script runs the installer");
}
