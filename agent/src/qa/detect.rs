//! Working out which QA steps to run for a repository: the steps of its
//! `fulcrum.toml` when it has one, otherwise test steps detected from the
//! project layout (Cargo, npm, pytest, Go).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::config::{self, OutputFormat, QaError, Step};

/// Largest `package.json` read during detection, in bytes.
pub const MAX_PACKAGE_JSON_BYTES: u64 = 1024 * 1024;

/// Where a [`Plan`]'s steps came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSource {
    /// The repository's `fulcrum.toml`.
    File,
    /// Detected from the project layout.
    Detected,
}

/// The QA steps for a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Where the steps came from.
    pub source: PlanSource,
    /// The steps, in the order they should run (never empty).
    pub steps: Vec<Step>,
}

impl Plan {
    /// Steps to run for `name`: every step (in order) for `"qa"` or `"all"`,
    /// else the one step of that name, else an error listing the names.
    pub fn select(&self, name: &str) -> Result<Vec<Step>, QaError> {
        if config::RESERVED_NAMES.contains(&name) {
            return Ok(self.steps.clone());
        }
        match self.steps.iter().find(|s| s.name == name) {
            Some(step) => Ok(vec![step.clone()]),
            None => Err(QaError::UnknownStep {
                name: name.to_string(),
                available: self.steps.iter().map(|s| s.name.clone()).collect(),
            }),
        }
    }
}

/// The plan for `repo`: `fulcrum.toml` when present, else [`detect`]ed steps.
pub fn plan(repo: &Path) -> Result<Plan, QaError> {
    if let Some(steps) = config::load(repo)? {
        return Ok(Plan {
            source: PlanSource::File,
            steps,
        });
    }
    let steps = detect(repo)?;
    if steps.is_empty() {
        return Err(QaError::NothingToRun);
    }
    Ok(Plan {
        source: PlanSource::Detected,
        steps,
    })
}

/// Detects test steps from the project layout (ignoring `fulcrum.toml`).
/// A single detected step is named `test`; several are named `test-cargo`,
/// `test-npm`, `test-pytest`, `test-go`. Returns an empty list when nothing
/// is recognised.
pub fn detect(repo: &Path) -> Result<Vec<Step>, QaError> {
    let mut found: Vec<(&str, Step)> = Vec::new();
    if repo.join("Cargo.toml").is_file() {
        found.push((
            "cargo",
            step(
                "cargo test --no-fail-fast --color never",
                Vec::new(),
                OutputFormat::Cargo,
            ),
        ));
    }
    if has_npm_test(repo)? {
        found.push((
            "npm",
            step("npm test --silent", Vec::new(), OutputFormat::Auto),
        ));
    }
    if is_pytest_project(repo) {
        found.push((
            "pytest",
            step(
                r#"python3 -m pytest -q -rA --junitxml="$FULCRUM_REPORT_DIR/pytest.xml""#,
                vec![format!("{}/pytest.xml", config::REPORT_DIR_VAR)],
                OutputFormat::Pytest,
            ),
        ));
    }
    if repo.join("go.mod").is_file() {
        found.push(("go", step("go test -v ./...", Vec::new(), OutputFormat::Go)));
    }
    let several = found.len() > 1;
    Ok(found
        .into_iter()
        .map(|(kind, mut s)| {
            if several {
                s.name = format!("test-{kind}");
            }
            s
        })
        .collect())
}

fn step(command: &str, reports: Vec<String>, format: OutputFormat) -> Step {
    Step {
        name: "test".to_string(),
        command: command.to_string(),
        env: BTreeMap::new(),
        timeout_s: None,
        reports,
        format,
        color: false,
    }
}

/// True when `package.json` has a real `scripts.test` (not empty and not
/// npm's `echo "Error: no test specified" && exit 1` placeholder).
fn has_npm_test(repo: &Path) -> Result<bool, QaError> {
    let path = repo.join("package.json");
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) =>
        {
            return Ok(false);
        }
        Err(source) => return Err(QaError::Io { path, source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_PACKAGE_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| QaError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_PACKAGE_JSON_BYTES {
        return Err(QaError::TooLarge {
            path,
            size: bytes.len() as u64,
            limit: MAX_PACKAGE_JSON_BYTES,
        });
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| QaError::Parse {
        path: path.clone(),
        message: e.to_string(), // serde_json says "... at line N column M"
    })?;
    let test = json
        .get("scripts")
        .and_then(|s| s.get("test"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .trim();
    Ok(!test.is_empty() && !test.contains("no test specified"))
}

/// True for a pytest project: a config file that pytest reads, a
/// `conftest.py`, top-level `test_*.py` files, or a `tests/` directory with
/// Python files in it (a `tests/` of Rust integration tests does not count).
fn is_pytest_project(repo: &Path) -> bool {
    const MARKERS: [&str; 5] = [
        "pyproject.toml",
        "pytest.ini",
        "setup.cfg",
        "tox.ini",
        "conftest.py",
    ];
    if MARKERS.iter().any(|m| repo.join(m).is_file()) {
        return true;
    }
    let is_py_test = |name: &str| name.starts_with("test_") && name.ends_with(".py");
    if dir_has_file(repo, is_py_test) {
        return true;
    }
    let tests = repo.join("tests");
    tests.is_dir() && dir_has_file(&tests, |name| name.ends_with(".py"))
}

/// True when `dir` directly contains a regular file whose name satisfies `f`.
/// Looks at no more than a few thousand entries.
fn dir_has_file(dir: &Path, f: impl Fn(&str) -> bool) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .take(10_000)
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(&f) && e.file_type().is_ok_and(|t| t.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        dir
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn cargo_only() {
        let dir = repo(&[("Cargo.toml", "[package]"), ("tests/it.rs", "")]);
        let plan = plan(dir.path()).unwrap();
        assert_eq!(plan.source, PlanSource::Detected);
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.steps[0].name, "test");
        assert_eq!(
            plan.steps[0].command,
            "cargo test --no-fail-fast --color never"
        );
        assert_eq!(plan.steps[0].format, OutputFormat::Cargo);
    }

    #[test]
    fn cargo_and_npm_get_distinct_names() {
        let dir = repo(&[
            ("Cargo.toml", "[package]"),
            ("package.json", r#"{"scripts": {"test": "jest"}}"#),
        ]);
        let steps = detect(dir.path()).unwrap();
        assert_eq!(names(&steps), ["test-cargo", "test-npm"]);
        assert_eq!(steps[1].command, "npm test --silent");
        assert_eq!(steps[1].format, OutputFormat::Auto);
    }

    #[test]
    fn npm_placeholder_or_missing_test_script_is_ignored() {
        let dir = repo(&[(
            "package.json",
            r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#,
        )]);
        assert!(detect(dir.path()).unwrap().is_empty());
        let dir = repo(&[("package.json", r#"{"scripts": {"build": "tsc"}}"#)]);
        assert!(matches!(
            plan(dir.path()).unwrap_err(),
            QaError::NothingToRun
        ));
        let dir = repo(&[("package.json", "{\n  \"scripts\": {,\n}")]);
        let msg = detect(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn pytest_variants() {
        for files in [
            &[("pytest.ini", "")][..],
            &[("pyproject.toml", "")],
            &[("conftest.py", "")],
            &[("test_x.py", "")],
            &[("tests/test_x.py", "")],
        ] {
            let dir = repo(files);
            let steps = detect(dir.path()).unwrap();
            assert_eq!(names(&steps), ["test"], "{files:?}");
            assert_eq!(steps[0].format, OutputFormat::Pytest);
            assert_eq!(steps[0].reports, ["$FULCRUM_REPORT_DIR/pytest.xml"]);
            assert!(
                steps[0]
                    .command
                    .contains("--junitxml=\"$FULCRUM_REPORT_DIR/pytest.xml\"")
            );
        }
    }

    #[test]
    fn go_and_all_four() {
        let dir = repo(&[("go.mod", "module x")]);
        let steps = detect(dir.path()).unwrap();
        assert_eq!(steps[0].command, "go test -v ./...");
        assert_eq!(steps[0].format, OutputFormat::Go);
        let dir = repo(&[
            ("go.mod", "module x"),
            ("Cargo.toml", ""),
            ("package.json", r#"{"scripts": {"test": "vitest"}}"#),
            ("tox.ini", ""),
        ]);
        assert_eq!(
            names(&detect(dir.path()).unwrap()),
            ["test-cargo", "test-npm", "test-pytest", "test-go"]
        );
    }

    #[test]
    fn nothing_to_detect() {
        let dir = repo(&[("README.md", "hi"), ("tests/data.txt", "")]);
        let err = plan(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no fulcrum.toml and nothing to detect (looked for Cargo.toml, package.json, pytest config, go.mod)"
        );
    }

    #[test]
    fn file_wins_and_select() {
        let dir = repo(&[
            ("Cargo.toml", ""),
            (
                "fulcrum.toml",
                "[[steps]]\nname = \"lint\"\ncommand = \"a\"\n[[steps]]\nname = \"test\"\ncommand = \"b\"\n",
            ),
        ]);
        let plan = plan(dir.path()).unwrap();
        assert_eq!(plan.source, PlanSource::File);
        assert_eq!(names(&plan.select("qa").unwrap()), ["lint", "test"]);
        assert_eq!(names(&plan.select("all").unwrap()), ["lint", "test"]);
        assert_eq!(names(&plan.select("test").unwrap()), ["test"]);
        let msg = plan.select("build").unwrap_err().to_string();
        assert!(
            msg.contains("unknown step `build`") && msg.contains("lint, test"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_file_is_an_error_not_detection() {
        let dir = repo(&[("Cargo.toml", ""), ("fulcrum.toml", "[[steps]]\nnam = 1\n")]);
        assert!(plan(dir.path()).is_err());
    }
}
