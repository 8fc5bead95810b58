//! What the Fulcrum binaries (`fulcrum` and `fulcrum-relay`) share and nothing else: how they
//! log, when they stop, and how a TOML error names its line. Kept apart so that the relay does not link the agent.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging to stderr; `FULCRUM_LOG` (or `RUST_LOG`) sets the filter, default `info`.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FULCRUM_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Errors in TOML files people write (`fulcrum.toml`, pipeline definitions) that name the line.
pub mod toml_errors {
    /// 1-based line number of byte `offset` in `text`.
    pub fn line_of(text: &[u8], offset: usize) -> usize {
        let end = offset.min(text.len());
        text[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// The error's text, always naming a line when the parser knows where it is (toml's own
    /// text says "TOML parse error at line N, column M" when it knows the span).
    pub fn message(e: &toml::de::Error, text: &str) -> String {
        let msg = e.to_string();
        if msg.contains("line ") {
            return msg.trim_end().to_string();
        }
        match e.span() {
            Some(span) => format!(
                "line {}: {}",
                line_of(text.as_bytes(), span.start),
                e.message()
            ),
            None => msg.trim_end().to_string(),
        }
    }
}
