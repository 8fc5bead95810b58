//! Finding the git repositories under the workspace root.
//!
//! The walk uses the `ignore` crate so that it respects the `.gitignore` files of the
//! repositories it passes through, never enters hidden directories (including `.git`) and skips
//! vendored or generated trees by name, which keeps it fast on large checkouts.

use std::path::{Path, PathBuf};

use ignore::{DirEntry, WalkBuilder};

/// Directory names never walked into: dependency caches, build output and virtualenvs. They can
/// hold tens of thousands of files and are almost never where a developer keeps a repository.
pub const SKIPPED_DIR_NAMES: &[&str] = &[
    "node_modules",
    "vendor",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    "dist",
    "build",
    ".cache",
];

/// Absolute work-tree paths of the git repositories at or under `root`, sorted, at most
/// `max_repos` of them.
///
/// A directory is a repository when it holds a `.git` entry: a directory, or a file as in linked
/// worktrees and submodules. The walk goes at most `max_depth` levels below `root` (`root` itself
/// is depth 0), looks inside repositories for nested ones (submodules, clones inside clones),
/// respects `.gitignore`, and skips hidden directories and [`SKIPPED_DIR_NAMES`].
pub fn discover(root: &Path, max_depth: usize, max_repos: usize) -> Vec<PathBuf> {
    if max_repos == 0 {
        return Vec::new();
    }
    let root = match std::path::absolute(root) {
        Ok(root) => root,
        Err(err) => {
            tracing::warn!(root = %root.display(), %err, "cannot resolve the workspace root");
            return Vec::new();
        }
    };
    let mut repos = Vec::new();
    // Siblings are visited in name order, so the walk meets repositories in sorted path order
    // and can stop as soon as it has enough of them.
    for entry in tree_walker(&root, max_depth, |_| true)
        .sort_by_file_name(Ord::cmp)
        .build()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                tracing::debug!(%err, "skipping an unreadable entry while discovering repositories");
                continue;
            }
        };
        if is_dir(&entry) && has_git_entry(entry.path()) {
            repos.push(entry.into_path());
            if repos.len() == max_repos {
                break;
            }
        }
    }
    repos.sort();
    repos
}

/// A walker over the directories at most `max_depth` below `dir` that [`discover`] would visit
/// and `keep` accepts (a directory `keep` rejects is not entered). Only directories come out.
pub(crate) fn tree_walker<F>(dir: &Path, max_depth: usize, keep: F) -> WalkBuilder
where
    F: Fn(&DirEntry) -> bool + Send + Sync + 'static,
{
    let mut builder = WalkBuilder::new(dir);
    builder
        .max_depth(Some(max_depth))
        .follow_links(false)
        .hidden(true)
        .parents(true)
        .ignore(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .filter_entry(move |entry| is_dir(entry) && !is_skipped_name(entry) && keep(entry));
    builder
}

/// Whether the entry is a directory (not following symbolic links).
pub(crate) fn is_dir(entry: &DirEntry) -> bool {
    entry.file_type().is_some_and(|kind| kind.is_dir())
}

/// Whether `dir` holds a `.git` entry (directory or file), i.e. is the top of a work tree.
pub(crate) fn has_git_entry(dir: &Path) -> bool {
    dir.join(".git").symlink_metadata().is_ok()
}

fn is_skipped_name(entry: &DirEntry) -> bool {
    entry
        .file_name()
        .to_str()
        .is_some_and(|name| SKIPPED_DIR_NAMES.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::test_support::{git, init_repo};
    use std::fs;

    #[test]
    fn finds_root_and_nested_repos_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        init_repo(root);
        init_repo(&root.join("libs/b"));
        init_repo(&root.join("a"));
        init_repo(&root.join("libs/b/inner"));
        fs::create_dir_all(root.join("plain/dir")).unwrap();

        let found = discover(root, 5, 100);
        assert_eq!(
            found,
            vec![
                root.to_path_buf(),
                root.join("a"),
                root.join("libs/b"),
                root.join("libs/b/inner"),
            ]
        );
        assert!(found.iter().all(|p| p.is_absolute()));
    }

    #[test]
    fn skips_heavy_hidden_and_ignored_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        init_repo(&root.join("app"));
        fs::write(root.join("app/.gitignore"), "ignored-dir/\n").unwrap();
        for skipped in [
            "app/node_modules/dep",
            "app/target/dep",
            "app/ignored-dir/dep",
            "app/.hidden/dep",
            "vendor/dep",
            ".venv/dep",
        ] {
            init_repo(&root.join(skipped));
        }
        init_repo(&root.join("app/src/kept"));

        assert_eq!(
            discover(root, 5, 100),
            vec![root.join("app"), root.join("app/src/kept")]
        );
    }

    #[test]
    fn respects_max_depth_and_max_repos() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for repo in ["a", "b", "c", "x/y/deep"] {
            init_repo(&root.join(repo));
        }

        assert_eq!(
            discover(root, 2, 100),
            vec![root.join("a"), root.join("b"), root.join("c")]
        );
        assert_eq!(discover(root, 3, 100).len(), 4);
        assert_eq!(discover(root, 3, 2), vec![root.join("a"), root.join("b")]);
        assert!(discover(root, 3, 0).is_empty());
        assert!(discover(root, 0, 10).is_empty());
    }

    #[test]
    fn finds_a_worktree_whose_git_entry_is_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let main = root.join("main");
        init_repo(&main);
        fs::write(main.join("f"), "x").unwrap();
        git(&main, &["add", "f"]);
        git(&main, &["commit", "-qm", "init"]);
        git(
            &main,
            &["worktree", "add", "-q", "../wt", "-b", "wt-branch"],
        );

        assert!(root.join("wt/.git").is_file());
        assert_eq!(discover(root, 3, 100), vec![main, root.join("wt")]);
    }
}
