//! Parsing and validation of a repository's `fulcrum.toml`, which lists the
//! QA steps (lint, test, ...) to run, plus the [`QaError`] type shared by the
//! whole `qa` module.
//!
//! ```toml
//! [[steps]]
//! name = "lint"                          # required, [a-z0-9_-]{1,64}, unique
//! command = "cargo clippy"               # required, run with `sh -c`, <= 8 KiB
//! timeout_s = 600                        # optional, 1..=86400
//! env = { RUSTFLAGS = "-D warnings" }    # optional, <= 64 variables
//! reports = ["target/junit.xml", "$FULCRUM_REPORT_DIR/*.xml"]  # JUnit XML globs
//! format = "cargo"                       # "cargo" | "pytest" | "go" | "none"
//! color = true                           # optional: ask the tools for ANSI colour
//!                                        # (FORCE_COLOR, CLICOLOR_FORCE, CARGO_TERM_COLOR,
//!                                        # PY_COLORS); the dashboard renders it
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Name of the configuration file at the repository root.
pub const CONFIG_FILE: &str = "fulcrum.toml";
/// Largest accepted `fulcrum.toml`, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;
/// Longest accepted step command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// Most environment variables a step may set.
pub const MAX_ENV_VARS: usize = 64;
/// Most report patterns a step may list.
pub const MAX_REPORT_PATTERNS: usize = 64;
/// Longest accepted step name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest accepted `timeout_s`, in seconds (one day).
pub const MAX_TIMEOUT_S: u64 = 86_400;
/// Placeholder in `reports` patterns that expands to the per-run report directory.
pub const REPORT_DIR_VAR: &str = "$FULCRUM_REPORT_DIR";
/// Step names reserved for "run every step" (see [`crate::qa::Plan::select`]).
pub const RESERVED_NAMES: [&str; 2] = ["qa", "all"];

/// Errors from loading, planning and parsing QA runs.
#[derive(Debug, thiserror::Error)]
pub enum QaError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file is larger than allowed.
    #[error("{} is too large ({size} bytes, limit {limit})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least).
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A file is not valid TOML/JSON or does not have the expected shape.
    /// The message names the line and column.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, including "line N".
        message: String,
    },
    /// A step in `fulcrum.toml` is well-formed TOML but invalid.
    #[error("{}: line {line}: step `{step}`: {message}", path.display())]
    InvalidStep {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// The step's name (as written, possibly invalid).
        step: String,
        /// What is wrong.
        message: String,
    },
    /// `fulcrum.toml` exists but defines no steps.
    #[error("{}: no [[steps]] defined", path.display())]
    NoSteps {
        /// The file.
        path: PathBuf,
    },
    /// Neither a `fulcrum.toml` nor any known project type was found.
    #[error(
        "no fulcrum.toml and nothing to detect (looked for Cargo.toml, package.json, pytest config, go.mod)"
    )]
    NothingToRun,
    /// [`crate::qa::Plan::select`] was given a name that is not a step.
    #[error("unknown step `{name}`; available: {} (or `qa`/`all` for every step)", available.join(", "))]
    UnknownStep {
        /// The requested name.
        name: String,
        /// Names of the steps that exist, in order.
        available: Vec<String>,
    },
    /// A JUnit XML document could not be parsed.
    #[error("invalid JUnit XML: {0}")]
    Junit(String),
}

/// How to read a step's plain console output when it produced no JUnit report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Try every plain-output parser and keep the best match.
    #[default]
    Auto,
    /// `cargo test` (libtest) or `cargo nextest` output.
    Cargo,
    /// `pytest` output (best with `-rA`).
    Pytest,
    /// `go test -v` output.
    Go,
    /// Do not parse the output (e.g. a lint step).
    None,
}

/// One QA step: a shell command plus how to read its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique name, `[a-z0-9_-]{1,64}`.
    pub name: String,
    /// Command run with `sh -c`.
    pub command: String,
    /// Extra environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// Timeout in seconds (`None`: the caller's default).
    pub timeout_s: Option<u64>,
    /// JUnit XML glob patterns relative to the repository; a leading
    /// `$FULCRUM_REPORT_DIR` stands for the per-run report directory.
    pub reports: Vec<String>,
    /// Plain-output parser used when no report is found.
    pub format: OutputFormat,
    /// Whether the tools are asked for colour (see [`COLOR_ENV`]).
    pub color: bool,
}

/// What `color = true` sets (unless the step's `env` sets it): the variables common tools read
/// to colour output that is not a terminal.
pub const COLOR_ENV: &[(&str, &str)] = &[
    ("FORCE_COLOR", "1"),
    ("CLICOLOR_FORCE", "1"),
    ("CARGO_TERM_COLOR", "always"),
    ("PY_COLORS", "1"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    steps: Vec<RawStep>,
    /// Pipelines the repository defines: read by the relay when a run starts, not here.
    #[serde(default)]
    #[allow(dead_code)]
    pipelines: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    command: Spanned<String>,
    #[serde(default)]
    timeout_s: Option<Spanned<i64>>,
    #[serde(default)]
    env: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    reports: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    format: Option<RawFormat>,
    #[serde(default)]
    color: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawFormat {
    Auto,
    Cargo,
    Pytest,
    Go,
    None,
}

impl From<RawFormat> for OutputFormat {
    fn from(f: RawFormat) -> Self {
        match f {
            RawFormat::Auto => OutputFormat::Auto,
            RawFormat::Cargo => OutputFormat::Cargo,
            RawFormat::Pytest => OutputFormat::Pytest,
            RawFormat::Go => OutputFormat::Go,
            RawFormat::None => OutputFormat::None,
        }
    }
}

/// Loads `<repo>/fulcrum.toml`. Returns `Ok(None)` when the file does not
/// exist, and an error naming the file and line when it is invalid.
pub fn load(repo: &Path) -> Result<Option<Vec<Step>>, QaError> {
    let path = repo.join(CONFIG_FILE);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(QaError::Io { path, source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| QaError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(QaError::TooLarge {
            path,
            size: bytes.len() as u64,
            limit: MAX_CONFIG_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| QaError::Parse {
        message: format!(
            "not valid UTF-8 at line {}",
            line_of(e.as_bytes(), e.utf8_error().valid_up_to())
        ),
        path: path.clone(),
    })?;
    parse_str(&text, &path).map(Some)
}

/// Parses and validates the text of a `fulcrum.toml`; `path` is only used in
/// error messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Vec<Step>, QaError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| QaError::Parse {
        path: path.to_path_buf(),
        message: toml_message(&e, text),
    })?;
    if raw.steps.is_empty() {
        return Err(QaError::NoSteps {
            path: path.to_path_buf(),
        });
    }
    let mut seen = HashSet::new();
    let mut steps = Vec::with_capacity(raw.steps.len());
    for raw_step in raw.steps {
        let name = raw_step.name.get_ref().clone();
        let invalid = |span: Range<usize>, message: String| QaError::InvalidStep {
            path: path.to_path_buf(),
            line: line_of(text.as_bytes(), span.start),
            step: name.clone(),
            message,
        };
        if !valid_step_name(&name) {
            return Err(invalid(
                raw_step.name.span(),
                format!("invalid name: must match [a-z0-9_-]{{1,{MAX_NAME_LEN}}}"),
            ));
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(invalid(
                raw_step.name.span(),
                format!("name `{name}` is reserved (it selects every step)"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(
                raw_step.name.span(),
                "duplicate step name".to_string(),
            ));
        }

        let command = raw_step.command.get_ref();
        if command.trim().is_empty() {
            return Err(invalid(
                raw_step.command.span(),
                "empty command".to_string(),
            ));
        }
        if command.len() > MAX_COMMAND_BYTES {
            return Err(invalid(
                raw_step.command.span(),
                format!(
                    "command is {} bytes, limit {MAX_COMMAND_BYTES}",
                    command.len()
                ),
            ));
        }
        if command.contains('\0') {
            return Err(invalid(
                raw_step.command.span(),
                "command contains a NUL byte".to_string(),
            ));
        }

        let timeout_s = match &raw_step.timeout_s {
            None => None,
            Some(t) => {
                let v = *t.get_ref();
                match u64::try_from(v) {
                    Ok(v) if (1..=MAX_TIMEOUT_S).contains(&v) => Some(v),
                    _ => {
                        return Err(invalid(
                            t.span(),
                            format!("timeout_s = {v} is out of range 1..={MAX_TIMEOUT_S}"),
                        ));
                    }
                }
            }
        };

        let env = match raw_step.env {
            None => BTreeMap::new(),
            Some(env) => {
                let span = env.span();
                let env = env.into_inner();
                if env.len() > MAX_ENV_VARS {
                    return Err(invalid(
                        span,
                        format!("{} env variables, limit {MAX_ENV_VARS}", env.len()),
                    ));
                }
                for (k, v) in &env {
                    if !valid_env_name(k) {
                        return Err(invalid(
                            span.clone(),
                            format!(
                                "invalid env variable name `{k}`: must match [A-Za-z_][A-Za-z0-9_]*"
                            ),
                        ));
                    }
                    if v.contains('\0') {
                        return Err(invalid(
                            span.clone(),
                            format!("env variable `{k}` contains a NUL byte"),
                        ));
                    }
                }
                env
            }
        };

        let reports = match raw_step.reports {
            None => Vec::new(),
            Some(list) => {
                let list_span = list.span();
                let list = list.into_inner();
                if list.len() > MAX_REPORT_PATTERNS {
                    return Err(invalid(
                        list_span,
                        format!(
                            "{} report patterns, limit {MAX_REPORT_PATTERNS}",
                            list.len()
                        ),
                    ));
                }
                let mut out = Vec::with_capacity(list.len());
                for p in list {
                    if let Err(msg) = validate_report_pattern(p.get_ref()) {
                        return Err(invalid(
                            p.span(),
                            format!("report pattern `{}`: {msg}", p.get_ref()),
                        ));
                    }
                    out.push(p.into_inner());
                }
                out
            }
        };

        steps.push(Step {
            name,
            command: raw_step.command.into_inner(),
            env,
            timeout_s,
            reports,
            format: raw_step.format.map(OutputFormat::from).unwrap_or_default(),
            color: raw_step.color,
        });
    }
    Ok(steps)
}

/// Splits a report pattern into its root (`true`: the report directory,
/// `false`: the repository) and the glob relative to that root.
pub(crate) fn split_report_pattern(pattern: &str) -> (bool, &str) {
    for var in [REPORT_DIR_VAR, "${FULCRUM_REPORT_DIR}"] {
        if let Some(rest) = pattern.strip_prefix(var) {
            if rest.is_empty() {
                return (true, "");
            }
            if let Some(rest) = rest.strip_prefix('/') {
                return (true, rest.trim_start_matches('/'));
            }
        }
    }
    (false, pattern.strip_prefix("./").unwrap_or(pattern))
}

/// Checks that a report pattern is relative, stays inside its root and is a
/// valid glob.
fn validate_report_pattern(pattern: &str) -> Result<(), String> {
    let (_, rel) = split_report_pattern(pattern);
    if rel.is_empty() {
        return Err("empty pattern".to_string());
    }
    if rel.starts_with('/') {
        return Err(
            "must be relative to the repository or start with $FULCRUM_REPORT_DIR/".to_string(),
        );
    }
    if rel.contains('$') {
        return Err("only a leading $FULCRUM_REPORT_DIR/ is expanded".to_string());
    }
    if rel.split('/').any(|c| c == "..") {
        return Err("must not contain `..`".to_string());
    }
    globset::GlobBuilder::new(rel)
        .literal_separator(true)
        .build()
        .map(|_| ())
        .map_err(|e| e.kind().to_string())
}

fn valid_step_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) use fulcrum_common::toml_errors::line_of;
use fulcrum_common::toml_errors::message as toml_message;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Step>, QaError> {
        parse_str(text, Path::new("fulcrum.toml"))
    }

    #[test]
    fn parses_full_example() {
        let steps = parse(
            r#"
[[steps]]
name = "lint"
command = "cargo clippy"
timeout_s = 600
env = { RUSTFLAGS = "-D warnings" }
reports = ["target/junit.xml", "$FULCRUM_REPORT_DIR/*.xml"]
format = "cargo"
color = true

[[steps]]
name = "unit_tests-2"
command = "pytest"
"#,
        )
        .unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0],
            Step {
                name: "lint".into(),
                command: "cargo clippy".into(),
                env: BTreeMap::from([("RUSTFLAGS".into(), "-D warnings".into())]),
                timeout_s: Some(600),
                reports: vec![
                    "target/junit.xml".into(),
                    "$FULCRUM_REPORT_DIR/*.xml".into()
                ],
                format: OutputFormat::Cargo,
                color: true,
            }
        );
        assert_eq!(steps[1].format, OutputFormat::Auto);
        assert!(!steps[1].color);
        assert_eq!(steps[1].timeout_s, None);
        assert!(steps[1].env.is_empty() && steps[1].reports.is_empty());
    }

    #[test]
    fn pipelines_beside_the_steps_are_left_to_the_relay() {
        let steps = parse(
            "[[steps]]\nname = \"test\"\ncommand = \"true\"\n\n[pipelines.docs]\n\
             [[pipelines.docs.stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"x\"\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 1);
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let err = parse("[[steps]]\nname = \"a\"\ncommand = \"x\"\ntimeout_s = = 3\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, QaError::Parse { .. }), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let err =
            parse("[[steps]]\nname = \"a\"\ncommand = \"x\"\ncommand_typo = 1\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("command_typo") && msg.contains("line 4"),
            "{msg}"
        );
        let err = parse("[settings]\nx = 1\n").unwrap_err();
        assert!(err.to_string().contains("settings"), "{err}");
    }

    #[test]
    fn missing_field_and_bad_format_name_the_line() {
        let msg = parse("[[steps]]\nname = \"a\"\n").unwrap_err().to_string();
        assert!(msg.contains("command") && msg.contains("line 1"), "{msg}");
        let msg = parse("[[steps]]\nname = \"a\"\ncommand = \"x\"\nformat = \"junit\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("junit") && msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn duplicate_step_names_step_and_line() {
        let err = parse(
            "[[steps]]\nname = \"test\"\ncommand = \"a\"\n\n[[steps]]\nname = \"test\"\ncommand = \"b\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fulcrum.toml: line 6: step `test`: duplicate step name"
        );
    }

    #[test]
    fn semantic_errors() {
        let cases = [
            ("name = \"Bad Name\"\ncommand = \"x\"", "invalid name", 2),
            ("name = \"\"\ncommand = \"x\"", "invalid name", 2),
            ("name = \"qa\"\ncommand = \"x\"", "reserved", 2),
            ("name = \"a\"\ncommand = \"  \"", "empty command", 3),
            (
                "name = \"a\"\ncommand = \"x\"\ntimeout_s = 0",
                "out of range",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\ntimeout_s = -5",
                "out of range",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\ntimeout_s = 86401",
                "out of range",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nenv = { \"1X\" = \"y\" }",
                "env variable name",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nreports = [\"/etc/x.xml\"]",
                "relative",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nreports = [\"../x.xml\"]",
                "..",
                4,
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nreports = [\"a/[x.xml\"]",
                "report pattern",
                4,
            ),
        ];
        for (body, want, line) in cases {
            let err = parse(&format!("[[steps]]\n{body}\n")).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, QaError::InvalidStep { .. }), "{msg}");
            assert!(msg.contains(want), "{body}: {msg}");
            assert!(msg.contains(&format!("line {line}:")), "{body}: {msg}");
        }
        let long = "x".repeat(MAX_COMMAND_BYTES + 1);
        let msg = parse(&format!("[[steps]]\nname = \"a\"\ncommand = \"{long}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("limit"), "{msg}");
        let vars: Vec<String> = (0..65).map(|i| format!("V{i} = \"x\"")).collect();
        let msg = parse(&format!(
            "[[steps]]\nname = \"a\"\ncommand = \"x\"\nenv = {{ {} }}\n",
            vars.join(", ")
        ))
        .unwrap_err()
        .to_string();
        assert!(msg.contains("env variables, limit"), "{msg}");
    }

    #[test]
    fn no_steps_is_an_error() {
        assert!(matches!(parse("").unwrap_err(), QaError::NoSteps { .. }));
    }

    #[test]
    fn load_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        fs::write(
            dir.path().join(CONFIG_FILE),
            "[[steps]]\nname = \"t\"\ncommand = \"true\"\n",
        )
        .unwrap();
        let steps = load(dir.path()).unwrap().unwrap();
        assert_eq!(steps[0].name, "t");
        fs::write(
            dir.path().join(CONFIG_FILE),
            "#".repeat(MAX_CONFIG_BYTES as usize + 1),
        )
        .unwrap();
        assert!(matches!(
            load(dir.path()).unwrap_err(),
            QaError::TooLarge { .. }
        ));
        fs::write(
            dir.path().join(CONFIG_FILE),
            b"[[steps]]\nname = \"\xff\"\n",
        )
        .unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn report_pattern_split() {
        assert_eq!(
            split_report_pattern("$FULCRUM_REPORT_DIR/*.xml"),
            (true, "*.xml")
        );
        assert_eq!(
            split_report_pattern("${FULCRUM_REPORT_DIR}/a.xml"),
            (true, "a.xml")
        );
        assert_eq!(
            split_report_pattern("./target/junit.xml"),
            (false, "target/junit.xml")
        );
        assert_eq!(
            split_report_pattern("$FULCRUM_REPORT_DIRX/a"),
            (false, "$FULCRUM_REPORT_DIRX/a")
        );
    }
}
