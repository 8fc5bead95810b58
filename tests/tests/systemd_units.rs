//! The shipped systemd units pass `systemd-analyze verify`, pointed at the binaries built here.

use std::{path::Path, process::Command};

use fulcrum_tests::workspace_binary;

fn verify(unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (scripts/setup.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success() && stderr.trim().is_empty(), stderr)
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../systemd")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_relay_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("fulcrum-relay.service");
    let text = shipped("fulcrum-relay.service");
    assert!(text.contains("ExecStart=/usr/local/bin/fulcrum-relay serve"));
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=fulcrum",
        "EnvironmentFile=",
        "Restart=on-failure",
    ] {
        assert!(text.contains(hardening), "missing {hardening}");
    }
    let relay = workspace_binary("fulcrum-relay");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/fulcrum-relay", &relay.display().to_string()),
    )
    .unwrap();
    let (ok, stderr) = verify(&unit);
    assert!(ok, "{stderr}");

    // The check is real: a broken copy fails it.
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/fulcrum-relay", &relay.display().to_string())
            .replace("ProtectSystem=strict", "ProtectSystem=sideways"),
    )
    .unwrap();
    assert!(!verify(&unit).0);
}

#[test]
fn the_agent_user_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".local/bin")).unwrap();
    std::fs::copy(workspace_binary("fulcrum"), home.join(".local/bin/fulcrum")).unwrap();
    let text = shipped("fulcrum-agent.service");
    assert!(text.contains("ExecStart=%h/.local/bin/fulcrum agent"));
    let unit = dir.path().join("fulcrum-agent.service");
    std::fs::write(&unit, text.replace("%h", &home.display().to_string())).unwrap();
    let (ok, stderr) = verify(&unit);
    assert!(ok, "{stderr}");
}
