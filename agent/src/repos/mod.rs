//! Git repositories under the workspace root: finding them, reading their state, watching them.
//!
//! - [`discover`] walks the root for work trees.
//! - [`read_status`] reads one repository's branch, upstream and changes as a
//!   [`fulcrum_protocol::RepoStatus`].
//! - [`RepoWatcher`] reports, debounced, which repository changed and when the set of
//!   repositories may have changed.

mod discover;
mod state;
#[cfg(test)]
pub(crate) mod test_support;
mod watch;

pub use discover::{SKIPPED_DIR_NAMES, discover};
pub use state::{FullStatus, is_ignored, read_full, read_status, update_paths};
pub use watch::{Changed, DEFAULT_TREE_DEPTH, RepoWatcher, WatchEvent};
