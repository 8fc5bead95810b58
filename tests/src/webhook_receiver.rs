//! A webhook receiver for the tests: `tests/webhooks/receiver.py`, which checks every
//! delivery with the official Standard Webhooks library and prints what it got.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};

/// The receiver process and the deliveries it printed.
pub struct Receiver {
    _child: tokio::process::Child,
    lines: Lines<BufReader<tokio::process::ChildStdout>>,
    /// Its base URL (post to `{url}/hook`).
    pub url: String,
}

impl Receiver {
    /// Starts it (from the Standard Webhooks venv of `scripts/setup.sh`).
    pub async fn start() -> Self {
        let venv = std::env::var("FULCRUM_LLM_VENV")
            .expect("FULCRUM_LLM_VENV is set by scripts/setup.sh (standardwebhooks)");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(format!("{venv}/bin/python"))
            .arg(root.join("webhooks/receiver.py"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let port = first
            .strip_prefix("LISTENING ")
            .expect("the receiver listens");
        Self {
            _child: child,
            lines,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sets its secret, the statuses of its next answers and their `Retry-After`.
    pub async fn control(&self, v: Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/_control", self.url))
            .json(&v)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// The next delivery it got.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("a delivery within 30 s")
            .unwrap()
            .expect("the receiver is running");
        serde_json::from_str(&line).unwrap()
    }
}
