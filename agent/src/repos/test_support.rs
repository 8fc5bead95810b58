//! Helpers for the tests of this module: real repositories made with the `git` command.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs `git` in `dir` with a fixed identity and no user or system configuration, panicking
/// when it fails, and returns its standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args).output().expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git output is UTF-8")
}

/// Like [`git`], but returns whether it succeeded instead of panicking (for merges that
/// are expected to conflict).
pub fn git_may_fail(dir: &Path, args: &[&str]) -> bool {
    git_command(dir, args)
        .output()
        .expect("run git")
        .status
        .success()
}

fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    command
}

/// Creates `dir` (and its parents) and makes it an empty repository on branch `main`.
pub fn init_repo(dir: &Path) {
    fs::create_dir_all(dir).expect("create repository directory");
    git(dir, &["init", "-q", "-b", "main"]);
}

/// Creates a repository at `dir` with one commit holding `files` (path, contents).
pub fn repo_with_commit(dir: &Path, files: &[(&str, &str)]) {
    init_repo(dir);
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directory");
        }
        fs::write(path, contents).expect("write file");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "initial"]);
}
