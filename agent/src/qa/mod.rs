//! Quality-assurance runs for a repository: which test/lint steps to run
//! (from `fulcrum.toml` or detected from the project layout) and how to turn
//! their results (JUnit XML reports or plain console output) into a
//! [`TestSummary`].

pub mod config;
pub mod detect;
pub mod junit;
pub mod output;

pub use config::{COLOR_ENV, OutputFormat, QaError, Step, load};
pub use detect::{Plan, PlanSource, plan};

pub use fulcrum_protocol::{TestFailure, TestSummary};

/// At most this many failures are kept in a [`TestSummary`] (counts still count all).
pub const MAX_FAILURES: usize = fulcrum_protocol::tasks::MAX_LISTED_FAILURES;
/// Longest failure name kept, in bytes (longer ones are truncated with "…").
pub const MAX_NAME_BYTES: usize = 512;
/// Longest failure message kept, in bytes (longer ones are truncated with "…").
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Truncates `s` to at most `max` bytes on a char boundary, ending it with "…"
/// when anything was cut.
pub fn truncate_with_ellipsis(s: &mut String, max: usize) {
    const ELLIPSIS: &str = "…";
    if s.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub(ELLIPSIS.len());
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(ELLIPSIS);
}

/// Appends a failure to `summary.failures` unless [`MAX_FAILURES`] are already
/// kept, truncating its name and message to the limits. Does not touch counts.
pub fn push_failure(
    summary: &mut TestSummary,
    name: impl Into<String>,
    message: impl Into<String>,
) {
    if summary.failures.len() >= MAX_FAILURES {
        return;
    }
    let mut name = name.into();
    let mut message = message.into();
    truncate_with_ellipsis(&mut name, MAX_NAME_BYTES);
    truncate_with_ellipsis(&mut message, MAX_MESSAGE_BYTES);
    summary.failures.push(TestFailure { name, message });
}

/// Adds `other` into `into`: counts are summed (saturating) and failures are
/// concatenated up to [`MAX_FAILURES`].
pub fn merge(into: &mut TestSummary, other: TestSummary) {
    into.passed = into.passed.saturating_add(other.passed);
    into.failed = into.failed.saturating_add(other.failed);
    into.skipped = into.skipped.saturating_add(other.skipped);
    for f in other.failures {
        push_failure(into, f.name, f.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        let mut s = "é".repeat(10); // 20 bytes
        truncate_with_ellipsis(&mut s, 8);
        assert!(s.len() <= 8, "{s}");
        assert_eq!(s, "éé…");
        let mut short = "abc".to_string();
        truncate_with_ellipsis(&mut short, 3);
        assert_eq!(short, "abc");
    }

    #[test]
    fn failure_cap_and_limits() {
        let mut sum = TestSummary::default();
        for i in 0..60 {
            push_failure(&mut sum, format!("t{i}"), "m");
        }
        assert_eq!(sum.failures.len(), MAX_FAILURES);
        let mut sum = TestSummary::default();
        push_failure(&mut sum, "n".repeat(1000), "m".repeat(10_000));
        assert!(sum.failures[0].name.len() <= MAX_NAME_BYTES);
        assert!(sum.failures[0].name.ends_with('…'));
        assert!(sum.failures[0].message.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn merge_sums_and_caps() {
        let mut a = TestSummary {
            passed: 1,
            failed: 40,
            skipped: 2,
            failures: vec![],
        };
        for i in 0..40 {
            push_failure(&mut a, format!("a{i}"), "");
        }
        let mut b = TestSummary {
            passed: 3,
            failed: 20,
            skipped: 0,
            failures: vec![],
        };
        for i in 0..20 {
            push_failure(&mut b, format!("b{i}"), "");
        }
        merge(&mut a, b);
        assert_eq!((a.passed, a.failed, a.skipped), (4, 60, 2));
        assert_eq!(a.failures.len(), MAX_FAILURES);
        assert_eq!(a.failures[40].name, "b0");
    }
}
