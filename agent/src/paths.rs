//! Paths that remote tools name, resolved inside the workspace root and nowhere else.
//!
//! Every file a tool reads, lists or writes for a remote client goes through [`resolve`] first.
//! The rules, checked before anything is touched:
//!
//! - the path is relative to the root, or absolute and inside it;
//! - no NUL byte, at most [`MAX_PATH_BYTES`] bytes, and no `..` component at all (even one that
//!   would stay inside: there is never a need for it, and refusing it is simpler to trust);
//! - after following symlinks, the path (or, for a file to be created, its deepest existing
//!   ancestor) is still inside the canonical root: a symlink that leads out is refused.
//!
//! - no encoded or look-alike form of a dot or a separator: `%2e`, `%2f`, `%5c`, `%00` (in
//!   any case), a backslash, or the full-width, small and one-dot-leader dots (`．`, `﹒`, `․`).
//!   Nothing is decoded here, so these would be plain names inside the root; but another layer
//!   (a client, a proxy, a shell) might decode them, so a path that holds one is refused.
//!   Legitimate file names almost never do.

use std::path::{Component, Path, PathBuf};

/// The longest path a tool may name, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest name in a path, in bytes (the file systems' limit).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The path holds a NUL byte.
    #[error("the path contains a NUL byte")]
    Nul,
    /// The path is longer than [`MAX_PATH_BYTES`], or one of its names than [`MAX_NAME_BYTES`].
    #[error(
        "the path is longer than {MAX_PATH_BYTES} bytes or has a name longer than {MAX_NAME_BYTES}"
    )]
    TooLong,
    /// The path has a `..` component.
    #[error("the path may not contain `..`")]
    Parent,
    /// The path holds an encoded or look-alike dot or separator.
    #[error(
        "the path may not contain encoded or look-alike dots and separators (%2e, %2f, %5c, %00, \\, full-width dots)"
    )]
    Encoded,
    /// The path starts with `~`, which names a home directory to a shell but is not expanded.
    #[error(
        "the path starts with `~`, which is not expanded: give a path inside the workspace root"
    )]
    Home,
    /// The path, or where a symlink in it leads, is outside the workspace root.
    #[error("{0} is outside the workspace root")]
    Outside(String),
    /// Nothing exists at the path (for reads).
    #[error("{0} does not exist")]
    NotFound(String),
    /// The file system refused to look (permissions, a name too long, …).
    #[error("cannot resolve {path}: {message}")]
    Io {
        /// The path as given.
        path: String,
        /// What the system said.
        message: String,
    },
}

/// What the caller will do with the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Read or list: the path must exist.
    Read,
    /// Write: the path may not exist yet, but its parent directory must.
    Write,
}

/// Resolves `requested` against the canonical workspace `root` (as `std::fs::canonicalize`
/// returns it) into a canonical path inside the root, or says why not.
pub fn resolve(root: &Path, requested: &str, intent: Intent) -> Result<PathBuf, PathError> {
    if requested.contains('\0') {
        return Err(PathError::Nul);
    }
    if requested.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if looks_encoded(requested) {
        return Err(PathError::Encoded);
    }
    if requested.starts_with('~') {
        return Err(PathError::Home);
    }
    let given = Path::new(requested);
    if given.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::Parent);
    }
    if given
        .components()
        .any(|c| c.as_os_str().len() > MAX_NAME_BYTES)
    {
        return Err(PathError::TooLong);
    }
    let joined = if given.is_absolute() {
        given.to_path_buf()
    } else {
        root.join(given)
    };
    if !joined.starts_with(root) {
        return Err(PathError::Outside(requested.to_owned()));
    }
    let io = |e: std::io::Error| PathError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    };
    match intent {
        Intent::Read => {
            let real = match std::fs::canonicalize(&joined) {
                Ok(real) => real,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(PathError::NotFound(requested.to_owned()));
                }
                Err(e) => return Err(io(e)),
            };
            inside(root, real, requested)
        }
        Intent::Write => {
            // The file may not exist yet: its parent must, inside the root; and if it does exist
            // (perhaps as a symlink), where it leads must be inside too.
            let name = joined
                .file_name()
                .ok_or_else(|| PathError::Outside(requested.to_owned()))?
                .to_owned();
            let parent = joined.parent().unwrap_or(root);
            let parent = match std::fs::canonicalize(parent) {
                Ok(p) => inside(root, p, requested)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(PathError::NotFound(format!("the directory of {requested}")));
                }
                Err(e) => return Err(io(e)),
            };
            let target = parent.join(name);
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(&target) {
                    Ok(real) => inside(root, real, requested),
                    // A dangling link: writing would create its target, wherever that is.
                    Err(_) => Err(PathError::Outside(requested.to_owned())),
                },
                _ => Ok(target),
            }
        }
    }
}

/// Creates the directories missing above `requested` (a path about to be written, or a
/// directory with `including_self`), after checking the path as [`resolve`] does and that the
/// nearest directory that exists is inside the root, so nothing is created outside it.
pub fn create_dirs(root: &Path, requested: &str, including_self: bool) -> Result<(), PathError> {
    // The same checks as a read of the root, on the text of the path.
    match resolve(root, requested, Intent::Read) {
        Ok(_) | Err(PathError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let given = Path::new(requested);
    let joined = if given.is_absolute() {
        given.to_path_buf()
    } else {
        root.join(given)
    };
    let target = if including_self {
        joined.as_path()
    } else {
        joined.parent().unwrap_or(root)
    };
    let mut existing = target;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(root);
    }
    let io = |e: std::io::Error| PathError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    };
    let real = std::fs::canonicalize(existing).map_err(io)?;
    inside(root, real, requested)?;
    std::fs::create_dir_all(target).map_err(io)
}

/// Whether `path` holds an escape or character that some layer could turn into `.`, `/`, `\`
/// or NUL.
fn looks_encoded(path: &str) -> bool {
    const LOOK_ALIKES: &[char] = &[
        '\\', '\u{ff0e}', '\u{fe52}', '\u{2024}', '\u{ff0f}', '\u{2215}',
    ];
    if path.contains(LOOK_ALIKES) {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
}

fn inside(root: &Path, real: PathBuf, requested: &str) -> Result<PathBuf, PathError> {
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(PathError::Outside(requested.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with a file, a directory, and symlinks in and out; and a secret outside it.
    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        secret: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join("README.md"), "hello").unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        let secret = base.join("secret.txt");
        std::fs::write(&secret, "do not read").unwrap();
        std::fs::create_dir(base.join("outside-dir")).unwrap();
        std::fs::write(base.join("outside-dir/x"), "x").unwrap();
        symlink(&secret, root.join("link-out")).unwrap();
        symlink(base.join("outside-dir"), root.join("dir-out")).unwrap();
        symlink("../secret.txt", root.join("relative-out")).unwrap();
        symlink(root.join("README.md"), root.join("link-in")).unwrap();
        symlink(base.join("nowhere"), root.join("dangling-out")).unwrap();
        symlink("/etc", root.join("src/deep/etc")).unwrap();
        Fixture {
            _dir: dir,
            root,
            secret,
        }
    }

    #[test]
    fn hostile_paths_are_refused_and_nothing_outside_is_ever_returned() {
        let f = fixture();
        let secret = f.secret.display().to_string();
        let long = "a/".repeat(MAX_PATH_BYTES);
        let long_name = "x".repeat(300);
        let hostile: Vec<String> = vec![
            "..".into(),
            "../secret.txt".into(),
            "../../etc/passwd".into(),
            "src/../../secret.txt".into(),
            "src/./../..".into(),
            "./../secret.txt".into(),
            "/etc/passwd".into(),
            secret.clone(),
            "/".into(),
            f.root.join("../secret.txt").display().to_string(),
            "link-out".into(),
            "dir-out/x".into(),
            "dir-out".into(),
            "relative-out".into(),
            "src/deep/etc/passwd".into(),
            "src/deep/etc".into(),
            "README.md\0".into(),
            "\0../secret.txt".into(),
            long.clone(),
            long_name.clone(),
            "%2e%2e/secret.txt".into(),
            "..%2fsecret.txt".into(),
            "..\\secret.txt".into(),
            "．．/secret.txt".into(),
            "%2E%2E%2Fsecret.txt".into(),
            "src%00.txt".into(),
            "dangling-out".into(),
        ];
        assert!(hostile.len() >= 20);
        for path in &hostile {
            for intent in [Intent::Read, Intent::Write] {
                let resolved = resolve(&f.root, path, intent);
                assert!(
                    resolved.is_err(),
                    "{path:?} ({intent:?}) resolved: {resolved:?}"
                );
            }
        }
        // The ones that try to leave are refused for what they are.
        let why = |p: &str| resolve(&f.root, p, Intent::Read).unwrap_err();
        assert_eq!(why("../secret.txt"), PathError::Parent);
        assert_eq!(why("/etc/passwd"), PathError::Outside("/etc/passwd".into()));
        assert_eq!(why("link-out"), PathError::Outside("link-out".into()));
        assert_eq!(why("dir-out/x"), PathError::Outside("dir-out/x".into()));
        assert_eq!(why("README.md\0"), PathError::Nul);
        for encoded in [
            "%2e%2e/secret.txt",
            "..\\secret.txt",
            "．．/secret.txt",
            "a%2Fb",
        ] {
            assert_eq!(why(encoded), PathError::Encoded, "{encoded}");
        }
        assert_eq!(why(&long), PathError::TooLong);
        assert_eq!(why(&long_name), PathError::TooLong);
        assert_eq!(
            resolve(&f.root, "dangling-out", Intent::Write),
            Err(PathError::Outside("dangling-out".into()))
        );
    }

    #[test]
    fn paths_inside_the_root_resolve() {
        let f = fixture();
        let r = |p: &str, i| resolve(&f.root, p, i);
        assert_eq!(r("README.md", Intent::Read), Ok(f.root.join("README.md")));
        assert_eq!(
            r("./src//main.rs", Intent::Read),
            Ok(f.root.join("src/main.rs"))
        );
        assert_eq!(r("", Intent::Read), Ok(f.root.clone()));
        assert_eq!(r(".", Intent::Read), Ok(f.root.clone()));
        let absolute = f.root.join("src/main.rs").display().to_string();
        assert_eq!(r(&absolute, Intent::Read), Ok(f.root.join("src/main.rs")));
        // A symlink that stays inside resolves to its target.
        assert_eq!(r("link-in", Intent::Read), Ok(f.root.join("README.md")));
        // A new file in an existing directory may be written; one in a missing directory not.
        assert_eq!(
            r("src/new.rs", Intent::Write),
            Ok(f.root.join("src/new.rs"))
        );
        assert!(matches!(
            r("missing/new.rs", Intent::Write),
            Err(PathError::NotFound(_))
        ));
        assert!(matches!(
            r("nope.txt", Intent::Read),
            Err(PathError::NotFound(_))
        ));
    }
}
