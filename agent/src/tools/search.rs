//! `search_files`: content search across the workspace, the way ripgrep does it.
//!
//! Files are walked with the `ignore` crate, so `.gitignore`, `.ignore` and git's exclude files
//! are respected and hidden files (and `.git`) are skipped; lines are matched with the `grep`
//! family (`grep-regex`, `grep-searcher`), which skips binary files. Everything is bounded: the
//! number of matches, the length of each line shown, the size of the files searched, and the
//! time spent.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use globset::GlobBuilder;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks::UTF8};
use ignore::WalkBuilder;

use crate::{
    files::FileError,
    paths::{Intent, resolve},
};

/// The most matches one search returns.
pub const MAX_RESULTS: usize = 1000;
/// Matches returned when the caller does not say.
pub const DEFAULT_RESULTS: usize = 100;
/// Longest line shown; longer ones are cut with `…`.
const MAX_LINE_CHARS: usize = 300;
/// Files larger than this are not searched.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Longest pattern.
const MAX_PATTERN_BYTES: usize = 1024;
/// A search stops after this long and says so.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The text, or a regular expression when `regex` is set.
    pub pattern: String,
    /// Treat `pattern` as a regular expression (Rust `regex` syntax).
    pub regex: bool,
    /// Match case exactly; otherwise case is ignored.
    pub case_sensitive: bool,
    /// Only files whose path matches this glob (e.g. `*.rs`, `src/**`).
    pub include: Option<String>,
    /// The most matches to return (at most [`MAX_RESULTS`]).
    pub max_results: Option<usize>,
}

/// Searches the files under `requested` (a directory or a file inside the root) and returns one
/// `path:line: text` per matching line, paths relative to the root.
pub fn search_files(root: &Path, requested: &str, query: &Query) -> Result<String, FileError> {
    if query.pattern.is_empty() || query.pattern.len() > MAX_PATTERN_BYTES {
        return Err(FileError::BadRequest(format!(
            "the pattern must be 1 to {MAX_PATTERN_BYTES} bytes"
        )));
    }
    let start = resolve(root, requested, Intent::Read)?;
    let matcher = RegexMatcherBuilder::new()
        .fixed_strings(!query.regex)
        .case_insensitive(!query.case_sensitive)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build(&query.pattern)
        .map_err(|e| FileError::BadRequest(format!("invalid pattern: {e}")))?;
    let limit = query
        .max_results
        .unwrap_or(DEFAULT_RESULTS)
        .clamp(1, MAX_RESULTS);
    let mut walk = WalkBuilder::new(&start);
    // Follow the repository's ignore files even where the root itself is not a git repository.
    walk.require_git(false).follow_links(false);
    // `include` narrows the search; it never brings back what the ignore rules leave out (an
    // override glob would), so it is matched after the walk: against the name, or against the
    // path from the root when it has a `/`.
    let include = match &query.include {
        Some(glob) if glob.len() > MAX_PATTERN_BYTES => {
            return Err(FileError::BadRequest("the include glob is too long".into()));
        }
        Some(glob) => Some((
            GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|e| FileError::BadRequest(format!("invalid include glob: {e}")))?
                .compile_matcher(),
            glob.contains('/'),
        )),
        None => None,
    };
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    let began = Instant::now();
    let mut out = String::new();
    let mut found = 0usize;
    let mut stopped: Option<String> = None;
    for entry in walk.build() {
        if found >= limit {
            stopped = Some(format!("showing the first {limit} matches"));
            break;
        }
        if began.elapsed() > TIME_LIMIT {
            stopped = Some(format!(
                "the search stopped after {} s; narrow it with path or include",
                TIME_LIMIT.as_secs()
            ));
            break;
        }
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES) {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if let Some((glob, by_path)) = &include {
            let subject = if *by_path {
                relative
            } else {
                std::path::Path::new(entry.file_name())
            };
            if !glob.is_match(subject) {
                continue;
            }
        }
        let shown = relative.display().to_string();
        let _ = searcher.search_path(
            &matcher,
            entry.path(),
            UTF8(|line_number, line| {
                let line = line.trim_end_matches(['\n', '\r']);
                let text: String = if line.chars().count() > MAX_LINE_CHARS {
                    line.chars().take(MAX_LINE_CHARS).chain(['…']).collect()
                } else {
                    line.to_owned()
                };
                out.push_str(&format!("{shown}:{line_number}: {text}\n"));
                found += 1;
                Ok(found < limit)
            }),
        );
    }
    if found == 0 {
        return Ok(format!("no matches for {:?}\n", query.pattern));
    }
    if let Some(why) = stopped {
        out.push_str(&format!("[… cut: {why}]\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join(".gitignore"), "ignored/\n").unwrap();
        std::fs::create_dir_all(root.join("ignored")).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("ignored/hit.txt"), "needle\n").unwrap();
        std::fs::write(root.join("src/lib.rs"), "fn main() {}\n// Needle here\n").unwrap();
        std::fs::write(root.join("notes.md"), "a needle\nanother needle\n").unwrap();
        std::fs::write(root.join("blob.bin"), b"needle\0\0\0").unwrap();
        (dir, root)
    }

    fn query(pattern: &str) -> Query {
        Query {
            pattern: pattern.into(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_text_respecting_gitignore_and_skipping_binaries() {
        let (_d, root) = tree();
        let out = search_files(&root, ".", &query("needle")).unwrap();
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "notes.md:1: a needle",
                "notes.md:2: another needle",
                "src/lib.rs:2: // Needle here"
            ]
        );
        let exact = Query {
            case_sensitive: true,
            include: Some("*.rs".into()),
            ..query("needle")
        };
        assert!(
            search_files(&root, ".", &exact)
                .unwrap()
                .starts_with("no matches")
        );
        // An include glob does not bring ignored or hidden files back.
        let hidden = Query {
            include: Some("*.txt".into()),
            ..query("needle")
        };
        assert!(
            search_files(&root, ".", &hidden)
                .unwrap()
                .starts_with("no matches")
        );
        let by_path = Query {
            include: Some("src/*.rs".into()),
            ..query("needle")
        };
        assert_eq!(
            search_files(&root, ".", &by_path).unwrap(),
            "src/lib.rs:2: // Needle here\n"
        );
        let regex = Query {
            regex: true,
            ..query(r"fn \w+\(")
        };
        assert_eq!(
            search_files(&root, "src", &regex).unwrap(),
            "src/lib.rs:1: fn main() {}\n"
        );
    }

    #[test]
    fn results_are_capped_and_bad_queries_refused() {
        let (_d, root) = tree();
        let one = Query {
            max_results: Some(1),
            ..query("needle")
        };
        let out = search_files(&root, ".", &one).unwrap();
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("[… cut: showing the first 1 matches]"));
        for bad in [
            query(""),
            Query {
                regex: true,
                ..query("(")
            },
        ] {
            assert!(matches!(
                search_files(&root, ".", &bad),
                Err(FileError::BadRequest(_))
            ));
        }
        assert!(search_files(&root, "/etc", &query("root")).is_err());
    }
}
