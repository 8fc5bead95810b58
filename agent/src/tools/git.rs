//! The git tools: `git_status`, `git_diff`, `git_log`, `git_show`, read with `git2` in process
//! (no `git` child process per call), and `git_commit`, the one that writes: the pipelines'
//! commits, made idempotent by a key kept as a trailer.
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

/// What [`git_commit`] is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The repository, relative to the root.
    pub repo_path: String,
    /// Create the repository if there is none.
    pub init: bool,
    /// The branch to commit on.
    pub branch: Option<String>,
    /// The message.
    pub message: String,
    /// Only changes under these paths (relative to the repository).
    pub paths: Option<Vec<String>>,
    /// The idempotency key.
    pub key: Option<String>,
    /// The author's name and email.
    pub author: (Option<String>, Option<String>),
}

/// The trailer that carries a commit's idempotency key.
pub const KEY_TRAILER: &str = "Fulcrum-Key";
/// How many of the branch's newest commits are searched for a key.
const KEY_DEPTH: usize = 200;
/// The longest commit message accepted.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most paths one commit names.
const MAX_COMMIT_PATHS: usize = 1000;
/// Most files one commit adds.
const MAX_COMMIT_FILES: usize = 10_000;
/// Largest file a commit adds.
const MAX_COMMIT_FILE_BYTES: u64 = 16 << 20;

/// Commits in one process at a time: stages that run side by side commit one after the other.
static COMMITTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Commits the changes of a repository in the root (all, or those under `paths`) on a branch,
/// creating the repository or the branch if asked; with a key, a commit already made with the
/// same key is returned instead of making another. The answer's first line is
/// `commit <sha> on <branch>` (or `nothing to commit on <branch> at <sha>`).
pub fn git_commit(
    root: &Path,
    req: &CommitRequest,
    still_wanted: &dyn Fn() -> bool,
) -> Result<String, FileError> {
    let bad = |m: String| Err(FileError::BadRequest(m));
    if req.message.trim().is_empty() || req.message.len() > MAX_MESSAGE_BYTES {
        return bad(format!(
            "a commit message is 1 to {MAX_MESSAGE_BYTES} bytes"
        ));
    }
    if let Some(key) = &req.key
        && (key.is_empty() || key.len() > 200 || key.contains(['\n', '\r', '\0']))
    {
        return bad("a key is 1 to 200 bytes on one line".into());
    }
    if let Some(paths) = &req.paths {
        if paths.len() > MAX_COMMIT_PATHS {
            return bad(format!("a commit names at most {MAX_COMMIT_PATHS} paths"));
        }
        if let Some(p) = paths.iter().find(|p| {
            p.is_empty()
                || p.starts_with('/')
                || p.split('/').any(|c| c == "..")
                || p.contains('\0')
        }) {
            return bad(format!("{p:?} is not a path inside the repository"));
        }
    }
    if let Some(branch) = &req.branch
        && !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
    {
        return bad(format!("{branch:?} is not a valid branch name"));
    }
    let _one_at_a_time = COMMITTING.lock().unwrap_or_else(|e| e.into_inner());
    if req.init {
        crate::paths::create_dirs(root, &req.repo_path, true)?;
        let dir = resolve(root, &req.repo_path, Intent::Read)?;
        if Repository::open_ext(&dir, RepositoryOpenFlags::NO_SEARCH, &[] as &[&str]).is_err() {
            let mut opts = git2::RepositoryInitOptions::new();
            opts.no_reinit(true);
            if let Some(branch) = &req.branch {
                opts.initial_head(branch);
            }
            Repository::init_opts(&dir, &opts).map_err(git_error)?;
        }
    }
    let repo = open(root, &req.repo_path)?;
    let head = match repo.head() {
        Ok(head) => Some(head),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
        Err(e) => return Err(git_error(e)),
    };
    let current = match &head {
        Some(h) if h.is_branch() => h.shorthand().map(str::to_owned),
        Some(_) => None,
        None => repo
            .find_reference("HEAD")
            .ok()
            .and_then(|r| r.symbolic_target().map(str::to_owned))
            .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_owned)),
    };
    let parent = head
        .as_ref()
        .map(|h| h.peel_to_commit())
        .transpose()
        .map_err(git_error)?;
    let branch = match (&req.branch, &current) {
        (Some(wanted), Some(on)) if wanted == on => wanted.clone(),
        (Some(wanted), _) => {
            let existing = repo.find_branch(wanted, git2::BranchType::Local).ok();
            let at = existing.as_ref().and_then(|b| b.get().target());
            match (existing.is_some(), &parent) {
                // Not there yet: made at HEAD's commit, so the files stay as they are.
                (false, Some(p)) => {
                    repo.branch(wanted, p, false).map_err(git_error)?;
                }
                (false, None) => {}
                // There, at the same commit as HEAD: switching changes no file either.
                (true, Some(p)) if at == Some(p.id()) => {}
                (true, _) => {
                    return Err(FileError::Kind(format!(
                        "the repository is on {}, not on {wanted}; switch to {wanted} first",
                        current.as_deref().unwrap_or("a detached HEAD")
                    )));
                }
            }
            repo.set_head(&format!("refs/heads/{wanted}"))
                .map_err(git_error)?;
            wanted.clone()
        }
        (None, Some(on)) => on.clone(),
        (None, None) => {
            return Err(FileError::Kind(
                "HEAD is detached: name a branch to commit on".into(),
            ));
        }
    };
    if let (Some(key), Some(tip)) = (&req.key, &parent)
        && let Some(made) = keyed(&repo, tip.id(), key)?
    {
        return Ok(format!(
            "commit {made} on {branch}\nalready made with key {key}\n"
        ));
    }
    let mut index = repo.index().map_err(git_error)?;
    // Named paths are taken as they are written (no glob: `src/[id].tsx` is one file); with
    // none, every change git does not ignore. Either way within a count and a size, and not
    // after the caller gave up.
    let exact = req.paths.is_some();
    let specs: Vec<String> = req.paths.clone().unwrap_or_else(|| vec!["*".into()]);
    let workdir = repo.workdir().map(Path::to_path_buf).unwrap_or_default();
    let mut added = 0usize;
    let mut refused: Option<String> = None;
    let wanted: std::collections::HashSet<&Path> = specs.iter().map(Path::new).collect();
    let mut each = |path: &Path, _: &[u8]| -> i32 {
        if exact && !wanted.contains(path) {
            return 1;
        }
        added += 1;
        let big =
            std::fs::metadata(workdir.join(path)).is_ok_and(|m| m.len() > MAX_COMMIT_FILE_BYTES);
        let why = if added > MAX_COMMIT_FILES {
            Some(format!("more than {MAX_COMMIT_FILES} files changed"))
        } else if big {
            Some(format!(
                "{} is over {MAX_COMMIT_FILE_BYTES} bytes",
                path.display()
            ))
        } else if !still_wanted() {
            Some("the call was given up".into())
        } else {
            None
        };
        match why {
            Some(w) => {
                refused = Some(w);
                -1
            }
            None => 0,
        }
    };
    let flags = if exact {
        git2::IndexAddOption::DISABLE_PATHSPEC_MATCH
    } else {
        git2::IndexAddOption::DEFAULT
    };
    let result = index.add_all(specs.iter(), flags, Some(&mut each));
    if let Some(why) = refused {
        return Err(FileError::BadRequest(format!(
            "nothing was committed: {why}"
        )));
    }
    result.map_err(git_error)?;
    let mut only_named = |path: &Path, _: &[u8]| -> i32 {
        if !exact || wanted.contains(path) {
            0
        } else {
            1
        }
    };
    index
        .update_all(specs.iter(), Some(&mut only_named))
        .map_err(git_error)?;
    let tree_id = index.write_tree().map_err(git_error)?;
    if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
        index.write().map_err(git_error)?;
        let at = parent
            .as_ref()
            .map(|p| p.id().to_string())
            .unwrap_or_default();
        return Ok(format!("nothing to commit on {branch} at {at}\n"));
    }
    let tree = repo.find_tree(tree_id).map_err(git_error)?;
    let fallback = repo.signature().ok();
    let name = req
        .author
        .0
        .clone()
        .or_else(|| fallback.as_ref().and_then(|s| s.name().map(str::to_owned)))
        .unwrap_or_else(|| "Fulcrum".into());
    let email = req
        .author
        .1
        .clone()
        .or_else(|| fallback.as_ref().and_then(|s| s.email().map(str::to_owned)))
        .unwrap_or_else(|| "fulcrum@localhost".into());
    let who = git2::Signature::now(&name, &email).map_err(git_error)?;
    let mut message = req.message.trim_end().to_owned();
    if let Some(key) = &req.key {
        // A trailer block: the key joins the message's trailers, or starts one.
        let last = message.rsplit("\n\n").next().unwrap_or("");
        let trailers = message.contains("\n\n")
            && last
                .lines()
                .all(|l| l.split_once(": ").is_some_and(|(k, _)| !k.contains(' ')));
        message.push_str(if trailers { "\n" } else { "\n\n" });
        message.push_str(&format!("{KEY_TRAILER}: {key}"));
    }
    message.push('\n');
    if !still_wanted() {
        return Err(FileError::BadRequest(
            "the call was given up; nothing was committed".into(),
        ));
    }
    index.write().map_err(git_error)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo
        .commit(Some("HEAD"), &who, &who, &message, &tree, &parents)
        .map_err(git_error)?;
    let summary = message.lines().next().unwrap_or("");
    Ok(format!("commit {id} on {branch}\n{summary}\n"))
}

/// The commit among the newest [`KEY_DEPTH`] from `tip` whose message carries `key`.
fn keyed(repo: &Repository, tip: git2::Oid, key: &str) -> Result<Option<git2::Oid>, FileError> {
    let line = format!("{KEY_TRAILER}: {key}");
    let mut walk = repo.revwalk().map_err(git_error)?;
    walk.push(tip).map_err(git_error)?;
    for id in walk.take(KEY_DEPTH) {
        let id = id.map_err(git_error)?;
        let commit = repo.find_commit(id).map_err(git_error)?;
        if commit
            .message()
            .is_some_and(|m| m.lines().any(|l| l.trim_end() == line))
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
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

    fn commit(repo_path: &str, req: CommitRequest) -> CommitRequest {
        CommitRequest {
            repo_path: repo_path.into(),
            ..req
        }
    }

    fn sha(answer: &str) -> String {
        answer.split_whitespace().nth(1).unwrap().to_owned()
    }

    #[test]
    fn commits_make_a_repository_and_a_branch_once_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        crate::files::write_file(&root, "gen/backend/app.py", "print(1)\n", &|| true).unwrap();
        crate::files::write_file(&root, "gen/frontend/index.html", "<p>\n", &|| true).unwrap();
        crate::files::write_file(&root, "gen/src/[id].tsx", "x\n", &|| true).unwrap();
        crate::files::write_file(&root, "gen/src/i.tsx", "decoy\n", &|| true).unwrap();
        let req = CommitRequest {
            init: true,
            branch: Some("fulcrum/run-ab12".into()),
            message: "backend: first version\n\nFulcrum-Run: ab12\nFulcrum-Stage: backend".into(),
            paths: Some(vec!["backend/app.py".into(), "src/[id].tsx".into()]),
            key: Some("run/backend/1".into()),
            author: (
                Some("Fulcrum run ab12".into()),
                Some("run-ab12@fulcrum".into()),
            ),
            ..Default::default()
        };
        let first = git_commit(&root, &commit("gen", req.clone()), &|| true).unwrap();
        assert!(
            first.starts_with("commit ") && first.contains("on fulcrum/run-ab12"),
            "{first}"
        );
        // The same key again: the same commit, nothing new.
        let again = git_commit(&root, &commit("gen", req.clone()), &|| true).unwrap();
        assert_eq!(sha(&again), sha(&first), "{again}");
        let repo = Repository::open(root.join("gen")).unwrap();
        let tip = repo.head().unwrap().peel_to_commit().unwrap();
        assert_eq!(tip.id().to_string(), sha(&first));
        assert_eq!(tip.parent_count(), 0);
        assert_eq!(tip.author().name(), Some("Fulcrum run ab12"));
        // Only the named paths went in; the key joined the trailers.
        let tree = tip.tree().unwrap();
        assert!(tree.get_path(Path::new("backend/app.py")).is_ok());
        assert!(tree.get_path(Path::new("frontend/index.html")).is_err());
        // A named path is a path, not a pattern.
        assert!(tree.get_path(Path::new("src/[id].tsx")).is_ok());
        assert!(tree.get_path(Path::new("src/i.tsx")).is_err());
        assert!(
            tip.message()
                .unwrap()
                .ends_with("Fulcrum-Stage: backend\nFulcrum-Key: run/backend/1\n"),
            "{:?}",
            tip.message()
        );
        // All changes, with another key: a second commit on top.
        let all = CommitRequest {
            paths: None,
            key: Some("run/frontend/1".into()),
            message: "frontend".into(),
            ..req.clone()
        };
        let second = git_commit(&root, &commit("gen", all.clone()), &|| true).unwrap();
        assert_ne!(sha(&second), sha(&first));
        let tip = repo.head().unwrap().peel_to_commit().unwrap();
        assert_eq!(tip.parent_id(0).unwrap().to_string(), sha(&first));
        assert!(
            tip.tree()
                .unwrap()
                .get_path(Path::new("frontend/index.html"))
                .is_ok()
        );
        // The first key is still found below the tip; with nothing changed, nothing is made.
        assert_eq!(
            sha(&git_commit(&root, &commit("gen", req.clone()), &|| true).unwrap()),
            sha(&first)
        );
        let none = CommitRequest {
            key: Some("run/qa/1".into()),
            ..all
        };
        let nothing = git_commit(&root, &commit("gen", none), &|| true).unwrap();
        assert!(
            nothing.starts_with("nothing to commit on fulcrum/run-ab12"),
            "{nothing}"
        );
    }

    #[test]
    fn commits_switch_only_to_a_branch_at_head_and_refuse_bad_input() {
        let (_d, root) = repo();
        std::fs::write(root.join("app/a.txt"), "changed\n").unwrap();
        let req = CommitRequest {
            repo_path: "app".into(),
            branch: Some("fulcrum/run-x".into()),
            message: "change a".into(),
            ..Default::default()
        };
        let made = git_commit(&root, &req, &|| true).unwrap();
        assert!(made.contains("on fulcrum/run-x"), "{made}");
        let repo = Repository::open(root.join("app")).unwrap();
        assert_eq!(repo.head().unwrap().shorthand(), Some("fulcrum/run-x"));
        // Back on the first branch, the run's branch is ahead: it is not switched to.
        git(&root.join("app"), &["checkout", "-q", "-"]);
        let refused = git_commit(&root, &req, &|| true).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("switch to fulcrum/run-x first"),
            "{refused}"
        );
        for bad in [
            CommitRequest {
                branch: Some("a..b".into()),
                ..req.clone()
            },
            CommitRequest {
                message: " ".into(),
                ..req.clone()
            },
            CommitRequest {
                paths: Some(vec!["../x".into()]),
                ..req.clone()
            },
            CommitRequest {
                key: Some("a\nb".into()),
                ..req.clone()
            },
        ] {
            assert!(
                matches!(
                    git_commit(&root, &bad, &|| true),
                    Err(FileError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
        // No repository and no init: refused, and none is made.
        std::fs::create_dir(root.join("plain")).unwrap();
        let plain = CommitRequest {
            repo_path: "plain".into(),
            ..req.clone()
        };
        assert!(git_commit(&root, &plain, &|| true).is_err());
        assert!(!root.join("plain/.git").exists());
        // A call given up commits nothing.
        std::fs::write(root.join("app/b.txt"), "late\n").unwrap();
        let head = repo.head().unwrap().target();
        let to_x = CommitRequest {
            branch: None,
            ..req
        };
        assert!(git_commit(&root, &to_x, &|| false).is_err());
        assert_eq!(repo.head().unwrap().target(), head);
    }
}
