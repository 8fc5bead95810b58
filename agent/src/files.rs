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
            "\n[… cut: showing {} of {} bytes from byte {offset}; read on with an offset]\n",
            MAX_READ_BYTES, wanted
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
