//! Reading plain console output of test runners into a [`TestSummary`] when a
//! step produced no JUnit report: `cargo test` (libtest), `cargo nextest`,
//! `pytest` (best with `-rA`) and `go test -v`.
//!
//! Output is read once, line by line (ANSI escapes stripped, `\r` redraws
//! resolved), so the cost is linear in its size; per-test text kept for
//! messages is capped.

use std::collections::{HashMap, HashSet};

use super::config::OutputFormat;
use super::{MAX_FAILURES, TestSummary, push_failure};

/// Most lines of one test's output kept to build its failure message.
const MAX_BLOCK_LINES: usize = 200;
/// Most lines in a failure message built from output.
const MAX_MESSAGE_LINES: usize = 40;
/// Most messages remembered by name before their failure is reported.
const MAX_PENDING_MESSAGES: usize = 4 * MAX_FAILURES;

/// Parses a test run's combined stdout/stderr. `Auto` tries every parser and
/// keeps the one that recognised the most tests; `None` parses nothing.
/// Returns `None` when nothing test-like was seen.
pub fn parse(format: OutputFormat, output: &[u8]) -> Option<TestSummary> {
    let (mut cargo, mut pytest, mut go) = match format {
        OutputFormat::None => return None,
        OutputFormat::Auto => (
            Some(CargoParser::default()),
            Some(PytestParser::default()),
            Some(GoParser::default()),
        ),
        OutputFormat::Cargo => (Some(CargoParser::default()), None, None),
        OutputFormat::Pytest => (None, Some(PytestParser::default()), None),
        OutputFormat::Go => (None, None, Some(GoParser::default())),
    };
    for_each_line(output, |line| {
        if let Some(p) = cargo.as_mut() {
            p.line(line);
        }
        if let Some(p) = pytest.as_mut() {
            p.line(line);
        }
        if let Some(p) = go.as_mut() {
            p.line(line);
        }
    });
    let results = [
        cargo.and_then(CargoParser::finish),
        pytest.and_then(PytestParser::finish),
        go.and_then(GoParser::finish),
    ];
    let mut best: Option<TestSummary> = None;
    for s in results.into_iter().flatten() {
        let total =
            |s: &TestSummary| u64::from(s.passed) + u64::from(s.failed) + u64::from(s.skipped);
        if best.as_ref().is_none_or(|b| total(&s) > total(b)) {
            best = Some(s);
        }
    }
    best
}

/// Calls `f` for each line with ANSI escapes removed. For a line redrawn
/// with `\r`, only the last non-empty part is kept.
fn for_each_line(output: &[u8], mut f: impl FnMut(&str)) {
    let mut buf = Vec::new();
    for raw in output.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        buf.clear();
        for part in raw.split(|&b| b == b'\r') {
            let start = buf.len();
            strip_ansi(part, &mut buf);
            if buf[start..].iter().all(u8::is_ascii_whitespace) {
                buf.truncate(start);
            } else {
                buf.drain(..start);
            }
        }
        f(&String::from_utf8_lossy(&buf));
    }
}

/// Appends `input` to `out` without ANSI escape sequences (CSI, OSC and
/// two-byte escapes).
fn strip_ansi(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != 0x1b {
            out.push(b);
            i += 1;
            continue;
        }
        i += 1;
        match input.get(i) {
            Some(b'[') => {
                i += 1;
                while i < input.len() && !(0x40..=0x7e).contains(&input[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 1;
                while i < input.len() {
                    if input[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if input[i] == 0x1b && input.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 1,
            None => {}
        }
    }
}

/// Extracts a Rust panic's message from output lines: the lines after
/// `thread '…' panicked at FILE:LINE:COL:` up to the `note:`/backtrace
/// lines, followed by `at FILE:LINE:COL`. Also understands the pre-1.73
/// `panicked at 'msg', FILE:LINE:COL` form. `None` without a panic line.
pub(crate) fn rust_panic_message<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    const MARK: &str = "panicked at ";
    let mut lines = lines.into_iter();
    let after = lines
        .by_ref()
        .find_map(|l| l.find(MARK).map(|i| l[i + MARK.len()..].trim_end()))?;
    if let Some(quoted) = after.strip_prefix('\'')
        && let Some(i) = quoted.rfind("', ")
    {
        return Some(format!("{}\nat {}", &quoted[..i], &quoted[i + 3..]));
    }
    let location = after.strip_suffix(':').unwrap_or(after);
    let mut msg: Vec<&str> = Vec::new();
    for l in lines {
        let t = l.trim_start();
        if t.starts_with("note: ") || t.starts_with("stack backtrace:") || t.starts_with("thread '")
        {
            break;
        }
        if msg.len() >= MAX_MESSAGE_LINES {
            break;
        }
        msg.push(l.trim_end());
    }
    while msg.last().is_some_and(|l| l.is_empty()) {
        msg.pop();
    }
    Some(if msg.is_empty() {
        format!("panicked at {location}")
    } else {
        format!("{}\nat {location}", msg.join("\n"))
    })
}

/// A failure message from arbitrary output lines: the panic message if
/// there is one, else the first non-blank lines.
fn block_message(lines: &[String]) -> String {
    if let Some(m) = rust_panic_message(lines.iter().map(String::as_str)) {
        return m;
    }
    let first: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_end())
        .skip_while(|l| l.is_empty())
        .take(MAX_MESSAGE_LINES)
        .collect();
    first.join("\n").trim_end().to_string()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
        self.skipped = self.skipped.saturating_add(other.skipped);
    }
    fn count(&mut self, status: Status, n: u32) {
        let c = match status {
            Status::Passed => &mut self.passed,
            Status::Failed => &mut self.failed,
            Status::Skipped => &mut self.skipped,
        };
        *c = c.saturating_add(n);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Passed,
    Failed,
    Skipped,
}

/// The first [`MAX_FAILURES`] failures, with messages that may arrive later.
#[derive(Default)]
struct Failures {
    list: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Failures {
    fn add(&mut self, name: &str, message: String) {
        if self.list.len() < MAX_FAILURES {
            self.index.insert(name.to_string(), self.list.len());
            self.list.push((name.to_string(), message));
        }
    }
    fn set_message(&mut self, name: &str, message: String) {
        if let Some(&i) = self.index.get(name)
            && self.list[i].1.is_empty()
        {
            self.list[i].1 = message;
        }
    }
    fn into_summary(self, counts: Counts) -> TestSummary {
        let mut s = TestSummary {
            passed: counts.passed,
            failed: counts.failed,
            skipped: counts.skipped,
            failures: Vec::new(),
        };
        for (name, message) in self.list {
            push_failure(&mut s, name, message);
        }
        s
    }
}

/// Parses "N word, N word" lists (the words may contain spaces; text in
/// parentheses is ignored). Returns `None` if any part is not of that shape.
fn parse_count_list(s: &str) -> Option<Vec<(u32, String)>> {
    let mut cleaned = String::with_capacity(s.len());
    let mut depth = 0usize;
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => cleaned.push(ch),
            _ => {}
        }
    }
    cleaned
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (n, word) = part.split_once(' ')?;
            Some((n.parse().ok()?, word.trim().to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------- cargo ---

/// `cargo test` (libtest) and `cargo nextest` output.
#[derive(Default)]
struct CargoParser {
    seen: bool,
    /// Counts of the current test binary (replaced by its `test result:`).
    seg: Counts,
    seg_open: bool,
    seg_label: String,
    total: Counts,
    failures: Failures,
    /// `---- name stdout ----` block being read.
    block: Option<(String, Vec<String>)>,
    nextest: NextestParser,
}

impl CargoParser {
    fn line(&mut self, line: &str) {
        self.nextest.line(line);
        if let Some((_, lines)) = self.block.as_mut() {
            if line == "failures:" || line.starts_with("test result: ") || line.starts_with("---- ")
            {
                self.end_block();
            } else {
                if lines.len() < MAX_BLOCK_LINES {
                    lines.push(line.to_string());
                }
                return;
            }
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            self.close_segment();
            self.seg_label = rest.split(" (").next().unwrap_or(rest).to_string();
            self.failures.index.clear();
        } else if let Some(rest) = trimmed.strip_prefix("Doc-tests ") {
            self.close_segment();
            self.seg_label = format!("doc-tests {rest}");
            self.failures.index.clear();
        } else if (line.starts_with("running ") && line.ends_with(" tests"))
            || line == "running 1 test"
        {
            self.close_segment();
            self.seg_open = true;
            self.seen = true;
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            if let Some(c) = parse_libtest_result(rest) {
                self.seen = true;
                self.total.add(c);
                self.seg = Counts::default();
                self.seg_open = false;
            }
        } else if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, result)) = rest.split_once(" ... ")
        {
            let status = if result.starts_with("ok") {
                Status::Passed
            } else if result.starts_with("FAILED") {
                Status::Failed
            } else if result.starts_with("ignored") {
                Status::Skipped
            } else {
                return;
            };
            self.seen = true;
            self.seg.count(status, 1);
            if status == Status::Failed {
                self.failures.add(name, String::new());
            }
        } else if let Some(name) = line.strip_prefix("---- ").and_then(|r| {
            r.strip_suffix(" stdout ----")
                .or_else(|| r.strip_suffix(" stderr ----"))
        }) {
            self.block = Some((name.to_string(), Vec::new()));
        } else if line.starts_with("error: test failed, to rerun pass") && self.seg_open {
            // The test binary died (e.g. a signal) before printing its result.
            self.seg.failed = self.seg.failed.saturating_add(1);
            let label = if self.seg_label.is_empty() {
                "test binary"
            } else {
                &self.seg_label
            };
            let label = label.to_string();
            self.failures.add(
                &label,
                "test binary exited without printing a result".to_string(),
            );
            self.close_segment();
        }
    }

    fn end_block(&mut self) {
        if let Some((name, lines)) = self.block.take() {
            self.failures.set_message(&name, block_message(&lines));
        }
    }

    fn close_segment(&mut self) {
        if self.seg_open {
            self.total.add(self.seg);
        }
        self.seg = Counts::default();
        self.seg_open = false;
    }

    fn finish(mut self) -> Option<TestSummary> {
        if let Some(s) = std::mem::take(&mut self.nextest).finish() {
            return Some(s);
        }
        self.end_block();
        self.close_segment();
        self.seen.then(|| self.failures.into_summary(self.total))
    }
}

/// `ok. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s`
fn parse_libtest_result(rest: &str) -> Option<Counts> {
    let (_, list) = rest.split_once(". ")?;
    let mut c = Counts::default();
    let mut any = false;
    for part in list.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        match word {
            "passed" => c.passed = n,
            "failed" => c.failed = n,
            "ignored" => c.skipped = n,
            _ => continue,
        }
        any = true;
    }
    any.then_some(c)
}

/// `cargo nextest run` output: `PASS [ 0.01s] (1/5) crate test::name`.
#[derive(Default)]
struct NextestParser {
    seen: bool,
    /// Final status per test (retries: the last attempt wins).
    results: Vec<(String, Status)>,
    index: HashMap<String, usize>,
    summary: Option<Counts>,
    after_summary: bool,
    /// Output block of the last failing test being read.
    block: Option<(String, Vec<String>)>,
    messages: HashMap<String, String>,
}

impl NextestParser {
    fn line(&mut self, line: &str) {
        if self.after_summary {
            return;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Summary [") {
            self.end_block();
            self.after_summary = true;
            self.summary = parse_nextest_summary(rest);
            self.seen |= self.summary.is_some();
            return;
        }
        if let Some((status, name)) = parse_nextest_status(trimmed) {
            self.end_block();
            self.seen = true;
            match self.index.get(&name) {
                Some(&i) => self.results[i].1 = status,
                None => {
                    self.index.insert(name.clone(), self.results.len());
                    self.results.push((name.clone(), status));
                }
            }
            if status == Status::Failed {
                self.block = Some((name, Vec::new()));
            }
            return;
        }
        if trimmed.starts_with('─') || !line.starts_with(' ') && !line.is_empty() {
            self.end_block();
        } else if let Some((_, lines)) = self.block.as_mut()
            && lines.len() < MAX_BLOCK_LINES
        {
            let l = line.strip_prefix("    ").unwrap_or(line);
            lines.push(l.to_string());
        }
    }

    fn end_block(&mut self) {
        if let Some((name, lines)) = self.block.take()
            && self.messages.len() < MAX_PENDING_MESSAGES
        {
            self.messages.insert(name, block_message(&lines));
        }
    }

    fn finish(mut self) -> Option<TestSummary> {
        if !self.seen {
            return None;
        }
        self.end_block();
        let mut counts = Counts::default();
        let mut failures = Failures::default();
        for (name, status) in &self.results {
            counts.count(*status, 1);
            if *status == Status::Failed {
                let message = self.messages.remove(name).unwrap_or_default();
                failures.add(name, message);
            }
        }
        Some(failures.into_summary(self.summary.unwrap_or(counts)))
    }
}

/// `FAIL [   0.010s] (1/5) demo tests::it_fails` → (Failed, `demo::tests::it_fails`).
/// Also `TRY 2 PASS [..] ..`, `SIGSEGV [..] ..`, `FLAKY 2/3 [..] ..`.
fn parse_nextest_status(line: &str) -> Option<(Status, String)> {
    let mut rest = line;
    if let Some(r) = rest.strip_prefix("TRY ") {
        rest = r
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
    }
    let (word, after) = rest.split_once(' ')?;
    let status = match word {
        "PASS" | "LEAK" | "FLAKY" => Status::Passed,
        "SKIP" => Status::Skipped,
        "FAIL" | "LEAK-FAIL" | "TIMEOUT" | "ABORT" => Status::Failed,
        w if w.starts_with("SIG")
            && w.len() > 3
            && w[3..].bytes().all(|b| b.is_ascii_uppercase()) =>
        {
            Status::Failed
        }
        _ => return None,
    };
    let open = after.find('[')?;
    if !after[..open]
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'/' || b == b' ')
    {
        return None;
    }
    let close = open + after[open..].find(']')?;
    let mut rest = after[close + 1..].trim_start();
    if rest.starts_with('(')
        && let Some(i) = rest.find(") ")
    {
        rest = rest[i + 2..].trim_start();
    }
    let (binary, test) = rest.split_once(' ')?;
    let test = test.trim();
    if binary.is_empty() || test.is_empty() {
        return None;
    }
    Some((status, format!("{binary}::{test}")))
}

/// `   0.024s] 4 tests run: 2 passed, 2 failed, 1 skipped`
fn parse_nextest_summary(rest: &str) -> Option<Counts> {
    let (_, list) = rest.split_once(':')?;
    let mut c = Counts::default();
    for (n, word) in parse_count_list(list)? {
        if word == "passed" {
            c.passed = c.passed.saturating_add(n);
        } else if word.contains("failed") || word == "timed out" {
            c.failed = c.failed.saturating_add(n);
        } else if word == "skipped" {
            c.skipped = c.skipped.saturating_add(n);
        }
    }
    Some(c)
}

// --------------------------------------------------------------- pytest ---

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum PySection {
    #[default]
    Other,
    Failures,
    Errors,
}

/// pytest output: `-rA` short summary lines, `-v` per-test lines, the
/// FAILURES/ERRORS sections (for `E` lines) and the final counts line.
#[derive(Default)]
struct PytestParser {
    summary: Option<Counts>,
    short_counts: Counts,
    short_seen: bool,
    short_failures: Failures,
    verbose_counts: Counts,
    verbose_seen: bool,
    verbose_failures: Failures,
    section: PySection,
    /// Header key and `E` lines of the failure being read.
    block: Option<(String, Vec<String>)>,
    e_lines: HashMap<String, String>,
}

impl PytestParser {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim();
        if trimmed.len() >= 2 && trimmed.starts_with('=') && trimmed.ends_with('=') {
            self.end_block();
            let title = trimmed.trim_matches(|c| c == '=' || c == ' ');
            self.section = match title {
                "FAILURES" => PySection::Failures,
                "ERRORS" => PySection::Errors,
                _ => PySection::Other,
            };
            if let Some(c) = parse_pytest_counts(title) {
                self.summary = Some(c);
            }
            return;
        }
        if self.section != PySection::Other {
            if trimmed.len() >= 3 && trimmed.starts_with('_') && trimmed.ends_with('_') {
                self.end_block();
                let title = trimmed.trim_matches(|c| c == '_' || c == ' ');
                let key = [
                    "ERROR at setup of ",
                    "ERROR at teardown of ",
                    "ERROR collecting ",
                ]
                .iter()
                .find_map(|p| title.strip_prefix(p))
                .unwrap_or(title);
                self.block = Some((key.to_string(), Vec::new()));
                return;
            }
            if let Some((_, lines)) = self.block.as_mut()
                && (line == "E" || line.starts_with("E "))
            {
                if lines.len() < MAX_MESSAGE_LINES {
                    let body = &line[1..];
                    let strip = body.len() - body.trim_start_matches(' ').len();
                    lines.push(body[strip.min(7)..].trim_end().to_string());
                }
                return;
            }
        }
        if let Some(c) = parse_pytest_counts(trimmed) {
            self.summary = Some(c);
            return;
        }
        if let Some((word, rest)) = line.split_once(' ') {
            let (name, message) = match rest.split_once(" - ") {
                Some((n, m)) => (n.trim(), m.trim()),
                None => (rest.trim(), ""),
            };
            let nodeid_like = name.contains("::") || name.contains(".py");
            let status = match word {
                "PASSED" | "XPASS" if nodeid_like => Some((Status::Passed, 1)),
                "FAILED" | "ERROR" if nodeid_like => Some((Status::Failed, 1)),
                "XFAIL" if nodeid_like => Some((Status::Skipped, 1)),
                "SKIPPED" if rest.starts_with('[') => {
                    let n = rest[1..].split(']').next().and_then(|n| n.parse().ok());
                    n.map(|n| (Status::Skipped, n))
                }
                _ => None,
            };
            if let Some((status, n)) = status {
                self.short_seen = true;
                self.short_counts.count(status, n);
                if status == Status::Failed {
                    self.short_failures.add(name, message.to_string());
                }
                return;
            }
        }
        let mut tokens = trimmed.split_whitespace();
        if let (Some(name), Some(word)) = (tokens.next(), tokens.next())
            && name.contains("::")
        {
            let status = match word {
                "PASSED" | "XPASS" => Status::Passed,
                "FAILED" | "ERROR" => Status::Failed,
                "SKIPPED" | "XFAIL" => Status::Skipped,
                _ => return,
            };
            self.verbose_seen = true;
            self.verbose_counts.count(status, 1);
            if status == Status::Failed && !self.verbose_failures.index.contains_key(name) {
                self.verbose_failures.add(name, String::new());
            }
        }
    }

    fn end_block(&mut self) {
        if let Some((key, lines)) = self.block.take()
            && !lines.is_empty()
            && self.e_lines.len() < MAX_PENDING_MESSAGES
        {
            self.e_lines.entry(key).or_insert_with(|| lines.join("\n"));
        }
    }

    fn finish(mut self) -> Option<TestSummary> {
        self.end_block();
        let (counts, mut failures) = if self.short_seen {
            (self.short_counts, self.short_failures)
        } else if self.verbose_seen {
            (self.verbose_counts, self.verbose_failures)
        } else if self.summary.is_some() {
            (Counts::default(), Failures::default())
        } else {
            return None;
        };
        for (name, message) in &mut failures.list {
            let key = match name.split_once("::") {
                Some((_, rest)) => rest.replace("::", "."),
                None => name.clone(),
            };
            if let Some(e) = self.e_lines.get(&key) {
                *message = e.clone();
            }
        }
        Some(failures.into_summary(self.summary.unwrap_or(counts)))
    }
}

/// `2 failed, 2 passed, 1 skipped, 1 error in 0.05s` (also `no tests ran in 0.01s`).
fn parse_pytest_counts(line: &str) -> Option<Counts> {
    let (list, time) = line.rsplit_once(" in ")?;
    let time = time.split(' ').next()?;
    time.strip_suffix('s')?.parse::<f64>().ok()?;
    if list == "no tests ran" {
        return Some(Counts::default());
    }
    let mut c = Counts::default();
    let mut known = false;
    for (n, word) in parse_count_list(list)? {
        let status = match word.as_str() {
            "passed" | "xpassed" => Status::Passed,
            "failed" | "error" | "errors" => Status::Failed,
            "skipped" | "xfailed" => Status::Skipped,
            w if w.contains(' ') => return None,
            _ => continue,
        };
        known = true;
        c.count(status, n);
    }
    known.then_some(c)
}

// ------------------------------------------------------------------- go ---

/// `go test -v` output. Only leaf tests count (a parent whose subtests ran
/// is not counted again); results are grouped per package.
#[derive(Default)]
struct GoParser {
    seen: bool,
    /// Results of the current package, in order.
    results: Vec<(String, Status)>,
    /// Output lines per test of the current package.
    output: HashMap<String, Vec<String>>,
    current: Option<String>,
    counts: Counts,
    failures: Failures,
}

impl GoParser {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim();
        for prefix in ["=== RUN ", "=== CONT ", "=== NAME "] {
            if let Some(name) = trimmed.strip_prefix(prefix) {
                let name = name.trim();
                self.seen = true;
                self.current = Some(name.to_string());
                return;
            }
        }
        for (prefix, status) in [
            ("--- PASS: ", Status::Passed),
            ("--- FAIL: ", Status::Failed),
            ("--- SKIP: ", Status::Skipped),
        ] {
            if let Some(rest) = trimmed.strip_prefix(prefix) {
                let name = rest.split(" (").next().unwrap_or(rest).trim();
                self.seen = true;
                if status != Status::Failed {
                    self.output.remove(name);
                }
                self.results.push((name.to_string(), status));
                self.current = Some(name.to_string());
                return;
            }
        }
        if trimmed.starts_with("=== ") {
            return;
        }
        if let Some(rest) = line
            .strip_prefix("FAIL\t")
            .or_else(|| line.strip_prefix("ok  \t"))
        {
            if let Some(pkg) = rest
                .strip_suffix(" [build failed]")
                .or_else(|| rest.strip_suffix(" [setup failed]"))
            {
                self.seen = true;
                self.counts.failed = self.counts.failed.saturating_add(1);
                self.failures.add(
                    pkg.trim(),
                    rest[pkg.len()..]
                        .trim()
                        .trim_matches(['[', ']'])
                        .to_string(),
                );
            }
            self.flush_package();
            return;
        }
        if line.starts_with("?   \t") {
            self.flush_package();
            return;
        }
        let Some(current) = self.current.as_ref() else {
            return;
        };
        let is_panic = line.starts_with("panic: ");
        if (is_panic || line.starts_with([' ', '\t'])) && !trimmed.is_empty() {
            if self.output.len() >= MAX_PENDING_MESSAGES && !self.output.contains_key(current) {
                return;
            }
            let lines = self.output.entry(current.clone()).or_default();
            if lines.len() < MAX_MESSAGE_LINES {
                lines.push(trimmed.to_string());
            }
            if is_panic && !self.results.iter().rev().take(1).any(|(n, _)| n == current) {
                let name = current.clone();
                self.results.push((name, Status::Failed));
            }
        }
    }

    fn flush_package(&mut self) {
        let mut parents: HashSet<&str> = HashSet::new();
        for (name, _) in &self.results {
            for (i, _) in name.match_indices('/') {
                parents.insert(&name[..i]);
            }
        }
        let mut done: HashSet<&str> = HashSet::new();
        for (name, status) in self.results.iter().rev() {
            if parents.contains(name.as_str()) || !done.insert(name.as_str()) {
                continue;
            }
            self.counts.count(*status, 1);
        }
        for (name, status) in &self.results {
            if *status == Status::Failed
                && !parents.contains(name.as_str())
                && !self.failures.index.contains_key(name)
            {
                let message = self
                    .output
                    .get(name)
                    .map(|l| l.join("\n"))
                    .unwrap_or_default();
                self.failures.add(name, message);
            }
        }
        self.results.clear();
        self.output.clear();
        self.failures.index.clear();
        self.current = None;
    }

    fn finish(mut self) -> Option<TestSummary> {
        self.flush_package();
        self.seen.then(|| self.failures.into_summary(self.counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::TestFailure;

    fn names(s: &TestSummary) -> Vec<&str> {
        s.failures.iter().map(|f| f.name.as_str()).collect()
    }

    fn counts(s: &TestSummary) -> (u32, u32, u32) {
        (s.passed, s.failed, s.skipped)
    }

    const CARGO: &[u8] = include_bytes!("fixtures/cargo_test.txt");
    const CARGO_BACKTRACE: &[u8] = include_bytes!("fixtures/cargo_test_backtrace.txt");
    const CARGO_COLOR: &[u8] = include_bytes!("fixtures/cargo_test_color.txt");
    const NEXTEST: &[u8] = include_bytes!("fixtures/nextest.txt");
    const PYTEST_RA: &[u8] = include_bytes!("fixtures/pytest_rA.txt");
    const PYTEST_V: &[u8] = include_bytes!("fixtures/pytest_v.txt");
    const GO: &[u8] = include_bytes!("fixtures/go_test.txt");

    fn cargo_expected() -> Vec<TestFailure> {
        vec![
            TestFailure {
                name: "tests::it_fails".into(),
                message: "assertion `left == right` failed: math is broken\n  left: 4\n right: 5\nat src/lib.rs:11:21"
                    .into(),
            },
            TestFailure { name: "integ_panics".into(), message: "boom\nsecond line\nat tests/integ.rs:5:21".into() },
        ]
    }

    #[test]
    fn real_cargo_test_output() {
        for (fixture, format) in [
            (CARGO, OutputFormat::Cargo),
            (CARGO, OutputFormat::Auto),
            (CARGO_BACKTRACE, OutputFormat::Cargo),
            (CARGO_COLOR, OutputFormat::Cargo),
            (CARGO_COLOR, OutputFormat::Auto),
        ] {
            let s = parse(format, fixture).unwrap();
            assert_eq!(counts(&s), (2, 2, 1), "{format:?}");
            assert_eq!(s.failures, cargo_expected(), "{format:?}");
        }
    }

    #[test]
    fn real_nextest_output() {
        for format in [OutputFormat::Cargo, OutputFormat::Auto] {
            let s = parse(format, NEXTEST).unwrap();
            assert_eq!(counts(&s), (2, 2, 1));
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
    }

    #[test]
    fn real_pytest_output() {
        let expected = vec![
            TestFailure {
                name: "tests/test_demo.py::test_error".into(),
                message: "RuntimeError: fixture exploded".into(),
            },
            TestFailure {
                name: "tests/test_demo.py::test_fails".into(),
                message: "AssertionError: math is broken\nassert 4 == 5\n +  where 4 = add(2, 2)"
                    .into(),
            },
            TestFailure {
                name: "tests/test_demo.py::TestGroup::test_raises".into(),
                message: "ValueError: bad value\nsecond line".into(),
            },
        ];
        for format in [OutputFormat::Pytest, OutputFormat::Auto] {
            let s = parse(format, PYTEST_RA).unwrap();
            assert_eq!(counts(&s), (2, 3, 1));
            assert_eq!(s.failures, expected);
        }
        let s = parse(OutputFormat::Pytest, PYTEST_V).unwrap();
        assert_eq!(counts(&s), (2, 3, 1));
        assert_eq!(
            names(&s),
            [
                "tests/test_demo.py::test_fails",
                "tests/test_demo.py::TestGroup::test_raises",
                "tests/test_demo.py::test_error"
            ]
        );
        assert_eq!(s.failures[0].message, expected[1].message);
    }

    #[test]
    fn real_go_output() {
        for format in [OutputFormat::Go, OutputFormat::Auto] {
            let s = parse(format, GO).unwrap();
            assert_eq!(counts(&s), (2, 2, 1));
            assert_eq!(
                s.failures,
                [
                    TestFailure {
                        name: "TestFails".into(),
                        message: "demo_test.go:14: about to check\ndemo_test.go:16: add(2, 2) = 4, want 5".into()
                    },
                    TestFailure { name: "TestTable/bad".into(), message: "demo_test.go:31: want 3".into() },
                ]
            );
        }
    }

    #[test]
    fn nothing_test_like() {
        assert_eq!(
            parse(
                OutputFormat::Auto,
                b"warning: unused variable\nerror[E0425]: oops\n"
            ),
            None
        );
        assert_eq!(parse(OutputFormat::None, CARGO), None);
        assert_eq!(parse(OutputFormat::Go, CARGO), None);
        assert_eq!(parse(OutputFormat::Pytest, GO), None);
    }

    #[test]
    fn strips_ansi_and_carriage_returns() {
        let mut out = Vec::new();
        strip_ansi(
            b"\x1b[1m\x1b[32mok\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x1b\\",
            &mut out,
        );
        assert_eq!(out, b"ok link");
        let mut lines = Vec::new();
        for_each_line(b"progress 1\rtest a ... ok\r\nlast\r\x1b[K", |l| {
            lines.push(l.to_string());
        });
        assert_eq!(lines, ["test a ... ok", "last"]);
    }

    #[test]
    fn libtest_crash_without_result() {
        let out = b"     Running unittests src/lib.rs (target/debug/deps/x-1)\n\nrunning 2 tests\ntest a ... ok\n\
error: test failed, to rerun pass `--lib`\n\nCaused by:\n  process didn't exit successfully: (signal: 11, SIGSEGV)\n";
        let s = parse(OutputFormat::Cargo, out).unwrap();
        assert_eq!(counts(&s), (1, 1, 0));
        assert_eq!(names(&s), ["unittests src/lib.rs"]);
    }

    #[test]
    fn old_style_panic_and_plain_error() {
        let m = rust_panic_message(["thread 'a' panicked at 'boom', src/lib.rs:3:5"]).unwrap();
        assert_eq!(m, "boom\nat src/lib.rs:3:5");
        let out = b"running 1 test\ntest t ... FAILED\n\nfailures:\n\n---- t stdout ----\nError: Custom { kind: Other }\n\nfailures:\n    t\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        let s = parse(OutputFormat::Cargo, out).unwrap();
        assert_eq!(s.failures[0].message, "Error: Custom { kind: Other }");
    }

    #[test]
    fn nextest_retries_and_signals() {
        let out = b"    Starting 3 tests\n  TRY 1 FAIL [ 0.1s] (1/3) c flaky\n  TRY 2 PASS [ 0.1s] (1/3) c flaky\n SIGSEGV [ 0.1s] (2/3) c crash\n    SKIP [ 0.0s] (3/3) c skip\n";
        let s = parse(OutputFormat::Cargo, out).unwrap();
        assert_eq!(counts(&s), (1, 1, 1));
        assert_eq!(names(&s), ["c::crash"]);
        assert_eq!(
            parse_nextest_summary(
                "   1.0s] 10 tests run: 7 passed (1 slow, 1 flaky), 2 failed, 1 timed out, 3 skipped"
            ),
            Some(Counts {
                passed: 7,
                failed: 3,
                skipped: 3
            })
        );
    }

    #[test]
    fn pytest_summary_variants() {
        assert_eq!(
            parse_pytest_counts(
                "1 failed, 3 passed, 2 skipped, 1 xfailed, 1 xpassed, 2 warnings, 1 error in 1.23s (0:00:01)"
            ),
            Some(Counts {
                passed: 4,
                failed: 2,
                skipped: 3
            })
        );
        assert_eq!(
            parse_pytest_counts("no tests ran in 0.01s"),
            Some(Counts::default())
        );
        assert_eq!(parse_pytest_counts("I was in 3s"), None);
        let s = parse(
            OutputFormat::Pytest,
            b"..s\n=== 2 passed, 1 skipped in 0.01s ===\n",
        )
        .unwrap();
        assert_eq!(counts(&s), (2, 0, 1));
        let s = parse(
            OutputFormat::Pytest,
            b"SKIPPED [3] t.py:4: slow\n3 skipped in 0.1s\n",
        )
        .unwrap();
        assert_eq!(counts(&s), (0, 0, 3));
    }

    #[test]
    fn go_build_failure_and_panic() {
        let out = b"# example.com/x\n./x.go:3:1: syntax error\nFAIL\texample.com/x [build failed]\n=== RUN   TestP\n--- FAIL: TestP (0.00s)\npanic: boom [recovered]\n\tpanic: boom\nFAIL\texample.com/y\t0.01s\n";
        let s = parse(OutputFormat::Go, out).unwrap();
        assert_eq!(counts(&s), (0, 2, 0));
        assert_eq!(names(&s), ["example.com/x", "TestP"]);
        assert_eq!(s.failures[0].message, "build failed");
        assert_eq!(
            s.failures[1].message,
            "panic: boom [recovered]\npanic: boom"
        );
    }

    #[test]
    fn many_failures_capped_and_linear() {
        let mut out = String::from("running 100000 tests\n");
        for i in 0..100_000 {
            out.push_str(&format!("test t{i} ... FAILED\n"));
        }
        let s = parse(OutputFormat::Auto, out.as_bytes()).unwrap();
        assert_eq!(s.failed, 100_000);
        assert_eq!(s.failures.len(), MAX_FAILURES);
        // One huge line without newlines must not blow up either.
        let big = vec![b'x'; 8 * 1024 * 1024];
        assert_eq!(parse(OutputFormat::Auto, &big), None);
    }
}
