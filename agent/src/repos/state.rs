//! Reading the live state of one repository with libgit2: HEAD, upstream, and what
//! `git status --porcelain` would list.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use fulcrum_protocol::{ChangedPath, MAX_CHANGED_PATHS, RepoStatus};
use git2::{ErrorCode, Index, Repository, Status, StatusOptions};

/// Index-side status flags: any of them makes a path "staged".
const STAGED: Status = Status::INDEX_NEW
    .union(Status::INDEX_MODIFIED)
    .union(Status::INDEX_DELETED)
    .union(Status::INDEX_RENAMED)
    .union(Status::INDEX_TYPECHANGE);

/// Reads the state of the repository whose work tree is `workdir`.
///
/// [`RepoStatus::path`] is `workdir` relative to `root` with `/` separators (`.` for the root
/// itself). Untracked directories count once, ignored files are left out and renames between
/// HEAD and the index are detected, as `git status` does. A repository without commits has no
/// branch, SHA or upstream; a bare repository reports its HEAD and no changes.
///
/// Fails when `workdir` cannot be opened as a repository or its status cannot be computed.
/// Problems with HEAD or the upstream only leave those fields empty.
pub fn read_status(root: &Path, workdir: &Path) -> Result<RepoStatus, git2::Error> {
    Ok(read_full(root, workdir)?.status)
}

/// A repository's state with every changed path, not only the first [`MAX_CHANGED_PATHS`]: what
/// [`update_paths`] needs to bring it up to date one path at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct FullStatus {
    /// The state as reported (counts and the capped list derive from `changes`).
    pub status: RepoStatus,
    /// Every changed path with its porcelain code.
    changes: BTreeMap<String, String>,
}

/// Like [`read_status`], keeping every changed path.
pub fn read_full(root: &Path, workdir: &Path) -> Result<FullStatus, git2::Error> {
    let repo = Repository::open(workdir)?;
    let mut status = RepoStatus {
        path: relative_path(root, workdir),
        ..RepoStatus::default()
    };
    read_head(&repo, &mut status);
    let mut changes = BTreeMap::new();
    if !repo.is_bare() {
        changes = read_changes(&repo)?;
    }
    let mut full = FullStatus { status, changes };
    full.derive();
    Ok(full)
}

/// Porcelain codes of conflicted paths.
const CONFLICT_CODES: &[&str] = &["UU", "AA", "DD", "AU", "UA", "DU", "UD"];

impl FullStatus {
    /// Recomputes the counts and the capped list from `changes`.
    fn derive(&mut self) {
        let s = &mut self.status;
        (s.staged, s.unstaged, s.untracked, s.conflicted) = (0, 0, 0, 0);
        for code in self.changes.values() {
            let mut chars = code.chars();
            let (x, y) = (chars.next().unwrap_or(' '), chars.next().unwrap_or(' '));
            if CONFLICT_CODES.contains(&code.as_str()) {
                s.conflicted += 1;
            } else if code == "??" {
                s.untracked += 1;
            } else {
                s.staged += u32::from(x != ' ');
                s.unstaged += u32::from(matches!(y, 'M' | 'D' | 'T' | 'R'));
            }
        }
        s.changed_paths_truncated = self.changes.len() > MAX_CHANGED_PATHS;
        s.changed_paths = self
            .changes
            .iter()
            .take(MAX_CHANGED_PATHS)
            .map(|(path, code)| ChangedPath {
                path: path.clone(),
                code: code.clone(),
            })
            .collect();
        // Within the protocol's limits (a very long commit summary, an absurd path).
        self.status.clamp();
    }
}

/// Brings `previous` up to date after a change to only `paths` (relative to the work tree),
/// checking just those paths: far cheaper than a full read on a large repository.
///
/// Returns `Ok(None)` whenever a path-by-path answer could differ from a full read (a new or
/// untracked file, anything inside an untracked directory, a directory, conflicts or renames in
/// play): the caller then reads everything. HEAD and the upstream are taken from `previous`; a
/// change to them shows up in the git directory, and the watcher then asks for a full read.
pub fn update_paths(
    workdir: &Path,
    previous: &FullStatus,
    paths: &[std::path::PathBuf],
) -> Result<Option<FullStatus>, git2::Error> {
    let tricky = previous.changes.iter().any(|(path, code)| {
        path.ends_with('/') || code.starts_with('R') || CONFLICT_CODES.contains(&code.as_str())
    });
    if tricky || paths.is_empty() {
        return Ok(None);
    }
    let repo = Repository::open(workdir)?;
    let mut next = previous.clone();
    for rel in paths {
        let Some(key) = rel.to_str().map(|p| p.replace('\\', "/")) else {
            return Ok(None);
        };
        if !is_plain_relative(rel) || workdir.join(rel).is_dir() {
            return Ok(None);
        }
        match repo.status_file(rel) {
            Ok(flags)
                if flags
                    .intersects(Status::WT_NEW | Status::CONFLICTED | Status::INDEX_RENAMED) =>
            {
                return Ok(None);
            }
            Ok(flags) => match porcelain_code(flags) {
                code if code == "  " => {
                    next.changes.remove(&key);
                }
                code => {
                    next.changes.insert(key, code);
                }
            },
            // Neither in the index nor in the work tree (a removed untracked file).
            Err(e) if e.code() == ErrorCode::NotFound => {
                next.changes.remove(&key);
            }
            Err(_) => return Ok(None),
        }
    }
    next.derive();
    Ok(Some(next))
}

/// Whether git ignores `rel_path` (relative to the work tree) and does not track it, so that
/// changes to it cannot change [`read_status`]'s answer.
///
/// A path matching an ignore rule that is nevertheless in the index (force-added, or a
/// directory holding tracked files) is not ignored. Errors count as "not ignored".
pub fn is_ignored(repo: &Repository, rel_path: &Path) -> bool {
    if !is_plain_relative(rel_path) {
        return false;
    }
    match repo.is_path_ignored(rel_path) {
        Ok(true) => !is_tracked(repo, rel_path),
        Ok(false) => false,
        Err(err) => {
            tracing::debug!(path = %rel_path.display(), %err, "cannot check git ignore rules");
            false
        }
    }
}

/// Whether the index holds `rel_path` or anything below it.
fn is_tracked(repo: &Repository, rel_path: &Path) -> bool {
    let Ok(mut index) = repo.index() else {
        return false;
    };
    // The repository caches its index: reload it if it changed on disk.
    if let Err(err) = index.read(false) {
        tracing::debug!(%err, "cannot reload the git index");
    }
    if index.get_path(rel_path, 0).is_some() {
        return true;
    }
    let Some(rel) = rel_path.to_str() else {
        return false;
    };
    index.find_prefix(format!("{rel}/")).is_ok()
}

/// True for a non-empty relative path that starts with a normal component, the only shape
/// git2's path-taking index functions accept without panicking.
fn is_plain_relative(path: &Path) -> bool {
    matches!(path.components().next(), Some(Component::Normal(_)))
}

/// `workdir` relative to `root` with `/` separators, `.` when they are the same directory.
/// A work tree outside `root` is shown as its full path.
fn relative_path(root: &Path, workdir: &Path) -> String {
    let Ok(rel) = workdir.strip_prefix(root) else {
        return workdir.to_string_lossy().into_owned();
    };
    let parts: Vec<_> = rel
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// Fills branch, HEAD commit and upstream fields. An unborn or broken HEAD leaves them empty.
fn read_head(repo: &Repository, status: &mut RepoStatus) {
    let head = match repo.head() {
        Ok(head) => head,
        Err(err) => {
            if !matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) {
                tracing::debug!(%err, "cannot resolve HEAD");
            }
            return;
        }
    };
    let Some(head_oid) = head.target() else {
        return;
    };
    status.head_sha = Some(head_oid.to_string());
    match repo.find_commit(head_oid) {
        Ok(commit) => {
            let summary = commit.summary_bytes().unwrap_or_default();
            status.head_summary = Some(String::from_utf8_lossy(summary).into_owned());
        }
        Err(err) => tracing::debug!(%err, "cannot read the HEAD commit"),
    }
    if head.is_branch() {
        status.branch = head.shorthand().map(str::to_owned);
        if let Some(refname) = head.name() {
            read_upstream(repo, refname, head_oid, status);
        }
    }
}

/// Fills the upstream name and the ahead/behind counts of the branch `refname`. When the
/// upstream is configured but its ref is missing (never fetched), only the name is set.
fn read_upstream(repo: &Repository, refname: &str, head: git2::Oid, status: &mut RepoStatus) {
    let Ok(upstream_ref) = repo.branch_upstream_name(refname) else {
        return;
    };
    let Some(upstream_ref) = upstream_ref.as_str() else {
        return;
    };
    status.upstream = Some(short_ref_name(upstream_ref).to_owned());
    let Ok(upstream_oid) = repo.refname_to_id(upstream_ref) else {
        return;
    };
    match repo.graph_ahead_behind(head, upstream_oid) {
        Ok((ahead, behind)) => {
            status.ahead = saturating_u32(ahead);
            status.behind = saturating_u32(behind);
        }
        Err(err) => tracing::debug!(%err, "cannot count commits ahead and behind the upstream"),
    }
}

/// `refs/remotes/origin/main` → `origin/main`, `refs/heads/dev` → `dev`.
fn short_ref_name(refname: &str) -> &str {
    refname
        .strip_prefix("refs/remotes/")
        .or_else(|| refname.strip_prefix("refs/heads/"))
        .unwrap_or(refname)
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every changed path with its porcelain code, from the repository's status.
fn read_changes(repo: &Repository) -> Result<BTreeMap<String, String>, git2::Error> {
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(false)
        .renames_head_to_index(true)
        .renames_index_to_workdir(false);
    let statuses = repo.statuses(Some(&mut options))?;

    let mut conflict_codes = None;
    let mut changes = BTreeMap::new();
    for entry in statuses.iter() {
        let flags = entry.status();
        let path = entry_path(&entry, flags);
        let code = if flags.contains(Status::CONFLICTED) {
            let codes = conflict_codes.get_or_insert_with(|| read_conflict_codes(repo));
            codes.get(&path).copied().unwrap_or("UU").to_owned()
        } else {
            porcelain_code(flags)
        };
        if code != "  " {
            changes.insert(path, code);
        }
    }
    Ok(changes)
}

/// The path an entry is listed under: the new path of a rename, otherwise its only path.
fn entry_path(entry: &git2::StatusEntry<'_>, flags: Status) -> String {
    let renamed_to = flags
        .contains(Status::INDEX_RENAMED)
        .then(|| entry.head_to_index())
        .flatten()
        .and_then(|delta| delta.new_file().path_bytes().map(<[u8]>::to_vec));
    match renamed_to {
        Some(path) => String::from_utf8_lossy(&path).into_owned(),
        None => String::from_utf8_lossy(entry.path_bytes()).into_owned(),
    }
}

/// The porcelain v1 `XY` code of a non-conflicted entry (`"  "` if it has no change).
fn porcelain_code(flags: Status) -> String {
    if flags.contains(Status::WT_NEW) && !flags.intersects(STAGED) {
        return "??".to_owned();
    }
    let x = if flags.contains(Status::INDEX_NEW) {
        'A'
    } else if flags.contains(Status::INDEX_MODIFIED) {
        'M'
    } else if flags.contains(Status::INDEX_DELETED) {
        'D'
    } else if flags.contains(Status::INDEX_RENAMED) {
        'R'
    } else if flags.contains(Status::INDEX_TYPECHANGE) {
        'T'
    } else {
        ' '
    };
    let y = if flags.contains(Status::WT_MODIFIED) {
        'M'
    } else if flags.contains(Status::WT_DELETED) {
        'D'
    } else if flags.contains(Status::WT_TYPECHANGE) {
        'T'
    } else if flags.contains(Status::WT_RENAMED) {
        'R'
    } else {
        ' '
    };
    [x, y].iter().collect()
}

/// Porcelain codes of the conflicted paths (`UU`, `AA`, `DU`, ...), from which of the three
/// stages (common ancestor, ours, theirs) the index holds for each.
fn read_conflict_codes(repo: &Repository) -> HashMap<String, &'static str> {
    let mut codes = HashMap::new();
    let index: Index = match repo.index() {
        Ok(index) => index,
        Err(err) => {
            tracing::debug!(%err, "cannot read the index for conflicts");
            return codes;
        }
    };
    let conflicts = match index.conflicts() {
        Ok(conflicts) => conflicts,
        Err(err) => {
            tracing::debug!(%err, "cannot list index conflicts");
            return codes;
        }
    };
    for conflict in conflicts.flatten() {
        let stages = (
            conflict.ancestor.is_some(),
            conflict.our.is_some(),
            conflict.their.is_some(),
        );
        let Some(entry) = conflict.our.or(conflict.their).or(conflict.ancestor) else {
            continue;
        };
        let code = match stages {
            (true, false, false) => "DD",
            (false, true, false) => "AU",
            (true, true, false) => "UD",
            (false, false, true) => "UA",
            (true, false, true) => "DU",
            (false, true, true) => "AA",
            _ => "UU",
        };
        codes.insert(String::from_utf8_lossy(&entry.path).into_owned(), code);
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::test_support::{git, git_may_fail, init_repo, repo_with_commit};
    use std::fs;
    use std::path::PathBuf;

    /// `git status --porcelain` of `dir` as (path, code) pairs sorted by path, with the new path
    /// for renames, plus the counts it implies.
    fn porcelain(dir: &Path) -> (Vec<(String, String)>, [u32; 4]) {
        let out = git(
            dir,
            &["-c", "core.quotepath=false", "status", "--porcelain=v1"],
        );
        let mut entries = Vec::new();
        let mut counts = [0u32; 4]; // staged, unstaged, untracked, conflicted
        for line in out.lines() {
            let (code, path) = line.split_at(2);
            let path = path.trim_start();
            let path = path.split(" -> ").last().unwrap().to_owned();
            let (x, y) = (code.as_bytes()[0], code.as_bytes()[1]);
            if ["DD", "AU", "UD", "UA", "DU", "AA", "UU"].contains(&code) {
                counts[3] += 1;
            } else if code == "??" {
                counts[2] += 1;
            } else {
                counts[0] += u32::from(x != b' ');
                counts[1] += u32::from(y != b' ');
            }
            entries.push((path, code.to_owned()));
        }
        entries.sort();
        (entries, counts)
    }

    fn listed(status: &RepoStatus) -> Vec<(String, String)> {
        status
            .changed_paths
            .iter()
            .map(|c| (c.path.clone(), c.code.clone()))
            .collect()
    }

    fn counts(status: &RepoStatus) -> [u32; 4] {
        [
            status.staged,
            status.unstaged,
            status.untracked,
            status.conflicted,
        ]
    }

    fn code_of<'a>(status: &'a RepoStatus, path: &str) -> Option<&'a str> {
        status
            .changed_paths
            .iter()
            .find(|c| c.path == path)
            .map(|c| c.code.as_str())
    }

    #[test]
    fn counts_and_codes_match_git_status() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let files: Vec<(String, String)> = [
            "staged", "unstaged", "both", "gone", "removed", "moved", "typed",
        ]
        .iter()
        .map(|name| (format!("{name}.txt"), format!("contents of {name}\n")))
        .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        repo_with_commit(dir, &files);
        fs::write(dir.join(".gitignore"), "*.log\n").unwrap();
        git(dir, &["add", ".gitignore"]);
        git(dir, &["commit", "-qm", "ignore logs"]);

        fs::write(dir.join("staged.txt"), "changed\n").unwrap();
        git(dir, &["add", "staged.txt"]);
        fs::write(dir.join("unstaged.txt"), "changed\n").unwrap();
        fs::write(dir.join("both.txt"), "changed once\n").unwrap();
        git(dir, &["add", "both.txt"]);
        fs::write(dir.join("both.txt"), "changed twice\n").unwrap();
        git(dir, &["rm", "-q", "removed.txt"]);
        fs::remove_file(dir.join("gone.txt")).unwrap();
        git(dir, &["mv", "moved.txt", "renamed.txt"]);
        fs::write(dir.join("added.txt"), "new\n").unwrap();
        git(dir, &["add", "added.txt"]);
        fs::write(dir.join("untracked.txt"), "new\n").unwrap();
        fs::create_dir_all(dir.join("newdir/sub")).unwrap();
        fs::write(dir.join("newdir/a"), "a").unwrap();
        fs::write(dir.join("newdir/sub/b"), "b").unwrap();
        fs::write(dir.join("debug.log"), "ignored").unwrap();
        #[cfg(unix)]
        {
            fs::remove_file(dir.join("typed.txt")).unwrap();
            std::os::unix::fs::symlink("staged.txt", dir.join("typed.txt")).unwrap();
        }

        let status = read_status(dir, dir).unwrap();
        let (expected, expected_counts) = porcelain(dir);
        assert_eq!(listed(&status), expected);
        assert_eq!(counts(&status), expected_counts);
        assert!(!status.changed_paths_truncated);

        assert_eq!(code_of(&status, "staged.txt"), Some("M "));
        assert_eq!(code_of(&status, "unstaged.txt"), Some(" M"));
        assert_eq!(code_of(&status, "both.txt"), Some("MM"));
        assert_eq!(code_of(&status, "removed.txt"), Some("D "));
        assert_eq!(code_of(&status, "gone.txt"), Some(" D"));
        assert_eq!(code_of(&status, "renamed.txt"), Some("R "));
        assert_eq!(code_of(&status, "added.txt"), Some("A "));
        assert_eq!(code_of(&status, "untracked.txt"), Some("??"));
        assert_eq!(code_of(&status, "newdir/"), Some("??"));
        assert_eq!(code_of(&status, "debug.log"), None);
        #[cfg(unix)]
        assert_eq!(code_of(&status, "typed.txt"), Some(" T"));
        // staged, both, removed, renamed, added | unstaged, both, gone, typed | 2 untracked
        assert_eq!(counts(&status), [5, if cfg!(unix) { 4 } else { 3 }, 2, 0]);
    }

    #[test]
    fn merge_conflicts_are_counted_apart_from_other_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        repo_with_commit(dir, &[("shared.txt", "base\n"), ("other.txt", "x\n")]);
        git(dir, &["checkout", "-qb", "feature"]);
        fs::write(dir.join("shared.txt"), "feature\n").unwrap();
        fs::write(dir.join("both-added.txt"), "feature\n").unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-qm", "feature"]);
        git(dir, &["checkout", "-q", "main"]);
        fs::write(dir.join("shared.txt"), "main\n").unwrap();
        fs::write(dir.join("both-added.txt"), "main\n").unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-qm", "main"]);
        assert!(!git_may_fail(dir, &["merge", "-q", "feature"]));
        fs::write(dir.join("other.txt"), "edited\n").unwrap();

        let status = read_status(dir, dir).unwrap();
        let (expected, expected_counts) = porcelain(dir);
        assert_eq!(listed(&status), expected);
        assert_eq!(counts(&status), expected_counts);
        assert_eq!(status.conflicted, 2);
        assert_eq!((status.staged, status.unstaged), (0, 1));
        assert_eq!(code_of(&status, "shared.txt"), Some("UU"));
        assert_eq!(code_of(&status, "both-added.txt"), Some("AA"));
        assert_eq!(status.branch.as_deref(), Some("main"));
    }

    #[test]
    fn upstream_with_ahead_and_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let remote = root.join("remote.git");
        fs::create_dir(&remote).unwrap();
        git(&remote, &["init", "-q", "--bare", "-b", "main"]);
        repo_with_commit(&root.join("seed"), &[("f", "1")]);
        git(
            &root.join("seed"),
            &["push", "-q", remote.to_str().unwrap(), "main"],
        );

        git(root, &["clone", "-q", "remote.git", "work"]);
        git(root, &["clone", "-q", "remote.git", "other"]);
        let work = root.join("work");
        let other = root.join("other");
        for n in 0..2 {
            fs::write(other.join("f"), format!("other {n}")).unwrap();
            git(&other, &["commit", "-qam", "other"]);
        }
        git(&other, &["push", "-q"]);
        fs::write(work.join("g"), "work").unwrap();
        git(&work, &["add", "g"]);
        git(&work, &["commit", "-qm", "work"]);
        git(&work, &["fetch", "-q"]);

        let status = read_status(root, &work).unwrap();
        assert_eq!(status.path, "work");
        assert_eq!(status.branch.as_deref(), Some("main"));
        assert_eq!(status.upstream.as_deref(), Some("origin/main"));
        assert_eq!((status.ahead, status.behind), (1, 2));
        assert_eq!(status.head_summary.as_deref(), Some("work"));
        let head = git(&work, &["rev-parse", "HEAD"]);
        assert_eq!(status.head_sha.as_deref(), Some(head.trim()));

        let other_status = read_status(root, &other).unwrap();
        assert_eq!(other_status.upstream.as_deref(), Some("origin/main"));
        assert_eq!((other_status.ahead, other_status.behind), (0, 0));

        let bare = read_status(root, &remote).unwrap();
        assert_eq!(bare.path, "remote.git");
        assert_eq!(bare.branch.as_deref(), Some("main"));
        assert!(bare.head_sha.is_some());
        assert_eq!(counts(&bare), [0, 0, 0, 0]);
        assert!(bare.changed_paths.is_empty());
    }

    #[test]
    fn detached_head_has_no_branch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        repo_with_commit(dir, &[("f", "1")]);
        git(dir, &["checkout", "-q", "--detach"]);

        let status = read_status(dir, dir).unwrap();
        assert_eq!(status.path, ".");
        assert_eq!(status.branch, None);
        assert_eq!(status.upstream, None);
        let head = git(dir, &["rev-parse", "HEAD"]);
        assert_eq!(status.head_sha.as_deref(), Some(head.trim()));
        assert_eq!(status.head_summary.as_deref(), Some("initial"));
    }

    #[test]
    fn unborn_and_empty_bare_repositories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("nested/unborn");
        init_repo(&dir);
        fs::write(dir.join("staged"), "x").unwrap();
        git(&dir, &["add", "staged"]);
        fs::write(dir.join("loose"), "y").unwrap();

        let status = read_status(root, &dir).unwrap();
        assert_eq!(status.path, "nested/unborn");
        assert_eq!(
            (status.branch.as_ref(), status.head_sha.as_ref()),
            (None, None)
        );
        assert_eq!(status.head_summary, None);
        assert_eq!(counts(&status), [1, 0, 1, 0]);
        assert_eq!(listed(&status), porcelain(&dir).0);

        let bare = root.join("empty.git");
        fs::create_dir(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare"]);
        let status = read_status(root, &bare).unwrap();
        assert_eq!(status.head_sha, None);
        assert_eq!(counts(&status), [0, 0, 0, 0]);

        assert!(read_status(root, &root.join("missing")).is_err());
    }

    #[test]
    fn long_lists_are_truncated_in_path_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        repo_with_commit(dir, &[("tracked", "x")]);
        let total = MAX_CHANGED_PATHS + 5;
        for n in 0..total {
            fs::write(dir.join(format!("file-{n:04}")), "x").unwrap();
        }

        let status = read_status(dir, dir).unwrap();
        assert_eq!(status.untracked as usize, total);
        assert!(status.changed_paths_truncated);
        assert_eq!(status.changed_paths.len(), MAX_CHANGED_PATHS);
        assert_eq!(status.changed_paths[0].path, "file-0000");
        assert!(
            status
                .changed_paths
                .windows(2)
                .all(|w| w[0].path < w[1].path)
        );
        assert_eq!(
            status.changed_paths.last().unwrap().path,
            format!("file-{:04}", MAX_CHANGED_PATHS - 1)
        );
    }

    #[test]
    fn ignored_means_ignored_and_untracked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        repo_with_commit(
            dir,
            &[(".gitignore", "*.log\ntarget/\n"), ("src/main.rs", "")],
        );
        fs::write(dir.join("kept.log"), "x").unwrap();
        git(dir, &["add", "-f", "kept.log"]);
        fs::create_dir(dir.join("target")).unwrap();
        let repo = Repository::open(dir).unwrap();

        assert!(is_ignored(&repo, Path::new("debug.log")));
        assert!(is_ignored(&repo, Path::new("target")));
        assert!(is_ignored(&repo, Path::new("target/debug/app")));
        assert!(!is_ignored(&repo, Path::new("kept.log")));
        assert!(!is_ignored(&repo, Path::new("src/main.rs")));
        assert!(!is_ignored(&repo, Path::new("src")));
        assert!(!is_ignored(&repo, Path::new("")));
        assert!(!is_ignored(&repo, &dir.join("debug.log")));
    }

    /// After each change, updating only the changed path gives exactly what a full read gives,
    /// or declines so that the caller reads everything.
    #[test]
    fn path_updates_match_full_reads_or_decline() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        repo_with_commit(
            dir,
            &[("a.txt", "a\n"), ("b.txt", "b\n"), ("sub/c.txt", "c\n")],
        );
        let mut known = read_full(dir, dir).unwrap();
        let check = |known: &mut FullStatus, path: &str| -> bool {
            let updated = update_paths(dir, known, &[PathBuf::from(path)]).unwrap();
            let full = read_full(dir, dir).unwrap();
            if let Some(updated) = &updated {
                assert_eq!(updated, &full, "update of {path} differs from a full read");
            }
            *known = full;
            updated.is_some()
        };
        std::fs::write(dir.join("a.txt"), "a2\n").unwrap();
        assert!(
            check(&mut known, "a.txt"),
            "editing a tracked file is a path update"
        );
        assert_eq!(
            (known.status.unstaged, known.changes["a.txt"].as_str()),
            (1, " M")
        );
        std::fs::write(dir.join("a.txt"), "a\n").unwrap();
        assert!(check(&mut known, "a.txt"));
        assert_eq!(known.status.unstaged, 0);
        std::fs::remove_file(dir.join("sub/c.txt")).unwrap();
        assert!(check(&mut known, "sub/c.txt"));
        assert_eq!(known.changes["sub/c.txt"], " D");
        git(dir, &["add", "b.txt"]);
        std::fs::write(dir.join("b.txt"), "b2\n").unwrap();
        git(dir, &["add", "b.txt"]);
        std::fs::write(dir.join("b.txt"), "b3\n").unwrap();
        assert!(check(&mut known, "b.txt"));
        assert_eq!(known.changes["b.txt"], "MM");
        // New and untracked files decline; so does anything once an untracked directory is listed.
        std::fs::write(dir.join("new.txt"), "n").unwrap();
        assert!(!check(&mut known, "new.txt"));
        std::fs::create_dir(dir.join("fresh")).unwrap();
        std::fs::write(dir.join("fresh/x.txt"), "x").unwrap();
        assert!(!check(&mut known, "fresh/x.txt"));
        std::fs::write(dir.join("a.txt"), "a3\n").unwrap();
        assert!(
            !check(&mut known, "a.txt"),
            "an untracked directory is listed: read everything"
        );
    }
}
