//! Starting and stopping one job process: its own process group, a clean environment, stdout and
//! stderr merged into one pipe in the order they were written.
//!
//! The base environment a job sees is documented here and nowhere else: `PATH`, `HOME`, `USER`,
//! `LOGNAME`, `SHELL`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ`, `TMPDIR` and the toolchain variables in
//! [`PASSED_THROUGH`] are passed from the agent's own environment when set; `TERM=dumb`, `CI=true`,
//! `FULCRUM_TASK_ID`, `FULCRUM_WORKSPACE_ROOT` and `FULCRUM_REPORT_DIR` (an empty directory for
//! report files) are set by the agent; the task's own `env` comes last and wins. Nothing else of
//! the agent's environment leaks into a job, the agent token least of all.

use std::{
    collections::BTreeMap,
    io,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{ExitStatus, Stdio},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{net::unix::pipe, process::Child};

/// Variables taken from the agent's environment when set.
pub const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "JAVA_HOME",
    "NVM_DIR",
    "PYENV_ROOT",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// A started job process.
pub struct JobProcess {
    /// The process (the group leader).
    pub child: Child,
    /// The read end of its merged output.
    pub output: pipe::Receiver,
    pgid: Pid,
}

/// The environment a job runs with: the documented base, then `extra`.
pub fn environment(
    task_id: &str,
    root: &Path,
    report_dir: &Path,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in PASSED_THROUGH {
        if let Ok(value) = std::env::var(name) {
            env.insert((*name).to_owned(), value);
        }
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    env.insert("TERM".into(), "dumb".into());
    env.insert("CI".into(), "true".into());
    env.insert("FULCRUM_TASK_ID".into(), task_id.to_owned());
    env.insert("FULCRUM_WORKSPACE_ROOT".into(), root.display().to_string());
    env.insert(
        "FULCRUM_REPORT_DIR".into(),
        report_dir.display().to_string(),
    );
    for (k, v) in extra {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// Starts `sh -c command` in `dir` as the leader of a new process group.
pub fn spawn(command: &str, dir: &Path, env: &BTreeMap<String, String>) -> io::Result<JobProcess> {
    let (reader, writer) = io::pipe()?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer.try_clone()?))
        .stderr(Stdio::from(writer))
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd.spawn()?;
    // The writer ends were moved into the command and are closed with it, so the reader sees
    // the end of the output once every process of the job has closed its copy.
    drop(cmd);
    let output = pipe::Receiver::from_owned_fd(reader.into())?;
    let pid = child.id().unwrap_or(0) as i32;
    Ok(JobProcess {
        child,
        output,
        pgid: Pid::from_raw(pid),
    })
}

impl JobProcess {
    /// Sends `signal` to every process in the job's group.
    pub fn signal_group(&self, signal: Signal) {
        if self.pgid.as_raw() > 0 {
            let _ = killpg(self.pgid, signal);
        }
    }

    /// SIGTERM to the group.
    pub fn terminate(&self) {
        self.signal_group(Signal::SIGTERM);
    }

    /// SIGKILL to the group: whatever of the job is still alive ends now.
    pub fn kill(&self) {
        self.signal_group(Signal::SIGKILL);
    }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`), which tells a
/// process from a later one that got the same id.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl JobProcess {
    /// Records the job's process group in its directory, so an agent that died can kill what is
    /// left of the job when it starts again.
    pub fn record(&self, dir: &Path) {
        let pid = self.pgid.as_raw();
        if let Some(ticks) = start_ticks(pid) {
            let _ = std::fs::write(dir.join("pgid"), format!("{pid} {ticks}\n"));
        }
    }
}

/// Kills the process group recorded in a job directory, if its leader is still the process the
/// agent started (same id, same start time).
pub fn kill_leftover(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("pgid")) else {
        return;
    };
    let mut parts = text.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(ticks))) = (
        parts.next().map(str::parse::<i32>),
        parts.next().map(str::parse::<u64>),
    ) else {
        return;
    };
    if pid > 1 && start_ticks(pid) == Some(ticks) {
        tracing::warn!(
            pgid = pid,
            "killing what is left of a job from before the restart"
        );
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The exit code, or the signal that ended the process.
pub fn exit_of(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}
