//! The git tools: `git_status`, `git_diff`, `git_log`, `git_show`, read with `git2` in process
//! (no `git` child process per call).
//!
//! A repository is named by its path relative to the workspace root (`.` by default), resolved
//! like every other path, and opened without searching upwards, so a call can never reach a
//! repository that encloses the root. Answers are capped like file reads, with a note where cut.

use std::{fmt::Write as _, path::Path};

use git2::{DiffFormat, DiffOptions, Repository, RepositoryOpenFlags, Status, StatusOptions};

use crate::{
    files::FileError,
    paths::{Intent, resolve},
};

/// The most bytes of diff or log one answer holds.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// The most commits `git_log` lists.
pub const MAX_LOG: usize = 200;
/// The most files `git_status` lists.
const MAX_STATUS_ENTRIES: usize = 1000;
/// Longest revision or ref name accepted.
const MAX_REV_BYTES: usize = 256;

/// Which changes `git_diff` shows.
#[derive(Debug, Clone, Default)]
pub struct DiffQuery {
    /// Compare the working tree with this commit, branch or tag instead.
    pub target: Option<String>,
    /// Show staged changes (index against `HEAD`) rather than unstaged ones.
    pub staged: bool,
    /// Lines of context around each change (default 3).
    pub context_lines: Option<u32>,
}

fn git_error(e: git2::Error) -> FileError {
    FileError::BadRequest(format!("git: {}", e.message()))
}

/// Opens the repository at `requested` (relative to `root`) without looking above it.
fn open(root: &Path, requested: &str) -> Result<Repository, FileError> {
    let dir = resolve(root, requested, Intent::Read)?;
    let repo = Repository::open_ext(&dir, RepositoryOpenFlags::NO_SEARCH, &[] as &[&str])
        .map_err(|_| FileError::Kind(format!("{requested} is not a git repository")))?;
    let Some(workdir) = repo.workdir() else {
        return Err(FileError::Kind(format!("{requested} is a bare repository")));
    };
    // A `.git` file, `core.worktree` or a linked worktree's common directory may point out of
    // the root; every directory the repository reads must be inside it.
    for dir in [workdir, repo.path(), repo.commondir()] {
        let inside = std::fs::canonicalize(dir).is_ok_and(|d| d.starts_with(root));
        if !inside {
            return Err(FileError::Path(crate::paths::PathError::Outside(format!(
                "the repository at {requested} (its git data)"
            ))));
        }
    }
    Ok(repo)
}

fn check_rev(rev: &str) -> Result<(), FileError> {
    if rev.is_empty() || rev.len() > MAX_REV_BYTES || rev.contains('\0') {
        return Err(FileError::BadRequest(format!(
            "a revision is 1 to {MAX_REV_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Appends text to `out` until it holds [`MAX_OUTPUT_BYTES`]; false once full.
fn push_capped(out: &mut String, text: &str, full: &mut bool) -> bool {
    if *full {
        return false;
    }
    let room = MAX_OUTPUT_BYTES.saturating_sub(out.len());
    let fits = fulcrum_protocol::tools::prefix_within(text, room);
    out.push_str(fits);
    *full = fits.len() < text.len();
    !*full
}

fn cut_note(out: &mut String, full: bool) {
    if full {
        out.push_str(&format!(
            "\n[… cut: the answer is capped at {MAX_OUTPUT_BYTES} bytes; narrow it down]\n"
        ));
    }
}

/// The branch, its upstream distance, and the changed files, in sections like `git status`.
pub fn git_status(root: &Path, requested: &str) -> Result<String, FileError> {
    let repo = open(root, requested)?;
    let mut out = String::from("Repository status:\n");
    let head = repo.head().ok();
    match head.as_ref().and_then(|h| h.shorthand().map(str::to_owned)) {
        Some(name) if head.as_ref().is_some_and(|h| h.is_branch()) => {
            let _ = writeln!(out, "On branch {name}");
            if let Some(line) = upstream_line(&repo, &name) {
                out.push_str(&line);
            }
        }
        Some(_) => {
            let id = head
                .as_ref()
                .and_then(|h| h.target())
                .map(|o| o.to_string()[..12].to_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "HEAD detached at {id}");
        }
        None => out.push_str("No commits yet\n"),
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .renames_head_to_index(true)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut opts)).map_err(git_error)?;
    let (mut staged, mut unstaged, mut untracked, mut conflicted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in statuses.iter().take(MAX_STATUS_ENTRIES) {
        let path = entry.path().unwrap_or("?").to_owned();
        let s = entry.status();
        if s.is_conflicted() {
            conflicted.push(path);
            continue;
        }
        if s.is_wt_new() {
            untracked.push(path.clone());
        }
        let index = [
            (Status::INDEX_NEW, "new file"),
            (Status::INDEX_MODIFIED, "modified"),
            (Status::INDEX_DELETED, "deleted"),
            (Status::INDEX_RENAMED, "renamed"),
            (Status::INDEX_TYPECHANGE, "typechange"),
        ];
        for (flag, label) in index {
            if s.contains(flag) {
                staged.push(format!("{label}: {path}"));
            }
        }
        let worktree = [
            (Status::WT_MODIFIED, "modified"),
            (Status::WT_DELETED, "deleted"),
            (Status::WT_RENAMED, "renamed"),
            (Status::WT_TYPECHANGE, "typechange"),
        ];
        for (flag, label) in worktree {
            if s.contains(flag) {
                unstaged.push(format!("{label}: {path}"));
            }
        }
    }
    let sections = [
        ("Unmerged paths", conflicted),
        ("Changes to be committed", staged),
        ("Changes not staged for commit", unstaged),
        ("Untracked files", untracked),
    ];
    let mut clean = true;
    for (title, items) in sections {
        if items.is_empty() {
            continue;
        }
        clean = false;
        let _ = writeln!(out, "{title}:");
        for item in items {
            let _ = writeln!(out, "\t{item}");
        }
    }
    if clean {
        out.push_str("nothing to commit, working tree clean\n");
    }
    if statuses.len() > MAX_STATUS_ENTRIES {
        let _ = writeln!(
            out,
            "[… cut: showing {MAX_STATUS_ENTRIES} of {} changed paths]",
            statuses.len()
        );
    }
    Ok(out)
}

/// "Your branch is ahead of 'origin/main' by 1 commit." and the like, when there is an upstream.
fn upstream_line(repo: &Repository, branch: &str) -> Option<String> {
    let local = repo.find_branch(branch, git2::BranchType::Local).ok()?;
    let upstream = local.upstream().ok()?;
    let name = upstream.name().ok()??.to_owned();
    let (a, b) = repo
        .graph_ahead_behind(local.get().target()?, upstream.get().target()?)
        .ok()?;
    Some(match (a, b) {
        (0, 0) => format!("Your branch is up to date with '{name}'.\n"),
        (a, 0) => format!("Your branch is ahead of '{name}' by {a} commit(s).\n"),
        (0, b) => format!("Your branch is behind '{name}' by {b} commit(s).\n"),
        (a, b) => format!("Your branch and '{name}' have diverged: {a} and {b} commits.\n"),
    })
}

/// A unified diff: unstaged changes by default, staged ones with `staged`, or the working tree
/// against `target`.
pub fn git_diff(root: &Path, requested: &str, query: &DiffQuery) -> Result<String, FileError> {
    let repo = open(root, requested)?;
    let mut opts = DiffOptions::new();
    opts.context_lines(query.context_lines.unwrap_or(3).min(100));
    let diff = match (&query.target, query.staged) {
        (Some(_), true) => {
            return Err(FileError::BadRequest(
                "give target or staged, not both".into(),
            ));
        }
        (Some(target), false) => {
            check_rev(target)?;
            let tree = repo
                .revparse_single(target)
                .and_then(|o| o.peel_to_tree())
                .map_err(git_error)?;
            repo.diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))
        }
        (None, true) => {
            let head = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
            repo.diff_tree_to_index(head.as_ref(), None, Some(&mut opts))
        }
        (None, false) => repo.diff_index_to_workdir(None, Some(&mut opts)),
    }
    .map_err(git_error)?;
    let out = print_diff(&diff)?;
    Ok(if out.is_empty() {
        "no changes\n".into()
    } else {
        out
    })
}

fn print_diff(diff: &git2::Diff<'_>) -> Result<String, FileError> {
    let mut out = String::new();
    let mut full = false;
    let printed = diff.print(DiffFormat::Patch, |_, _, line| {
        let origin = line.origin();
        let prefix = if matches!(origin, '+' | '-' | ' ') {
            origin.to_string()
        } else {
            String::new()
        };
        let text = format!("{prefix}{}", String::from_utf8_lossy(line.content()));
        push_capped(&mut out, &text, &mut full)
    });
    // Stopping the callback when full shows up as a user error; that is not a failure.
    if let Err(e) = printed
        && !full
    {
        return Err(git_error(e));
    }
    cut_note(&mut out, full);
    Ok(out)
}

/// The newest `max_count` commits reachable from `HEAD` (10 by default, at most [`MAX_LOG`]).
pub fn git_log(
    root: &Path,
    requested: &str,
    max_count: Option<usize>,
) -> Result<String, FileError> {
    let repo = open(root, requested)?;
    let mut walk = repo.revwalk().map_err(git_error)?;
    if walk.push_head().is_err() {
        return Ok("No commits yet\n".into());
    }
    walk.set_sorting(git2::Sort::TIME).map_err(git_error)?;
    let mut out = String::new();
    let mut full = false;
    for id in walk.take(max_count.unwrap_or(10).clamp(1, MAX_LOG)) {
        let commit = repo
            .find_commit(id.map_err(git_error)?)
            .map_err(git_error)?;
        if !push_capped(&mut out, &commit_header(&commit), &mut full) {
            break;
        }
    }
    cut_note(&mut out, full);
    Ok(out)
}

fn commit_header(commit: &git2::Commit<'_>) -> String {
    let author = commit.author();
    let when = chrono::DateTime::from_timestamp(author.when().seconds(), 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let message: String = commit
        .message()
        .unwrap_or("")
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        "commit {}\nAuthor: {} <{}>\nDate:   {when}\n\n{message}\n",
        commit.id(),
        author.name().unwrap_or("?"),
        author.email().unwrap_or("?"),
    )
}

/// One commit: its header and its diff against its first parent.
pub fn git_show(root: &Path, requested: &str, revision: &str) -> Result<String, FileError> {
    check_rev(revision)?;
    let repo = open(root, requested)?;
    let commit = repo
        .revparse_single(revision)
        .and_then(|o| o.peel_to_commit())
        .map_err(git_error)?;
    let tree = commit.tree().map_err(git_error)?;
    let parent = commit.parent(0).ok().and_then(|p| p.tree().ok());
    let diff = repo
        .diff_tree_to_tree(parent.as_ref(), Some(&tree), None)
        .map_err(git_error)?;
    let mut out = commit_header(&commit);
    out.push_str(&print_diff(&diff)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::test_support::{git, repo_with_commit};

    fn repo() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("app")).unwrap();
        repo_with_commit(&root.join("app"), &[("a.txt", "one\n"), ("b.txt", "two\n")]);
        (dir, root)
    }

    #[test]
    fn status_and_diffs_show_each_kind_of_change() {
        let (_d, root) = repo();
        let app = root.join("app");
        assert!(
            git_status(&root, "app")
                .unwrap()
                .contains("working tree clean")
        );
        std::fs::write(app.join("a.txt"), "one\nmore\n").unwrap();
        std::fs::write(app.join("b.txt"), "staged\n").unwrap();
        git(&app, &["add", "b.txt"]);
        std::fs::write(app.join("new.txt"), "n\n").unwrap();
        let status = git_status(&root, "app").unwrap();
        assert!(
            status.contains("Changes to be committed:\n\tmodified: b.txt"),
            "{status}"
        );
        assert!(
            status.contains("Changes not staged for commit:\n\tmodified: a.txt"),
            "{status}"
        );
        assert!(status.contains("Untracked files:\n\tnew.txt"), "{status}");
        let unstaged = git_diff(&root, "app", &DiffQuery::default()).unwrap();
        assert!(
            unstaged.contains("+more") && !unstaged.contains("+staged"),
            "{unstaged}"
        );
        let staged = DiffQuery {
            staged: true,
            ..Default::default()
        };
        let staged = git_diff(&root, "app", &staged).unwrap();
        assert!(
            staged.contains("+staged") && !staged.contains("+more"),
            "{staged}"
        );
        let against_head = DiffQuery {
            target: Some("HEAD".into()),
            ..Default::default()
        };
        let both = git_diff(&root, "app", &against_head).unwrap();
        assert!(both.contains("+staged") && both.contains("+more"), "{both}");
    }

    #[test]
    fn log_and_show_read_commits() {
        let (_d, root) = repo();
        let app = root.join("app");
        std::fs::write(app.join("a.txt"), "changed\n").unwrap();
        git(&app, &["commit", "-qam", "second commit"]);
        let log = git_log(&root, "app", Some(1)).unwrap();
        assert_eq!(log.matches("commit ").count(), 1, "{log}");
        assert!(log.contains("    second commit"));
        let show = git_show(&root, "app", "HEAD").unwrap();
        assert!(show.contains("-one\n+changed"), "{show}");
        assert!(git_show(&root, "app", "no-such-ref").is_err());
    }

    #[test]
    fn a_repository_whose_git_data_is_outside_the_root_is_refused() {
        let (_d, root) = repo();
        let elsewhere = tempfile::tempdir().unwrap();
        repo_with_commit(elsewhere.path(), &[("secret.txt", "outside\n")]);
        // A worktree inside the root of a repository outside it, and a hand-made pointer.
        git(
            elsewhere.path(),
            &["worktree", "add", "-q", root.join("wt").to_str().unwrap()],
        );
        std::fs::create_dir(root.join("pointer")).unwrap();
        std::fs::write(
            root.join("pointer/.git"),
            format!("gitdir: {}\n", elsewhere.path().join(".git").display()),
        )
        .unwrap();
        for dir in ["wt", "pointer"] {
            let refused = git_log(&root, dir, None).unwrap_err();
            assert!(refused.to_string().contains("outside"), "{dir}: {refused}");
        }
    }

    #[test]
    fn only_repositories_inside_the_root_open() {
        let (_d, root) = repo();
        // The root itself is not a repository, and nothing above it is searched.
        assert!(matches!(git_status(&root, "."), Err(FileError::Kind(_))));
        assert!(git_status(&root, "../").is_err());
        assert!(git_status(&root, "/").is_err());
    }
}
