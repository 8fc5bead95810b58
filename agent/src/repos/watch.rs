//! Watching repositories for changes, cheaply and debounced.
//!
//! Rather than one recursive watch over the whole root (which on Linux costs an inotify watch for
//! every directory of every `node_modules` and `target`), the watcher adds non-recursive watches:
//!
//! - every directory of each repository's work tree that git does not ignore (walked with
//!   `ignore::WalkBuilder`, skipping `.git` and nested repositories, which have their own);
//! - each repository's git directory (`HEAD`, `index`, `packed-refs`, `MERGE_HEAD`, ...), plus its
//!   `refs/` directory recursively; for linked worktrees also the shared ("common") git directory;
//! - the directories between the root and the repositories, down to a maximum depth, so that a
//!   repository appearing there is noticed.
//!
//! Directories created later get watches of their own. Events are filtered on notify's thread
//! (reads and duplicate rename events are dropped) and then, on a thread of our own, mapped to a
//! repository, filtered again (lock files, objects, logs, ignored paths) and debounced per
//! repository before they come out of the [`tokio::sync::mpsc::Receiver`] as [`WatchEvent`]s.
//!
//! Inside a git directory the files that count are `HEAD`, `index`, `packed-refs`, `config`
//! (upstream settings), `MERGE_HEAD`, `CHERRY_PICK_HEAD`, `REVERT_HEAD` and anything under
//! `refs/` except `*.lock` files. `ORIG_HEAD` and `FETCH_HEAD` do not count: they change only
//! together with refs that do, or without changing anything the status shows.
//!
//! A change inside a submodule is also reported for its superproject (when both are watched),
//! whose status shows the submodule as modified. Known gaps: a directory that matches an ignore
//! rule but holds force-added files is not watched, and edits to `.git/info/exclude` go unseen.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use git2::Repository;
use ignore::WalkBuilder;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::discover::{has_git_entry, is_dir, tree_walker};
use super::state::is_ignored;

/// How deep below the root [`RepoWatcher::start`] looks for new repositories, like
/// [`super::discover`]'s `max_depth`. Use [`RepoWatcher::start_with_depth`] to choose.
pub const DEFAULT_TREE_DEPTH: usize = 4;

/// A change is reported at the latest this many debounce periods after its first event, even
/// if events keep coming.
const MAX_DELAY_FACTOR: u32 = 5;

/// Capacity of the channel of [`WatchEvent`]s.
const CHANNEL_CAPACITY: usize = 256;

/// Files in a git directory whose changes change the repository's status.
const GIT_DIR_FILES: &[&str] = &[
    "HEAD",
    "index",
    "packed-refs",
    "config",
    "MERGE_HEAD",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
];

/// Files in the common git directory of a linked worktree that matter to the worktree.
const COMMON_DIR_FILES: &[&str] = &["packed-refs", "config"];

/// Most changed paths reported for one repository before the watcher says "everything".
const MAX_HINTED_PATHS: usize = 32;

/// What changed in a repository, as far as the watcher can tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Changed {
    /// Anything may have changed (the git directory, a new directory, lost events, many paths):
    /// read the whole status.
    Everything,
    /// Only these work-tree paths (relative to the work tree) changed.
    Paths(Vec<PathBuf>),
}

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchEvent {
    /// Something in this repository (its work tree as given to [`RepoWatcher::start`]) changed:
    /// read its status again, all of it or only the paths named.
    RepoChanged(PathBuf, Changed),
    /// A repository may have appeared or disappeared under the root: discover again (and
    /// restart the watcher with the new list).
    TreeChanged,
}

/// Watches a set of repositories under a root. Dropping it stops watching and, shortly after,
/// closes the event channel.
#[derive(Debug)]
pub struct RepoWatcher {
    control: std_mpsc::Sender<Message>,
}

impl RepoWatcher {
    /// Starts watching `repos` (work-tree paths, as from [`super::discover`]) and the directories
    /// under `root` down to [`DEFAULT_TREE_DEPTH`].
    ///
    /// A repository's changes are reported once it has been quiet for `debounce`, and at the
    /// latest `5 × debounce` after its first change. This blocks while it adds the watches (a walk
    /// of every work tree), so call it from a blocking context such as `spawn_blocking`. When it
    /// returns, every change from then on is seen.
    pub fn start(
        root: &Path,
        repos: &[PathBuf],
        debounce: Duration,
    ) -> anyhow::Result<(RepoWatcher, mpsc::Receiver<WatchEvent>)> {
        Self::start_with_depth(root, repos, debounce, DEFAULT_TREE_DEPTH)
    }

    /// Like [`RepoWatcher::start`], watching for new repositories down to `max_depth` levels
    /// below `root` (the `max_depth` given to [`super::discover`]).
    pub fn start_with_depth(
        root: &Path,
        repos: &[PathBuf],
        debounce: Duration,
        max_depth: usize,
    ) -> anyhow::Result<(RepoWatcher, mpsc::Receiver<WatchEvent>)> {
        let root = normalize(&std::path::absolute(root).context("resolving the root")?);
        let (control, inbox) = std_mpsc::channel();
        let notify_tx = control.clone();
        let watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
            if is_worth_forwarding(&result) {
                // The receiver only goes away when the worker stops, and then nobody cares.
                let _ = notify_tx.send(Message::Notify(result));
            }
        })
        .context("creating the file watcher")?;

        let mut worker = Worker::new(root, repos, debounce, max_depth, watcher);
        worker.watch_everything();
        let (outbox, events) = mpsc::channel(CHANNEL_CAPACITY);
        thread::Builder::new()
            .name("fulcrum-repo-watch".to_owned())
            .spawn(move || worker.run(&inbox, &outbox))
            .context("starting the repository watcher thread")?;
        Ok((RepoWatcher { control }, events))
    }
}

impl Drop for RepoWatcher {
    fn drop(&mut self) {
        // Fails only if the worker already stopped.
        let _ = self.control.send(Message::Stop);
    }
}

/// What the worker thread receives.
enum Message {
    Notify(notify::Result<Event>),
    Stop,
}

/// Cheap filter run on notify's thread: drops reads (opening files and directories, which our own
/// status reads cause) and the rename events that only repeat a `From` and a `To`.
fn is_worth_forwarding(result: &notify::Result<Event>) -> bool {
    match result {
        Err(_) => true,
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => false,
            _ => true,
        },
    }
}

/// What happened to a path, as far as the watcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Created or moved here.
    Appeared,
    /// Removed or moved away.
    Vanished,
    /// Written to, or its metadata changed.
    Modified,
}

impl Change {
    fn of(kind: &EventKind, path: &Path) -> Option<Change> {
        match kind {
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                Some(Change::Appeared)
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                Some(Change::Vanished)
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
            // A rename whose direction the backend does not say.
            EventKind::Modify(ModifyKind::Name(_)) => Some(if path.symlink_metadata().is_ok() {
                Change::Appeared
            } else {
                Change::Vanished
            }),
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Modified),
            EventKind::Access(_) => None,
            EventKind::Modify(_) | EventKind::Any | EventKind::Other => Some(Change::Modified),
        }
    }
}

/// What a change is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    /// The repository at this index of [`Worker::repos`].
    Repo(usize),
    /// The set of repositories.
    Tree,
}

/// Per-target debouncing: a target is due once it has been quiet for `quiet`, or `max_delay`
/// after its first change, whichever comes first.
#[derive(Debug)]
struct Debouncer {
    quiet: Duration,
    max_delay: Duration,
    pending: HashMap<Target, Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
}

impl Debouncer {
    fn new(quiet: Duration) -> Self {
        Debouncer {
            quiet,
            max_delay: quiet.saturating_mul(MAX_DELAY_FACTOR),
            pending: HashMap::new(),
        }
    }

    /// Records a change of `target` at `now`.
    fn touch(&mut self, target: Target, now: Instant) {
        self.pending
            .entry(target)
            .and_modify(|pending| pending.last = now)
            .or_insert(Pending {
                first: now,
                last: now,
            });
    }

    fn due_at(&self, pending: &Pending) -> Instant {
        (pending.last + self.quiet).min(pending.first + self.max_delay)
    }

    /// Whether a change of `target` is waiting to be reported.
    fn is_pending(&self, target: Target) -> bool {
        self.pending.contains_key(&target)
    }

    /// When the next target falls due; `None` when nothing is pending.
    fn deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| self.due_at(p)).min()
    }

    /// Removes and returns the targets due at `now`, in a stable order.
    fn take_due(&mut self, now: Instant) -> Vec<Target> {
        let mut due: Vec<Target> = self
            .pending
            .iter()
            .filter(|(_, pending)| self.due_at(pending) <= now)
            .map(|(target, _)| *target)
            .collect();
        for target in &due {
            self.pending.remove(target);
        }
        due.sort();
        due
    }
}

/// One watched repository.
struct WatchedRepo {
    /// The work tree, as given to [`RepoWatcher::start`] (made absolute).
    workdir: PathBuf,
    /// Kept open for ignore checks, which libgit2 caches.
    repo: Repository,
    /// Indexes of the repositories that have this one as a submodule: their status shows it.
    superprojects: Vec<usize>,
}

/// The role of a directory that is the base of a watched area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// The work tree of repository `i`.
    Work(usize),
    /// The git directory of repository `i`.
    GitDir(usize),
    /// The common git directory of repository `i`, a linked worktree.
    CommonDir(usize),
}

/// The state of the watcher thread.
struct Worker {
    root: PathBuf,
    max_depth: usize,
    repos: Vec<WatchedRepo>,
    /// Base directories of work trees and git directories, and what they are.
    areas: HashMap<PathBuf, Vec<Area>>,
    watcher: RecommendedWatcher,
    warned_watch_limit: bool,
    debouncer: Debouncer,
    /// What changed in each repository with a change pending; absent means everything.
    hints: HashMap<usize, Vec<PathBuf>>,
}

impl Worker {
    fn new(
        root: PathBuf,
        repos: &[PathBuf],
        debounce: Duration,
        max_depth: usize,
        watcher: RecommendedWatcher,
    ) -> Self {
        let mut worker = Worker {
            root,
            max_depth,
            repos: Vec::new(),
            areas: HashMap::new(),
            watcher,
            warned_watch_limit: false,
            debouncer: Debouncer::new(debounce),
            hints: HashMap::new(),
        };
        for workdir in repos {
            worker.open_repo(workdir);
        }
        worker.find_superprojects();
        worker
    }

    /// Opens the repository at `workdir` and records its areas; logs and skips it on failure.
    fn open_repo(&mut self, workdir: &Path) {
        let workdir = match std::path::absolute(workdir) {
            Ok(path) => normalize(&path),
            Err(err) => {
                tracing::warn!(path = %workdir.display(), %err, "cannot resolve repository path");
                return;
            }
        };
        let repo = match Repository::open(&workdir) {
            Ok(repo) if !repo.is_bare() => repo,
            Ok(_) => {
                tracing::debug!(path = %workdir.display(), "not watching a bare repository");
                return;
            }
            Err(err) => {
                tracing::warn!(path = %workdir.display(), %err, "cannot open repository to watch it");
                return;
            }
        };
        let index = self.repos.len();
        let git_dir = normalize(repo.path());
        let common_dir = normalize(repo.commondir());
        self.add_area(workdir.clone(), Area::Work(index));
        if common_dir != git_dir {
            self.add_area(common_dir, Area::CommonDir(index));
        }
        self.add_area(git_dir, Area::GitDir(index));
        self.repos.push(WatchedRepo {
            workdir,
            repo,
            superprojects: Vec::new(),
        });
    }

    fn add_area(&mut self, dir: PathBuf, area: Area) {
        self.areas.entry(dir).or_default().push(area);
    }

    /// Links each repository to the innermost enclosing repository that records it as a
    /// submodule (a gitlink in its index).
    fn find_superprojects(&mut self) {
        for inner in 0..self.repos.len() {
            let Some(outer) = self.innermost_enclosing(inner) else {
                continue;
            };
            let Ok(rel) = self.repos[inner]
                .workdir
                .strip_prefix(&self.repos[outer].workdir)
            else {
                continue;
            };
            if is_gitlink(&self.repos[outer].repo, rel) {
                self.repos[inner].superprojects.push(outer);
            }
        }
    }

    fn innermost_enclosing(&self, inner: usize) -> Option<usize> {
        let workdir = &self.repos[inner].workdir;
        (0..self.repos.len())
            .filter(|&outer| outer != inner)
            .filter(|&outer| {
                let outer_dir = &self.repos[outer].workdir;
                workdir != outer_dir && workdir.starts_with(outer_dir)
            })
            .max_by_key(|&outer| self.repos[outer].workdir.components().count())
    }

    /// Adds the initial watches: git directories, work trees, and the directories between the
    /// root and the repositories.
    fn watch_everything(&mut self) {
        let mut git_dirs_done = HashSet::new();
        for index in 0..self.repos.len() {
            let repo = &self.repos[index].repo;
            let git_dirs = [normalize(repo.path()), normalize(repo.commondir())];
            for git_dir in git_dirs {
                if git_dirs_done.insert(git_dir.clone()) {
                    self.watch_git_dir(&git_dir);
                }
            }
            let workdir = self.repos[index].workdir.clone();
            self.watch_work_dirs(&workdir);
        }
        if !has_git_entry(&self.root) {
            let root = self.root.clone();
            self.watch_tree_dirs(&root, 0);
        }
    }

    fn watch_git_dir(&mut self, git_dir: &Path) {
        self.add_watch(git_dir, RecursiveMode::NonRecursive);
        let refs = git_dir.join("refs");
        if refs.is_dir() {
            self.add_watch(&refs, RecursiveMode::Recursive);
        }
    }

    /// Watches `dir`, a directory of a work tree, and the directories below it that git does not
    /// ignore, leaving out `.git` and nested repositories. Returns whether it met a repository
    /// (`dir` itself included).
    fn watch_work_dirs(&mut self, dir: &Path) -> bool {
        let found_repo = Arc::new(AtomicBool::new(false));
        let walk = work_walker(dir, Arc::clone(&found_repo)).build();
        let became_repo = self.watch_walked_dirs(walk);
        found_repo.load(Ordering::Relaxed) || became_repo
    }

    /// Watches `dir`, `depth` levels below the root and not in a repository, and the directories
    /// below it down to the maximum depth, except hidden, skipped and ignored ones and
    /// repositories. Returns whether it met a repository (`dir` itself included).
    fn watch_tree_dirs(&mut self, dir: &Path, depth: usize) -> bool {
        let found_repo = Arc::new(AtomicBool::new(false));
        let walk = tree_walker(dir, self.max_depth.saturating_sub(depth), {
            let found_repo = Arc::clone(&found_repo);
            move |entry| {
                let is_repo = has_git_entry(entry.path());
                if is_repo {
                    found_repo.store(true, Ordering::Relaxed);
                }
                !is_repo
            }
        })
        .build();
        let became_repo = self.watch_walked_dirs(walk);
        found_repo.load(Ordering::Relaxed) || became_repo
    }

    /// Adds a non-recursive watch on each directory of `walk`. Each directory is watched when it
    /// comes out of the walk, before its entries are read, so an entry created meanwhile is
    /// either walked or reported.
    ///
    /// Returns whether one of the directories holds a `.git` entry once watched: a `.git`
    /// created between the walk's look and the watch would otherwise go unnoticed.
    fn watch_walked_dirs(&mut self, walk: ignore::Walk) -> bool {
        let mut holds_repo = false;
        for entry in walk {
            match entry {
                Ok(entry) if is_dir(&entry) => {
                    self.add_watch(entry.path(), RecursiveMode::NonRecursive);
                    holds_repo = holds_repo || has_git_entry(entry.path());
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(%err, "skipping an unreadable directory"),
            }
        }
        holds_repo
    }

    fn add_watch(&mut self, path: &Path, mode: RecursiveMode) {
        let Err(err) = self.watcher.watch(path, mode) else {
            return;
        };
        if matches!(err.kind, notify::ErrorKind::MaxFilesWatch) {
            if !self.warned_watch_limit {
                self.warned_watch_limit = true;
                tracing::warn!(
                    "out of inotify watches (raise fs.inotify.max_user_watches): \
                     changes in some directories will be missed"
                );
            }
        } else {
            tracing::debug!(path = %path.display(), %err, "cannot watch directory");
        }
    }

    /// The worker loop: waits for file events (with a timeout only while a change is pending),
    /// and sends the changes that fall due.
    fn run(mut self, inbox: &std_mpsc::Receiver<Message>, outbox: &mpsc::Sender<WatchEvent>) {
        loop {
            let received = match self.debouncer.deadline() {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => {
                    inbox.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match received {
                Ok(Message::Notify(result)) => self.on_notify(result, Instant::now()),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if !self.send_due(Instant::now(), outbox) {
                break;
            }
        }
        tracing::debug!("repository watcher stopped");
    }

    /// Sends the changes due at `now`; false once nobody listens any more.
    fn send_due(&mut self, now: Instant, outbox: &mpsc::Sender<WatchEvent>) -> bool {
        let mut events = Vec::new();
        for target in self.debouncer.take_due(now) {
            let event = match target {
                Target::Repo(index) if self.repos[index].workdir.exists() => {
                    let changed = match self.hints.remove(&index) {
                        Some(paths) => Changed::Paths(paths),
                        None => Changed::Everything,
                    };
                    WatchEvent::RepoChanged(self.repos[index].workdir.clone(), changed)
                }
                // A repository that vanished changes the tree rather than itself.
                Target::Repo(_) | Target::Tree => WatchEvent::TreeChanged,
            };
            if !events.contains(&event) {
                events.push(event);
            }
        }
        for event in events {
            // Blocks only while the channel is full; this is a thread of its own.
            if outbox.blocking_send(event).is_err() {
                return false;
            }
        }
        !outbox.is_closed()
    }

    fn on_notify(&mut self, result: notify::Result<Event>, now: Instant) {
        let event = match result {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%err, "file watcher error");
                return;
            }
        };
        if event.need_rescan() {
            // Events were lost: anything may have changed.
            tracing::debug!("file watcher asked for a rescan");
            for index in 0..self.repos.len() {
                self.touch_repo(index, now);
            }
            self.debouncer.touch(Target::Tree, now);
            return;
        }
        for path in &event.paths {
            if let Some(change) = Change::of(&event.kind, path) {
                self.on_path(change, path, now);
            }
        }
    }

    fn on_path(&mut self, change: Change, path: &Path, now: Instant) {
        if change != Change::Modified && self.changes_tree(change, path) {
            self.debouncer.touch(Target::Tree, now);
        }
        let Some((base, areas)) = self.locate(path) else {
            if path.starts_with(&self.root) {
                self.on_tree_path(change, path, now);
            }
            return;
        };
        let Ok(rel) = path.strip_prefix(&base) else {
            return;
        };
        for area in areas {
            match area {
                Area::Work(index) => self.on_work_path(index, change, path, rel, now),
                Area::GitDir(index) if is_relevant_git_path(rel, GIT_DIR_FILES) => {
                    self.touch_repo(index, now);
                }
                Area::CommonDir(index) if is_relevant_git_path(rel, COMMON_DIR_FILES) => {
                    self.touch_repo(index, now);
                }
                Area::GitDir(_) | Area::CommonDir(_) => {}
            }
        }
    }

    /// Whether `path` appearing or vanishing may add or remove a repository: it is a `.git`
    /// entry, or it vanished and was a repository or held one.
    fn changes_tree(&self, change: Change, path: &Path) -> bool {
        path.file_name() == Some(OsStr::new(".git"))
            || (change == Change::Vanished
                && self.repos.iter().any(|repo| repo.workdir.starts_with(path)))
    }

    /// The nearest base directory above `path` and its areas; `None` outside all of them.
    fn locate(&self, path: &Path) -> Option<(PathBuf, Vec<Area>)> {
        path.parent()?
            .ancestors()
            .find_map(|dir| Some((dir.to_path_buf(), self.areas.get(dir)?.clone())))
    }

    /// A change at `rel` in the work tree of repository `index`.
    fn on_work_path(
        &mut self,
        index: usize,
        change: Change,
        path: &Path,
        rel: &Path,
        now: Instant,
    ) {
        match rel.components().next() {
            Some(Component::Normal(first)) if first != ".git" => {}
            _ => return,
        }
        if is_ignored(&self.repos[index].repo, rel) {
            return;
        }
        if change == Change::Appeared && is_real_dir(path) {
            // A repository moved, cloned or initialised here changes the set of repositories.
            if has_git_entry(path) || self.watch_work_dirs(path) {
                self.debouncer.touch(Target::Tree, now);
            }
            self.touch_repo(index, now);
            return;
        }
        self.touch_repo_path(index, rel, now);
    }

    /// A change outside all repositories: a new directory there may be or hold a repository.
    fn on_tree_path(&mut self, change: Change, path: &Path, now: Instant) {
        if change != Change::Appeared || !is_real_dir(path) || is_hidden_or_skipped(path) {
            return;
        }
        let depth = path
            .strip_prefix(&self.root)
            .map_or(usize::MAX, |rel| rel.components().count());
        if depth > self.max_depth {
            return;
        }
        if self.watch_tree_dirs(path, depth) {
            self.debouncer.touch(Target::Tree, now);
        }
    }

    /// Records a change of one work-tree path of repository `index`, keeping the path as a hint
    /// unless something bigger is already pending for it.
    fn touch_repo_path(&mut self, index: usize, rel: &Path, now: Instant) {
        let pending = self.debouncer.is_pending(Target::Repo(index));
        match self.hints.get_mut(&index) {
            Some(paths) if paths.iter().any(|p| p == rel) => {}
            Some(paths) if paths.len() < MAX_HINTED_PATHS => paths.push(rel.to_path_buf()),
            Some(_) => {
                self.hints.remove(&index);
            }
            // Nothing pending yet: start a hint list. Something pending without a list is
            // already "everything".
            None if !pending => {
                self.hints.insert(index, vec![rel.to_path_buf()]);
            }
            None => {}
        }
        self.debouncer.touch(Target::Repo(index), now);
        let superprojects = self.repos[index].superprojects.clone();
        for outer in superprojects {
            self.touch_repo(outer, now);
        }
    }

    /// Records that anything may have changed in repository `index` and in the repositories it
    /// is a submodule of.
    fn touch_repo(&mut self, index: usize, now: Instant) {
        let mut todo = vec![index];
        // Superprojects strictly enclose their submodules, so this ends.
        while let Some(index) = todo.pop() {
            self.hints.remove(&index);
            self.debouncer.touch(Target::Repo(index), now);
            todo.extend(&self.repos[index].superprojects);
        }
    }
}

/// A walker over `dir` and the directories below it that git does not ignore, without `.git`
/// and without nested repositories (it sets `found_repo` when it meets one).
fn work_walker(dir: &Path, found_repo: Arc<AtomicBool>) -> WalkBuilder {
    let mut builder = WalkBuilder::new(dir);
    builder
        .follow_links(false)
        .hidden(false)
        .parents(true)
        .ignore(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .filter_entry(move |entry| {
            if !is_dir(entry) || entry.file_name() == ".git" {
                return false;
            }
            let is_repo = has_git_entry(entry.path());
            if is_repo {
                found_repo.store(true, Ordering::Relaxed);
            }
            !is_repo
        });
    builder
}

/// Whether `rel`, a path inside a git directory, is one whose change changes the status:
/// one of `files` or anything under `refs/`, except lock files.
fn is_relevant_git_path(rel: &Path, files: &[&str]) -> bool {
    if rel.extension() == Some(OsStr::new("lock")) {
        return false;
    }
    let mut parts = rel.components();
    let Some(Component::Normal(first)) = parts.next() else {
        return false;
    };
    first == "refs" || (parts.next().is_none() && files.iter().any(|file| first == *file))
}

/// Whether the index of `outer` has a gitlink (a submodule) at `rel`.
fn is_gitlink(outer: &Repository, rel: &Path) -> bool {
    const GITLINK_MODE: u32 = 0o160000;
    if !matches!(rel.components().next(), Some(Component::Normal(_))) {
        return false;
    }
    outer
        .index()
        .ok()
        .and_then(|index| index.get_path(rel, 0))
        .is_some_and(|entry| entry.mode == GITLINK_MODE)
}

/// A directory, not a symbolic link to one.
fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|meta| meta.is_dir())
}

fn is_hidden_or_skipped(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| name.starts_with('.') || super::SKIPPED_DIR_NAMES.contains(&name))
}

/// `path` with `.` components and trailing separators removed, for use as a map key.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|part| *part != Component::CurDir)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::test_support::{git, init_repo, repo_with_commit};
    use std::fs;
    use tokio::time::timeout;

    const DEBOUNCE: Duration = Duration::from_millis(50);
    /// Generous: the machine running the tests may be busy.
    const PATIENCE: Duration = Duration::from_secs(10);
    /// How long "nothing happens" is watched for.
    const QUIET: Duration = Duration::from_millis(300);

    type Events = mpsc::Receiver<WatchEvent>;

    /// A root holding repositories `a` and `b`, each with a commit, `src/lib.rs` and a
    /// `.gitignore` for `target/` and `*.log`; `a/target/` exists.
    fn two_repos() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let files = [
            (".gitignore", "target/\n*.log\n"),
            ("README", "readme\n"),
            ("src/lib.rs", "// lib\n"),
        ];
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        repo_with_commit(&a, &files);
        repo_with_commit(&b, &files);
        fs::create_dir_all(a.join("target/debug")).unwrap();
        (tmp, a, b)
    }

    fn start(root: &Path, repos: &[PathBuf]) -> (RepoWatcher, Events) {
        RepoWatcher::start(root, repos, DEBOUNCE).unwrap()
    }

    /// The event with its path hint dropped, so tests can compare which repository changed.
    fn coarse(event: WatchEvent) -> WatchEvent {
        match event {
            WatchEvent::RepoChanged(workdir, _) => {
                WatchEvent::RepoChanged(workdir, Changed::Everything)
            }
            other => other,
        }
    }

    /// "Repository `workdir` changed", whatever the hint.
    fn changed(workdir: PathBuf) -> WatchEvent {
        WatchEvent::RepoChanged(workdir, Changed::Everything)
    }

    async fn next_event(events: &mut Events) -> WatchEvent {
        coarse(next_precise_event(events).await)
    }

    async fn next_precise_event(events: &mut Events) -> WatchEvent {
        timeout(PATIENCE, events.recv())
            .await
            .expect("no watch event in time")
            .expect("watch channel closed")
    }

    async fn assert_quiet(events: &mut Events) {
        if let Ok(event) = timeout(QUIET, events.recv()).await {
            panic!("expected no event, got {event:?}");
        }
    }

    /// Every event until nothing has come for [`QUIET`].
    async fn drain(events: &mut Events) -> Vec<WatchEvent> {
        let mut seen = Vec::new();
        while let Ok(Some(event)) = timeout(QUIET, events.recv()).await {
            seen.push(coarse(event));
        }
        seen
    }

    #[tokio::test]
    async fn editing_a_file_reports_only_its_repository() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b.clone()]);

        fs::write(a.join("README"), "edited\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed(a.clone()));
        assert_quiet(&mut events).await;

        fs::write(b.join("src/lib.rs"), "// edited\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed(b.clone()));
        assert_quiet(&mut events).await;
    }

    #[tokio::test]
    async fn ignored_paths_are_silent() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b]);

        fs::write(a.join("target/debug/app"), "binary").unwrap();
        fs::write(a.join("debug.log"), "log line").unwrap();
        fs::create_dir_all(a.join("src/target")).unwrap();
        fs::write(a.join("src/target/out"), "output").unwrap();
        assert_quiet(&mut events).await;

        // The watcher still works: the silence above was the filter, not a dead watcher.
        fs::write(a.join("src/lib.rs"), "// edited\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed(a));
    }

    #[tokio::test]
    async fn git_commands_report_changes_and_reading_status_does_not() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b]);
        let changed = changed(a.clone());

        fs::write(a.join("README"), "edited\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed);
        assert_quiet(&mut events).await;

        git(&a, &["add", "README"]);
        assert_eq!(next_event(&mut events).await, changed, "git add");
        assert_quiet(&mut events).await;

        git(&a, &["commit", "-qm", "edit"]);
        assert_eq!(next_event(&mut events).await, changed, "git commit");
        assert_quiet(&mut events).await;

        git(&a, &["checkout", "-q", "-b", "feature"]);
        assert_eq!(next_event(&mut events).await, changed, "git checkout -b");
        assert_quiet(&mut events).await;

        let status = super::super::read_status(tmp.path(), &a).unwrap();
        assert_eq!(status.branch.as_deref(), Some("feature"));
        assert_quiet(&mut events).await;
    }

    #[tokio::test]
    async fn a_burst_of_writes_is_reported_a_few_times() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b]);

        for n in 0..100 {
            fs::write(
                a.join(format!("src/file-{}.rs", n % 10)),
                format!("// {n}\n"),
            )
            .unwrap();
        }
        let seen = drain(&mut events).await;
        assert!(
            (1..=3).contains(&seen.len()),
            "{} events: {seen:?}",
            seen.len()
        );
        assert!(seen.iter().all(|event| *event == changed(a.clone())));
    }

    #[tokio::test]
    async fn a_steady_stream_of_writes_is_still_reported() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b]);

        let done = Arc::new(AtomicBool::new(false));
        let writer = thread::spawn({
            let (file, done) = (a.join("README"), Arc::clone(&done));
            move || {
                // Never quiet for a whole debounce period, for 60 of them.
                for n in 0..300 {
                    fs::write(&file, format!("{n}\n")).unwrap();
                    thread::sleep(DEBOUNCE / 5);
                }
                done.store(true, Ordering::SeqCst);
            }
        });
        assert_eq!(next_event(&mut events).await, changed(a));
        assert!(
            !done.load(Ordering::SeqCst),
            "reported only after the writes stopped"
        );
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn new_directories_are_watched() {
        let (tmp, a, b) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), &[a.clone(), b]);
        let changed = changed(a.clone());

        fs::create_dir(a.join("docs")).unwrap();
        assert_eq!(next_event(&mut events).await, changed);
        assert_quiet(&mut events).await;
        fs::write(a.join("docs/guide.md"), "# Guide\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed);
        assert_quiet(&mut events).await;

        // A whole tree at once: its subdirectories are walked and watched too.
        fs::create_dir_all(a.join("x/y/z")).unwrap();
        assert_eq!(next_event(&mut events).await, changed);
        assert_quiet(&mut events).await;
        fs::write(a.join("x/y/z/deep.txt"), "deep\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed);
        assert_quiet(&mut events).await;
    }

    #[tokio::test]
    async fn repositories_appearing_or_vanishing_change_the_tree() {
        let (tmp, a, b) = two_repos();
        let root = tmp.path();
        let (_watcher, mut events) = start(root, &[a.clone(), b.clone()]);

        init_repo(&root.join("c"));
        assert!(
            drain(&mut events).await.contains(&WatchEvent::TreeChanged),
            "git init c"
        );

        // Two levels of new directories, then a repository in them.
        init_repo(&root.join("group/d"));
        assert!(
            drain(&mut events).await.contains(&WatchEvent::TreeChanged),
            "git init group/d"
        );

        // A repository inside a work tree also changes that work tree's status.
        init_repo(&a.join("nested"));
        let seen = drain(&mut events).await;
        assert!(
            seen.contains(&WatchEvent::TreeChanged),
            "git init a/nested: {seen:?}"
        );

        // While b's files are being deleted a change of b may be seen first (the monitor finds
        // it unreadable and waits for the rescan); what matters is the rescan.
        fs::remove_dir_all(&b).unwrap();
        let seen = drain(&mut events).await;
        assert!(seen.contains(&WatchEvent::TreeChanged), "rm -r b: {seen:?}");

        // Plain directories and files outside repositories do not change the tree.
        fs::create_dir_all(root.join("notes/2024")).unwrap();
        fs::write(root.join("notes/2024/todo.txt"), "todo").unwrap();
        assert_quiet(&mut events).await;
    }

    #[tokio::test]
    async fn linked_worktrees_and_submodules_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let main = root.join("main");
        let wt = root.join("wt");
        let lib = root.join("lib");
        repo_with_commit(&lib, &[("lib.txt", "lib\n")]);
        repo_with_commit(&main, &[("main.txt", "main\n")]);
        git(
            &main,
            &["worktree", "add", "-q", "../wt", "-b", "wt-branch"],
        );
        git(&main, &["submodule", "add", "-q", "../lib", "sub"]);
        git(&main, &["commit", "-qm", "add submodule"]);
        let sub = main.join("sub");
        let (_watcher, mut events) = start(root, &[main.clone(), sub.clone(), wt.clone()]);

        fs::write(wt.join("main.txt"), "edited in the worktree\n").unwrap();
        assert_eq!(next_event(&mut events).await, changed(wt.clone()));
        assert_quiet(&mut events).await;

        // HEAD and index of a linked worktree live in main/.git/worktrees/wt.
        git(&wt, &["commit", "-qam", "worktree commit"]);
        let seen = drain(&mut events).await;
        assert!(seen.contains(&changed(wt)), "{seen:?}");

        // A change in a submodule changes its superproject's status too.
        fs::write(sub.join("lib.txt"), "edited in the submodule\n").unwrap();
        let mut seen = drain(&mut events).await;
        seen.sort_by_key(|event| format!("{event:?}"));
        assert_eq!(seen, vec![changed(main), changed(sub)]);
    }

    #[tokio::test]
    async fn dropping_the_watcher_closes_the_channel() {
        let (tmp, a, b) = two_repos();
        let (watcher, mut events) = start(tmp.path(), &[a, b]);
        drop(watcher);
        let closed = timeout(PATIENCE, events.recv())
            .await
            .expect("channel not closed");
        assert_eq!(closed, None);
    }

    #[test]
    fn debouncer_waits_for_quiet_but_not_forever() {
        let quiet = Duration::from_millis(50);
        let mut debouncer = Debouncer::new(quiet);
        let t0 = Instant::now();
        assert_eq!(debouncer.deadline(), None);

        debouncer.touch(Target::Repo(1), t0);
        assert_eq!(debouncer.deadline(), Some(t0 + quiet));
        assert!(debouncer.take_due(t0 + quiet / 2).is_empty());
        debouncer.touch(Target::Repo(1), t0 + quiet / 2);
        assert_eq!(debouncer.deadline(), Some(t0 + quiet * 3 / 2));

        // Touched every 10 ms: due at 5 × quiet after the first touch all the same.
        for ms in (30..400).step_by(10) {
            debouncer.touch(Target::Repo(1), t0 + Duration::from_millis(ms));
        }
        assert_eq!(debouncer.deadline(), Some(t0 + quiet * 5));
        debouncer.touch(Target::Tree, t0 + quiet * 9 / 2);
        assert_eq!(debouncer.take_due(t0 + quiet * 5), vec![Target::Repo(1)]);
        assert_eq!(debouncer.deadline(), Some(t0 + quiet * 11 / 2));
        assert_eq!(debouncer.take_due(t0 + quiet * 11 / 2), vec![Target::Tree]);
        assert_eq!(debouncer.deadline(), None);
    }

    #[test]
    fn git_dir_noise_is_filtered() {
        let relevant = |rel: &str| is_relevant_git_path(Path::new(rel), GIT_DIR_FILES);
        for path in [
            "HEAD",
            "index",
            "packed-refs",
            "MERGE_HEAD",
            "refs/heads/main",
        ] {
            assert!(relevant(path), "{path}");
        }
        for path in [
            "index.lock",
            "refs/heads/main.lock",
            "objects/ab/cdef",
            "logs/HEAD",
            "FETCH_HEAD",
            "COMMIT_EDITMSG",
            "hooks/index",
        ] {
            assert!(!relevant(path), "{path}");
        }
        assert!(!is_relevant_git_path(Path::new("HEAD"), COMMON_DIR_FILES));
    }

    #[tokio::test]
    async fn edits_of_files_name_the_paths_and_git_changes_ask_for_everything() {
        let (tmp, a, _) = two_repos();
        let (_watcher, mut events) = start(tmp.path(), std::slice::from_ref(&a));
        fs::write(a.join("README.md"), "edited\n").unwrap();
        assert_eq!(
            next_precise_event(&mut events).await,
            WatchEvent::RepoChanged(a.clone(), Changed::Paths(vec![PathBuf::from("README.md")]))
        );
        git(&a, &["add", "README.md"]);
        assert_eq!(
            next_precise_event(&mut events).await,
            WatchEvent::RepoChanged(a.clone(), Changed::Everything),
            "an index change may change anything"
        );
        for i in 0..=MAX_HINTED_PATHS {
            fs::write(a.join(format!("many-{i}.txt")), "x").unwrap();
        }
        // However the writes fall into debounce windows, no hint is over the cap and nothing is
        // lost: either some event says "everything" or the hints name every file.
        let mut seen = vec![next_precise_event(&mut events).await];
        while let Ok(Some(more)) = timeout(QUIET, events.recv()).await {
            seen.push(more);
        }
        let mut named = std::collections::BTreeSet::new();
        let mut everything = false;
        for event in &seen {
            match event {
                WatchEvent::RepoChanged(_, Changed::Everything) => everything = true,
                WatchEvent::RepoChanged(_, Changed::Paths(p)) => {
                    assert!(p.len() <= MAX_HINTED_PATHS, "{event:?}");
                    named.extend(p.iter().cloned());
                }
                WatchEvent::TreeChanged => {}
            }
        }
        assert!(
            everything || named.len() == MAX_HINTED_PATHS + 1,
            "{seen:?}"
        );
    }
}
