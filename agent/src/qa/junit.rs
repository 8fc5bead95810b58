//! Reading JUnit XML test reports (cargo-nextest, pytest `--junitxml`, and
//! the usual `testsuites`/`testsuite`/`testcase` shapes) into a
//! [`TestSummary`], and collecting a step's reports from disk.
//!
//! The XML is streamed with `quick-xml`: nesting depth costs no stack, and
//! `system-out`/`system-err` bodies are skipped rather than stored.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use super::config::{self, QaError};
use super::{TestSummary, merge, output, push_failure};

/// Largest JUnit XML file parsed, in bytes.
pub const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Most report files merged by [`collect`].
pub const MAX_REPORT_FILES: usize = 1_000;
/// Most directory entries [`collect`] looks at while expanding globs.
pub const MAX_WALK_ENTRIES: usize = 100_000;
/// Reports modified this long before `since` still count as fresh (file
/// timestamps come from a coarse clock and may lag the caller's clock).
pub const MTIME_SLACK: Duration = Duration::from_secs(1);

/// Most bytes of a failure body kept while parsing (the message is cut
/// further to [`super::MAX_MESSAGE_BYTES`]).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most lines of a failure body used as a message when it has no `message`.
const MAX_BODY_LINES: usize = 20;

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum Status {
    #[default]
    Passed,
    Skipped,
    Failed,
}

#[derive(Default)]
struct Case {
    name: String,
    status: Status,
    /// `message` attribute of the first failure/error.
    message: Option<String>,
    /// Text body of the first failure/error.
    body: String,
    /// Inside the first `<failure>`/`<error>` element.
    in_body: bool,
    /// A failure/error element was seen (only the first one is read).
    have_failure: bool,
}

/// Parses one JUnit XML document. Accepts a `<testsuites>` root (also
/// `<testrun>`), a bare `<testsuite>` root and nested suites. `<failure>` and
/// `<error>` count as failed, `<skipped>` as skipped, anything else as passed.
pub fn parse(xml: &[u8]) -> Result<TestSummary, QaError> {
    if xml.len() as u64 > MAX_REPORT_BYTES {
        return Err(QaError::Junit(format!(
            "document is {} bytes, limit {MAX_REPORT_BYTES}",
            xml.len()
        )));
    }
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut summary = TestSummary::default();
    let mut case: Option<Case> = None;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            QaError::Junit(format!(
                "line {}: {e}",
                config::line_of(xml, reader.error_position() as usize)
            ))
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                match e.local_name().as_ref() {
                    "testsuites" | "testsuite" | "testrun" => saw_root = true,
                    "testcase" => {
                        saw_root = true;
                        if let Some(prev) = case.take() {
                            finish_case(&mut summary, prev); // tolerate an unclosed testcase
                        }
                        let c = Case {
                            name: case_name(e)?,
                            ..Case::default()
                        };
                        if empty {
                            finish_case(&mut summary, c);
                        } else {
                            case = Some(c);
                        }
                    }
                    name @ ("failure" | "error") => {
                        if let Some(c) = case.as_mut() {
                            c.status = Status::Failed;
                            if !c.have_failure {
                                c.have_failure = true;
                                c.message = attr(e, "message")?;
                                c.in_body = !empty;
                                if c.message.is_none() && name == "error" {
                                    c.message = attr(e, "type")?;
                                }
                            }
                        }
                    }
                    "skipped" => {
                        if let Some(c) = case.as_mut().filter(|c| c.status == Status::Passed) {
                            c.status = Status::Skipped;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(ref e) => match e.local_name().as_ref() {
                "testcase" => {
                    if let Some(c) = case.take() {
                        finish_case(&mut summary, c);
                    }
                }
                "failure" | "error" => {
                    if let Some(c) = case.as_mut() {
                        c.in_body = false;
                    }
                }
                _ => {}
            },
            Event::Text(ref t) => push_body(&mut case, &t.xml10_content()),
            Event::CData(ref t) => push_body(&mut case, &t.xml10_content()),
            Event::GeneralRef(ref r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(r).map(str::to_string),
                };
                if let Some(s) = resolved {
                    push_body(&mut case, &s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(c) = case.take() {
        finish_case(&mut summary, c);
    }
    if !saw_root {
        return Err(QaError::Junit(
            "no <testsuites>, <testsuite> or <testcase> element".to_string(),
        ));
    }
    Ok(summary)
}

fn push_body(case: &mut Option<Case>, text: &str) {
    if let Some(c) = case.as_mut().filter(|c| c.in_body) {
        let room = MAX_BODY_BYTES.saturating_sub(c.body.len());
        if room >= text.len() {
            c.body.push_str(text);
        } else {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            c.body.push_str(&text[..cut]);
        }
    }
}

fn finish_case(summary: &mut TestSummary, case: Case) {
    match case.status {
        Status::Passed => summary.passed = summary.passed.saturating_add(1),
        Status::Skipped => summary.skipped = summary.skipped.saturating_add(1),
        Status::Failed => {
            summary.failed = summary.failed.saturating_add(1);
            let message = failure_message(case.message.as_deref().unwrap_or(""), &case.body);
            push_failure(summary, case.name, message);
        }
    }
}

/// The failure message: a Rust panic's message when the body holds one
/// (nextest's `message` attribute is only the "panicked at" line), else the
/// `message` attribute, else the first lines of the body.
fn failure_message(message: &str, body: &str) -> String {
    if body.contains("panicked at")
        && let Some(m) = output::rust_panic_message(body.lines())
    {
        return m;
    }
    let message = message.trim();
    if !message.is_empty() {
        return message.to_string();
    }
    let lines: Vec<&str> = body
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take(MAX_BODY_LINES)
        .collect();
    lines.join("\n").trim_end().to_string()
}

/// `classname::name`, or `name` when the class name is missing or empty.
fn case_name(e: &BytesStart<'_>) -> Result<String, QaError> {
    let name = attr(e, "name")?.unwrap_or_default();
    Ok(match attr(e, "classname")? {
        Some(class) if !class.is_empty() => format!("{class}::{name}"),
        _ => name,
    })
}

fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, QaError> {
    for a in e.attributes() {
        let a = a.map_err(|err| QaError::Junit(err.to_string()))?;
        if a.key.local_name().as_ref() == key {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| QaError::Junit(err.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Finds the reports matching `patterns` (globs relative to `repo`, or to
/// `report_dir` when they start with `$FULCRUM_REPORT_DIR/`), skips files
/// last modified before `since` (stale reports from an earlier run, with
/// [`MTIME_SLACK`]), and merges the ones that parse. `None` when no fresh,
/// valid report was found.
pub fn collect(
    repo: &Path,
    report_dir: &Path,
    patterns: &[String],
    since: SystemTime,
) -> Option<TestSummary> {
    let mut files = Vec::new();
    let mut budget = MAX_WALK_ENTRIES;
    for pattern in patterns {
        let (in_report_dir, rel) = config::split_report_pattern(pattern);
        let root = if in_report_dir { report_dir } else { repo };
        expand(root, rel, &mut files, &mut budget);
    }
    files.sort();
    files.dedup();
    let cutoff = since.checked_sub(MTIME_SLACK).unwrap_or(since);
    let mut total: Option<TestSummary> = None;
    for path in files.into_iter().take(MAX_REPORT_FILES) {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
            continue;
        }
        if meta.modified().is_ok_and(|m| m < cutoff) {
            continue;
        }
        let Some(bytes) = read_limited(&path) else {
            continue;
        };
        if let Ok(summary) = parse(&bytes) {
            merge(total.get_or_insert_with(TestSummary::default), summary);
        }
    }
    total
}

fn read_limited(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_REPORT_BYTES).then_some(bytes)
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{', '\\'])
}

/// Appends the files under `root` matching the relative glob `rel`.
/// Absolute patterns and `..` components match nothing.
fn expand(root: &Path, rel: &str, out: &mut Vec<PathBuf>, budget: &mut usize) {
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if rel.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return;
    }
    let literal = parts.iter().take_while(|p| !has_glob_meta(p)).count();
    let mut base = root.to_path_buf();
    base.extend(&parts[..literal]);
    if literal == parts.len() {
        out.push(base);
        return;
    }
    let rest = parts[literal..].join("/");
    let Ok(glob) = globset::GlobBuilder::new(&rest)
        .literal_separator(true)
        .build()
    else {
        return;
    };
    let matcher = glob.compile_matcher();
    let max_depth = if rest.contains("**") {
        64
    } else {
        parts.len() - literal
    };
    walk(&base, "", 1, max_depth, &matcher, out, budget);
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    max_depth: usize,
    matcher: &globset::GlobMatcher,
    out: &mut Vec<PathBuf>,
    budget: &mut usize,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 || out.len() >= MAX_REPORT_FILES {
            return;
        }
        *budget -= 1;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth < max_depth && name != ".git" {
                walk(
                    &entry.path(),
                    &rel,
                    depth + 1,
                    max_depth,
                    matcher,
                    out,
                    budget,
                );
            }
        } else if matcher.is_match(&rel) {
            out.push(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::TestFailure;

    fn names(s: &TestSummary) -> Vec<&str> {
        s.failures.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn real_nextest_report() {
        let s = parse(include_bytes!("fixtures/nextest_junit.xml")).unwrap();
        assert_eq!((s.passed, s.failed, s.skipped), (2, 2, 0));
        assert_eq!(
            names(&s),
            ["demo::tests::it_fails", "demo::integ::integ_panics"]
        );
        assert_eq!(
            s.failures[0].message,
            "assertion `left == right` failed: math is broken\n  left: 4\n right: 5\nat src/lib.rs:11:21"
        );
        assert_eq!(
            s.failures[1].message,
            "boom\nsecond line\nat tests/integ.rs:5:21"
        );
    }

    #[test]
    fn real_pytest_report() {
        let s = parse(include_bytes!("fixtures/pytest.xml")).unwrap();
        assert_eq!((s.passed, s.failed, s.skipped), (2, 3, 1));
        assert_eq!(
            names(&s),
            [
                "tests.test_demo::test_fails",
                "tests.test_demo.TestGroup::test_raises",
                "tests.test_demo::test_error"
            ]
        );
        assert_eq!(
            s.failures[0].message,
            "AssertionError: math is broken\nassert 4 == 5\n +  where 4 = add(2, 2)"
        );
        assert_eq!(s.failures[1].message, "ValueError: bad value\nsecond line");
        assert_eq!(
            s.failures[2].message,
            "failed on setup with \"RuntimeError: fixture exploded\""
        );
    }

    #[test]
    fn bare_suite_nested_suites_and_bodies() {
        let xml = br#"<?xml version="1.0"?>
<testsuite name="outer">
  <testsuite name="inner">
    <testcase name="a" classname=""/>
    <testcase name="b" classname="C"><failure>first line &amp; more
second line</failure><system-out>noise</system-out></testcase>
    <testcase name="c"><skipped/></testcase>
    <testcase name="d"><error message="" type="Boom"/></testcase>
    <testcase name="e"><failure message="m"><![CDATA[ignored <body>]]></failure></testcase>
  </testsuite>
</testsuite>"#;
        let s = parse(xml).unwrap();
        assert_eq!((s.passed, s.failed, s.skipped), (1, 3, 1));
        assert_eq!(
            s.failures,
            [
                TestFailure {
                    name: "C::b".into(),
                    message: "first line & more\nsecond line".into()
                },
                TestFailure {
                    name: "d".into(),
                    message: "".into()
                },
                TestFailure {
                    name: "e".into(),
                    message: "m".into()
                },
            ]
        );
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let n = 100_000;
        let mut xml = "<testsuite>".repeat(n);
        xml.push_str("<testcase name=\"x\"/>");
        xml.push_str(&"</testsuite>".repeat(n));
        let s = parse(xml.as_bytes()).unwrap();
        assert_eq!(s.passed, 1);
    }

    #[test]
    fn many_failures_are_capped_but_counted() {
        let mut xml = String::from("<testsuites><testsuite>");
        for i in 0..200 {
            xml.push_str(&format!(
                "<testcase name=\"t{i}\"><failure message=\"x\"/></testcase>"
            ));
        }
        xml.push_str("</testsuite></testsuites>");
        let s = parse(xml.as_bytes()).unwrap();
        assert_eq!(s.failed, 200);
        assert_eq!(s.failures.len(), crate::qa::MAX_FAILURES);
    }

    #[test]
    fn rejects_non_junit_and_broken_xml() {
        assert!(parse(b"<coverage/>").is_err());
        let err = parse(b"<testsuite>\n<testcase name=\"a\">\n</testsuite>").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn collect_globs_merges_and_skips_stale() {
        let repo = tempfile::tempdir().unwrap();
        let reports = tempfile::tempdir().unwrap();
        let since = SystemTime::now();
        let one = "<testsuite><testcase name=\"a\"/><testcase name=\"f\"><failure message=\"no\"/></testcase></testsuite>";
        fs::create_dir_all(repo.path().join("target/nextest/ci")).unwrap();
        fs::write(repo.path().join("target/nextest/ci/junit.xml"), one).unwrap();
        fs::write(
            reports.path().join("pytest.xml"),
            include_bytes!("fixtures/pytest.xml"),
        )
        .unwrap();
        fs::write(reports.path().join("coverage.xml"), "<coverage/>").unwrap();
        let stale = repo.path().join("old.xml");
        fs::write(&stale, one).unwrap();
        let f = fs::File::options().write(true).open(&stale).unwrap();
        f.set_modified(since - Duration::from_secs(3600)).unwrap();

        let patterns = vec![
            "target/nextest/*/junit.xml".to_string(),
            "$FULCRUM_REPORT_DIR/*.xml".to_string(),
            "*.xml".to_string(),
            "missing/junit.xml".to_string(),
        ];
        let s = collect(repo.path(), reports.path(), &patterns, since).unwrap();
        assert_eq!((s.passed, s.failed, s.skipped), (3, 4, 1));
        assert_eq!(s.failures.len(), 4);

        let none = collect(repo.path(), reports.path(), &["old.xml".to_string()], since);
        assert_eq!(none, None);
        let recursive = collect(
            repo.path(),
            reports.path(),
            &["**/junit.xml".to_string()],
            since,
        );
        assert_eq!(recursive.map(|s| s.failed), Some(1));
    }
}
