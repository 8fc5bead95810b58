//! Reading and listing workspace files for remote tools, within limits.
//!
//! Paths go through [`crate::paths::resolve`] first. Every answer is capped, and a cut answer
//! says so in plain text where it was cut, so a model reading it knows it did not see it all.

use std::{io::Read, path::Path};

use crate::paths::{Intent, PathError, resolve};

/// The most bytes of a file one read returns.
pub const MAX_READ_BYTES: usize = 256 * 1024;
/// The most entries one listing returns.
pub const MAX_ENTRIES: usize = 1000;
/// How much of a file is looked at to tell text from binary.
const SNIFF_BYTES: usize = 8 * 1024;

/// Why a file tool failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path was refused.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path names a directory where a file was expected, or the other way round.
    #[error("{0}")]
    Kind(String),
    /// The file is not text.
    #[error("{0} looks like a binary file; only text files are read")]
    Binary(String),
    /// Head and tail were both asked for, or a range is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The read failed.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path as given.
        path: String,
        /// What the system said.
        message: String,
    },
}

/// Which part of a file to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadRange {
    /// Only the first N lines.
    pub head: Option<usize>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Start at this byte.
    pub offset: Option<u64>,
    /// At most this many bytes (after `offset`).
    pub length: Option<u64>,
}

/// Reads a text file, or part of one, as the tool answer: at most [`MAX_READ_BYTES`], with a
/// note where it was cut.
pub fn read_file(root: &Path, requested: &str, range: ReadRange) -> Result<String, FileError> {
    if range.head.is_some() && range.tail.is_some() {
        return Err(FileError::BadRequest(
            "ask for head or tail, not both".into(),
        ));
    }
    let path = resolve(root, requested, Intent::Read)?;
    let io = |e: std::io::Error| FileError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(&path).map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::Kind(format!("{requested} is not a file")));
    }
    let size = meta.len();
    // The last lines of a big file are in its last bytes.
    let from_end = range.tail.is_some() && range.offset.is_none();
    let default_offset = if from_end {
        size.saturating_sub(MAX_READ_BYTES as u64)
    } else {
        0
    };
    let offset = range.offset.unwrap_or(default_offset).min(size);
    let wanted = range.length.unwrap_or(size - offset).min(size - offset);
    let mut file = std::fs::File::open(&path).map_err(io)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).map_err(io)?;
    let mut bytes = Vec::new();
    // Read one byte past the cap, to know whether there was more.
    let take = wanted.min(MAX_READ_BYTES as u64 + 1);
    file.take(take).read_to_end(&mut bytes).map_err(io)?;
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(FileError::Binary(requested.to_owned()));
    }
    let cut = bytes.len() > MAX_READ_BYTES;
    bytes.truncate(MAX_READ_BYTES);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(n) = range.head {
        text = text.split_inclusive('\n').take(n).collect();
    } else if let Some(n) = range.tail {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        text = lines[lines.len().saturating_sub(n)..].concat();
    }
    if cut && range.head.is_none() && range.tail.is_none() {
        text.push_str(&format!(
            "\n[… cut: showing {MAX_READ_BYTES} of {wanted} bytes from byte {offset}; read on with an offset]\n"
        ));
    }
    Ok(text)
}

/// Lists a directory: one line per entry, `[DIR] name` or `[FILE] name`, sorted by name, at
/// most [`MAX_ENTRIES`], with a note when there were more.
pub fn list_directory(root: &Path, requested: &str) -> Result<String, FileError> {
    let path = resolve(root, requested, Intent::Read)?;
    let io = |e: std::io::Error| FileError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    };
    if !path.is_dir() {
        return Err(FileError::Kind(format!("{requested} is not a directory")));
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = if entry.file_type().map_err(io)?.is_dir() {
            "[DIR]"
        } else {
            "[FILE]"
        };
        entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
    }
    entries.sort();
    let total = entries.len();
    let mut out: String = entries
        .iter()
        .take(MAX_ENTRIES)
        .map(|(name, kind)| format!("{kind} {name}\n"))
        .collect();
    if total > MAX_ENTRIES {
        out.push_str(&format!(
            "[… cut: showing {MAX_ENTRIES} of {total} entries]\n"
        ));
    }
    Ok(out)
}

/// The most entries one tree returns.
pub const MAX_TREE_ENTRIES: usize = 2000;
/// The deepest a tree goes.
pub const MAX_TREE_DEPTH: usize = 12;
/// The largest file `write_file` and `edit_file` write.
pub const MAX_WRITE_BYTES: usize = 512 * 1024;
/// Most edits in one `edit_file` call.
pub const MAX_EDITS: usize = 100;

/// Entries a tree never descends into: they are large and never what a model wants to read.
const TREE_SKIP: &[&str] = &[".git", "node_modules", "target"];

/// A directory tree as JSON, like the reference filesystem server's: `[{"name", "type",
/// "children"}]`, depth-first and sorted by name, at most `max_depth` levels (capped at
/// [`MAX_TREE_DEPTH`]) and [`MAX_TREE_ENTRIES`] entries. A cut tree ends with an entry of type
/// `"note"` saying so. `.git`, `node_modules` and `target` are listed but not entered; symlinks
/// are listed but not followed.
pub fn directory_tree(
    root: &Path,
    requested: &str,
    max_depth: Option<usize>,
) -> Result<String, FileError> {
    let path = resolve(root, requested, Intent::Read)?;
    if !path.is_dir() {
        return Err(FileError::Kind(format!("{requested} is not a directory")));
    }
    let depth = max_depth.unwrap_or(MAX_TREE_DEPTH).clamp(1, MAX_TREE_DEPTH);
    let mut budget = MAX_TREE_ENTRIES;
    let mut cut = false;
    // Iterative: a deep tree cannot overflow the stack.
    let mut tree = tree_level(&path, depth, &mut budget, &mut cut);
    if cut {
        tree.push(serde_json::json!({
            "name": format!("[… cut: the tree shows at most {MAX_TREE_ENTRIES} entries and {depth} levels]"),
            "type": "note",
        }));
    }
    Ok(serde_json::to_string_pretty(&tree).unwrap_or_default())
}

/// One directory's entries, with their subtrees down to `depth` levels.
fn tree_level(
    dir: &Path,
    depth: usize,
    budget: &mut usize,
    cut: &mut bool,
) -> Vec<serde_json::Value> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<(String, bool)> = read
        .flatten()
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for (name, is_dir) in entries {
        if *budget == 0 {
            *cut = true;
            break;
        }
        *budget -= 1;
        if is_dir {
            let children = if depth > 1 && !TREE_SKIP.contains(&name.as_str()) {
                tree_level(&dir.join(&name), depth - 1, budget, cut)
            } else {
                if depth <= 1 {
                    *cut = true;
                }
                Vec::new()
            };
            out.push(
                serde_json::json!({ "name": name, "type": "directory", "children": children }),
            );
        } else {
            out.push(serde_json::json!({ "name": name, "type": "file" }));
        }
    }
    out
}

/// Writes `content` as the whole file (created or replaced, with the directories above it)
/// atomically: to a temporary file in
/// the same directory, then renamed over the target, so a reader never sees half a file and a
/// failure leaves the old one. `still_wanted` is asked just before the rename: a call whose
/// caller gave up (it timed out) changes nothing. Returns what it did, for the tool answer.
pub fn write_file(
    root: &Path,
    requested: &str,
    content: &str,
    still_wanted: &dyn Fn() -> bool,
) -> Result<String, FileError> {
    if content.len() > MAX_WRITE_BYTES {
        return Err(FileError::BadRequest(format!(
            "content of {} bytes exceeds the {MAX_WRITE_BYTES}-byte limit",
            content.len()
        )));
    }
    let path = match resolve(root, requested, Intent::Write) {
        Err(PathError::NotFound(_)) => {
            crate::paths::create_dirs(root, requested, false)?;
            resolve(root, requested, Intent::Write)?
        }
        found => found?,
    };
    if path.is_dir() {
        return Err(FileError::Kind(format!("{requested} is a directory")));
    }
    replace_atomically(&path, content.as_bytes(), still_wanted).map_err(|e| FileError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    })?;
    Ok(format!("wrote {} bytes to {requested}", content.len()))
}

/// One replacement in [`edit_file`]: `old_text` must occur exactly once.
pub use fulcrum_protocol::tool_args::FileEdit as Edit;

/// Applies `edits` in order to a text file and returns a unified diff of the change; with
/// `dry_run`, only the diff. Each `old_text` must occur exactly once in the text as edited so
/// far; otherwise nothing is written and the answer says which edit failed. `still_wanted` is
/// asked just before the file is replaced, as for [`write_file`].
pub fn edit_file(
    root: &Path,
    requested: &str,
    edits: &[Edit],
    dry_run: bool,
    still_wanted: &dyn Fn() -> bool,
) -> Result<String, FileError> {
    if edits.is_empty() || edits.len() > MAX_EDITS {
        return Err(FileError::BadRequest(format!(
            "give 1 to {MAX_EDITS} edits"
        )));
    }
    let path = resolve(root, requested, Intent::Write)?;
    let io = |e: std::io::Error| FileError::Io {
        path: requested.to_owned(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(&path).map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::Kind(format!("{requested} is not a file")));
    }
    if meta.len() > MAX_WRITE_BYTES as u64 {
        return Err(FileError::BadRequest(format!(
            "{requested} is larger than the {MAX_WRITE_BYTES}-byte limit for edits"
        )));
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(FileError::Binary(requested.to_owned()));
    }
    let original = String::from_utf8(bytes)
        .map_err(|_| FileError::BadRequest(format!("{requested} is not UTF-8 text")))?;
    let mut text = original.clone();
    for (i, edit) in edits.iter().enumerate() {
        if edit.old_text.is_empty() {
            return Err(FileError::BadRequest(format!(
                "edit {}: oldText is empty",
                i + 1
            )));
        }
        match text.matches(edit.old_text.as_str()).count() {
            1 => text = text.replacen(&edit.old_text, &edit.new_text, 1),
            0 => {
                return Err(FileError::BadRequest(format!(
                    "edit {}: oldText was not found in {requested}; nothing was changed",
                    i + 1
                )));
            }
            n => {
                return Err(FileError::BadRequest(format!(
                    "edit {}: oldText occurs {n} times in {requested}; give more context so it \
                     occurs once. Nothing was changed",
                    i + 1
                )));
            }
        }
        if text.len() > MAX_WRITE_BYTES {
            return Err(FileError::BadRequest(format!(
                "the edited file would exceed the {MAX_WRITE_BYTES}-byte limit"
            )));
        }
    }
    let diff = similar::TextDiff::from_lines(&original, &text)
        .unified_diff()
        .header(requested, requested)
        .to_string();
    if !dry_run {
        replace_atomically(&path, text.as_bytes(), still_wanted).map_err(io)?;
    }
    Ok(diff)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, keeps the old file's
/// permissions, and renames it over `path`, unless `still_wanted` says no by then.
fn replace_atomically(
    path: &Path,
    bytes: &[u8],
    still_wanted: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    if !still_wanted() {
        return Err(std::io::Error::other(
            "the call timed out before the file was replaced; nothing was changed",
        ));
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("five.txt"), "1\n2\n3\n4\n5\n").unwrap();
        std::fs::write(root.join("blob.bin"), [0u8, 1, 2, 3]).unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        (dir, root)
    }

    #[test]
    fn reads_whole_files_and_parts_of_them() {
        let (_d, root) = root();
        let read = |r| read_file(&root, "five.txt", r).unwrap();
        assert_eq!(read(ReadRange::default()), "1\n2\n3\n4\n5\n");
        let head = ReadRange {
            head: Some(2),
            ..Default::default()
        };
        assert_eq!(read(head), "1\n2\n");
        let tail = ReadRange {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(read(tail), "4\n5\n");
        let bytes = ReadRange {
            offset: Some(2),
            length: Some(4),
            ..Default::default()
        };
        assert_eq!(read(bytes), "2\n3\n");
        let past_end = ReadRange {
            offset: Some(1000),
            ..Default::default()
        };
        assert_eq!(read(past_end), "");
        let both = ReadRange {
            head: Some(1),
            tail: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            read_file(&root, "five.txt", both),
            Err(FileError::BadRequest(_))
        ));
    }

    #[test]
    fn big_files_are_cut_with_a_visible_note_and_binaries_refused() {
        let (_d, root) = root();
        let big = "x".repeat(MAX_READ_BYTES + 10);
        std::fs::write(root.join("big.txt"), &big).unwrap();
        let text = read_file(&root, "big.txt", ReadRange::default()).unwrap();
        assert!(text.starts_with(&big[..MAX_READ_BYTES]));
        assert!(
            text.contains(&format!("showing {MAX_READ_BYTES} of {} bytes", big.len())),
            "{}",
            &text[MAX_READ_BYTES..]
        );
        let mut lines: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        lines.push_str("the end\n");
        std::fs::write(root.join("lines.txt"), &lines).unwrap();
        let tail = ReadRange {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(
            read_file(&root, "lines.txt", tail).unwrap(),
            "line 99999\nthe end\n"
        );
        assert!(matches!(
            read_file(&root, "blob.bin", ReadRange::default()),
            Err(FileError::Binary(_))
        ));
        assert!(matches!(
            read_file(&root, "src", ReadRange::default()),
            Err(FileError::Kind(_))
        ));
        assert!(matches!(
            read_file(&root, "../etc/passwd", ReadRange::default()),
            Err(FileError::Path(PathError::Parent))
        ));
    }

    #[test]
    fn trees_are_bounded_and_skip_heavy_directories() {
        let (_d, root) = root();
        std::fs::create_dir_all(root.join("src/a/b")).unwrap();
        std::fs::write(root.join("src/a/b/deep.rs"), "").unwrap();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        let tree: serde_json::Value =
            serde_json::from_str(&directory_tree(&root, ".", None).unwrap()).unwrap();
        let names: Vec<&str> = tree
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [".git", "blob.bin", "five.txt", "src"]);
        assert_eq!(tree[0]["children"], serde_json::json!([]));
        assert_eq!(
            tree[3]["children"][0]["children"][0]["children"][0]["name"],
            "deep.rs"
        );
        let shallow = directory_tree(&root, ".", Some(1)).unwrap();
        assert!(shallow.contains("[… cut:"), "{shallow}");
        assert!(!shallow.contains("deep.rs"));
    }

    #[test]
    fn writes_are_whole_and_edits_exact() {
        let (_d, root) = root();
        assert_eq!(
            write_file(&root, "src/new.txt", "alpha\nbeta\n", &|| true).unwrap(),
            "wrote 11 bytes to src/new.txt"
        );
        let diff = edit_file(
            &root,
            "src/new.txt",
            &[Edit {
                old_text: "beta".into(),
                new_text: "gamma".into(),
            }],
            true,
            &|| true,
        )
        .unwrap();
        assert!(diff.contains("-beta\n+gamma"), "{diff}");
        // A dry run changes nothing.
        assert_eq!(
            std::fs::read_to_string(root.join("src/new.txt")).unwrap(),
            "alpha\nbeta\n"
        );
        let edit = |old: &str| Edit {
            old_text: old.into(),
            new_text: "x".into(),
        };
        edit_file(&root, "src/new.txt", &[edit("beta")], false, &|| true).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("src/new.txt")).unwrap(),
            "alpha\nx\n"
        );
        // A missing or ambiguous text, even after a good edit, changes nothing.
        std::fs::write(root.join("twice.txt"), "a a").unwrap();
        for bad in [vec![edit("zzz")], vec![edit("a")]] {
            assert!(matches!(
                edit_file(&root, "twice.txt", &bad, false, &|| true),
                Err(FileError::BadRequest(_))
            ));
        }
        assert_eq!(
            std::fs::read_to_string(root.join("twice.txt")).unwrap(),
            "a a"
        );
        assert!(matches!(
            write_file(&root, "src", "x", &|| true),
            Err(FileError::Kind(_))
        ));
        assert!(matches!(
            write_file(&root, "big", &"x".repeat(MAX_WRITE_BYTES + 1), &|| true),
            Err(FileError::BadRequest(_))
        ));
        assert!(matches!(
            write_file(&root, "/tmp/out.txt", "x", &|| true),
            Err(FileError::Path(PathError::Outside(_)))
        ));
        // Missing directories are made, inside the root only.
        write_file(&root, "new/deep/er/f.txt", "x", &|| true).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("new/deep/er/f.txt")).unwrap(),
            "x"
        );
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        assert!(matches!(
            write_file(&root, "out/sub/f.txt", "x", &|| true),
            Err(FileError::Path(PathError::Outside(_)))
        ));
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn listings_are_sorted_typed_and_capped() {
        let (_d, root) = root();
        assert_eq!(
            list_directory(&root, ".").unwrap(),
            "[FILE] blob.bin\n[FILE] five.txt\n[DIR] src\n"
        );
        for i in 0..MAX_ENTRIES + 5 {
            std::fs::write(root.join("src").join(format!("f{i:04}")), "").unwrap();
        }
        let listing = list_directory(&root, "src").unwrap();
        assert_eq!(listing.lines().count(), MAX_ENTRIES + 1);
        assert!(listing.ends_with(&format!(
            "[… cut: showing {MAX_ENTRIES} of {} entries]\n",
            MAX_ENTRIES + 5
        )));
        assert!(matches!(
            list_directory(&root, "five.txt"),
            Err(FileError::Kind(_))
        ));
        assert!(matches!(
            list_directory(&root, "/"),
            Err(FileError::Path(PathError::Outside(_)))
        ));
    }
}
