//! The agent's durable outbox: the messages on its stream that the relay has not acknowledged,
//! kept in memory and in a journal on disk, so job output and results survive an agent restart
//! as well as a reconnect.
//!
//! Layout in `<state dir>/outbox/`: a `stream` file with the stream's id, and segment files
//! named by the sequence number of their first message (`00000000000000000001.seg`), each a
//! series of records `[u32 little-endian length][MessagePack Durable<AgentMessage>]`. A message
//! is written to the current segment before it is sent; a segment is deleted once the relay has
//! acknowledged its last message. Results are flushed to the disk (`fdatasync`) before they are
//! sent; output and repository states are written without a flush, which survives the agent
//! being killed but not the machine losing power.
//!
//! Reading back after a restart stops at the first record that is cut short or does not decode
//! (a write the crash interrupted) and drops everything after it.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use fulcrum_protocol::{
    AgentMessage, Durable,
    reliable::{Outbox, OutboxFull},
};
use uuid::Uuid;

/// Most messages awaiting acknowledgement.
const CAPACITY: usize = 16 * 1024;
/// Most bytes awaiting acknowledgement; past it, job output waits (the job's pipe fills and the
/// job blocks on its writes) until the relay catches up.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// A new segment starts once the current one is this big.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// One journal file.
#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
}

/// The outbox of the agent's durable stream, backed by a journal on disk.
#[derive(Debug)]
pub struct DiskOutbox {
    dir: PathBuf,
    inner: Outbox<AgentMessage>,
    /// Encoded size of each pending message, in the same order.
    sizes: VecDeque<usize>,
    bytes: usize,
    /// Oldest first; the last one is the one being written.
    segments: VecDeque<Segment>,
    file: Option<File>,
    /// Set after a write failed (disk full, …): the outbox goes on in memory and says so once.
    disk_failed: bool,
}

impl DiskOutbox {
    /// Opens the outbox in `dir`, resuming the stream found there with its unacknowledged
    /// messages, or starting a new stream when there is nothing to resume.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the outbox {}", dir.display()))?;
        let mut outbox = Self {
            dir: dir.to_owned(),
            inner: Outbox::new(CAPACITY),
            sizes: VecDeque::new(),
            bytes: 0,
            segments: VecDeque::new(),
            file: None,
            disk_failed: false,
        };
        match outbox.read_back() {
            Ok(true) => {}
            Ok(false) => outbox.start_stream()?,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the outbox journal is unreadable; starting a new stream");
                outbox.start_stream()?;
            }
        }
        Ok(outbox)
    }

    /// Loads the stream and its messages from disk; false when there is nothing to resume.
    fn read_back(&mut self) -> Result<bool> {
        let Ok(stream) = fs::read_to_string(self.dir.join("stream")) else {
            return Ok(false);
        };
        let stream: Uuid = stream.trim().parse().context("bad stream file")?;
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if let Some(first) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse().ok())
            {
                files.push((first, path));
            }
        }
        files.sort();
        let mut messages: Vec<Durable<AgentMessage>> = Vec::new();
        let mut sizes = Vec::new();
        let mut broken = false;
        for (first, path) in files {
            if broken {
                let _ = fs::remove_file(&path);
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let mut at = 0usize;
            while at < bytes.len() {
                let record = read_record(&bytes[at..]);
                let Some((message, used)) = record else {
                    broken = true;
                    break;
                };
                let follows = messages.last().is_none_or(|m| m.seq + 1 == message.seq);
                if !follows {
                    broken = true;
                    break;
                }
                sizes.push(used);
                messages.push(message);
                at += used;
            }
            if broken {
                // Cut the torn tail so appends start from a good record.
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(at as u64)?;
            }
            self.segments.push_back(Segment {
                first_seq: first,
                path,
                len: at as u64,
            });
        }
        // Segments that hold nothing (all cut) are of no use.
        self.segments.retain(|s| {
            let keep = s.len > 0;
            if !keep {
                let _ = fs::remove_file(&s.path);
            }
            keep
        });
        if messages.is_empty() {
            return Ok(false);
        }
        self.bytes = sizes.iter().sum();
        self.sizes = sizes.into();
        self.inner = Outbox::resume(stream, messages, 1, CAPACITY);
        tracing::info!(
            stream = %stream,
            unacked = self.inner.len(),
            "resuming the agent's stream from the outbox on disk"
        );
        Ok(true)
    }

    /// Starts a new, empty stream: removes old segments and records the new id.
    fn start_stream(&mut self) -> Result<()> {
        self.file = None;
        for segment in self.segments.drain(..) {
            let _ = fs::remove_file(&segment.path);
        }
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "seg") {
                let _ = fs::remove_file(&path);
            }
        }
        self.inner = Outbox::new(CAPACITY);
        self.sizes.clear();
        self.bytes = 0;
        let tmp = self.dir.join("stream.tmp");
        fs::write(&tmp, self.inner.stream().to_string())?;
        fs::rename(&tmp, self.dir.join("stream"))?;
        Ok(())
    }

    /// Numbers `body`, writes it to the journal (flushed to the disk when `flush`), and keeps
    /// it until acknowledged; returns the numbered message to send.
    pub fn push(
        &mut self,
        body: AgentMessage,
        flush: bool,
    ) -> Result<Durable<AgentMessage>, OutboxFull> {
        let message = self.inner.push(body)?;
        let record = match fulcrum_protocol::encode(&message) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an outgoing message");
                Vec::new()
            }
        };
        let size = record.len() + 4;
        self.sizes.push_back(size);
        self.bytes += size;
        if !self.disk_failed
            && let Err(e) = self.append(message.seq, &record, flush)
        {
            self.disk_failed = true;
            self.file = None;
            tracing::error!(error = %format!("{e:#}"), "cannot write the outbox journal; unacknowledged messages are kept in memory only");
        }
        Ok(message)
    }

    fn append(&mut self, seq: u64, record: &[u8], flush: bool) -> Result<()> {
        let rotate =
            self.file.is_none() || self.segments.back().is_none_or(|s| s.len >= SEGMENT_BYTES);
        if rotate {
            let path = self.dir.join(format!("{seq:020}.seg"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            self.file = Some(file);
            self.segments.push_back(Segment {
                first_seq: seq,
                path,
                len: 0,
            });
        }
        let (Some(file), Some(segment)) = (self.file.as_mut(), self.segments.back_mut()) else {
            anyhow::bail!("no open segment");
        };
        let mut buf = Vec::with_capacity(record.len() + 4);
        buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
        buf.extend_from_slice(record);
        file.write_all(&buf)?;
        if flush {
            file.sync_data()?;
        }
        segment.len += buf.len() as u64;
        Ok(())
    }

    /// Drops everything up to and including `seq`, and the segments it empties.
    pub fn ack(&mut self, seq: u64) {
        let dropped = self.inner.ack(seq);
        for _ in 0..dropped {
            if let Some(size) = self.sizes.pop_front() {
                self.bytes -= size;
            }
        }
        // A segment is done once the next one starts at or before the first unacknowledged.
        while self.segments.len() > 1 && self.segments[1].first_seq <= seq + 1 {
            if let Some(done) = self.segments.pop_front() {
                let _ = fs::remove_file(&done.path);
            }
        }
        if self.inner.is_empty() && !self.segments.is_empty() {
            // All acknowledged: nothing on disk is needed any more.
            self.file = None;
            for done in self.segments.drain(..) {
                let _ = fs::remove_file(&done.path);
            }
        }
    }

    /// Moves to a new stream (the relay lost what it had acknowledged), carrying over the
    /// pending messages that `keep` selects, renumbered.
    pub fn restart(&mut self, keep: impl Fn(&AgentMessage) -> bool) -> Result<()> {
        let carried: Vec<AgentMessage> = self
            .inner
            .unacked()
            .filter(|m| keep(&m.body))
            .map(|m| m.body.clone())
            .collect();
        self.start_stream()?;
        for body in carried {
            let _ = self.push(body, false);
        }
        Ok(())
    }

    /// The stream's id.
    pub fn stream(&self) -> Uuid {
        self.inner.stream()
    }

    /// The unacknowledged messages, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &Durable<AgentMessage>> {
        self.inner.unacked()
    }

    /// The highest sequence number the relay acknowledged.
    pub fn acked_through(&self) -> u64 {
        self.inner.acked_through()
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }

    /// Messages awaiting acknowledgement.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing awaits acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// True when another message fits (by count and by bytes).
    pub fn has_room(&self) -> bool {
        self.inner.len() < CAPACITY && self.bytes < MAX_BYTES
    }
}

/// Reads one record; `None` when it is cut short or does not decode.
fn read_record(bytes: &[u8]) -> Option<(Durable<AgentMessage>, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let body = bytes.get(4..4 + len)?;
    let message = fulcrum_protocol::decode(body).ok()?;
    Some((message, 4 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(offset: u64) -> AgentMessage {
        AgentMessage::TaskOutput {
            task_id: Uuid::nil(),
            offset,
            data: vec![b'x'; 10],
        }
    }

    #[test]
    fn unacknowledged_messages_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let stream = {
            let mut out = DiskOutbox::open(dir.path()).unwrap();
            for i in 0..5 {
                out.push(output(i * 10), i == 4).unwrap();
            }
            out.ack(2);
            out.stream()
        };
        let out = DiskOutbox::open(dir.path()).unwrap();
        assert_eq!(out.stream(), stream);
        let seqs: Vec<u64> = out.unacked().map(|m| m.seq).collect();
        // The relay tells which of these it has; the agent drops those after the welcome.
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(out.unacked().last().unwrap().body, output(40));
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut out = DiskOutbox::open(dir.path()).unwrap();
            out.push(output(0), false).unwrap();
            out.push(output(10), false).unwrap();
        }
        let seg = dir.path().join(format!("{:020}.seg", 1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut out = DiskOutbox::open(dir.path()).unwrap();
        assert_eq!(out.len(), 2);
        let third = out.push(output(20), false).unwrap();
        assert_eq!(third.seq, 3);
        drop(out);
        assert_eq!(DiskOutbox::open(dir.path()).unwrap().len(), 3);
    }

    #[test]
    fn acknowledged_segments_are_deleted_and_an_empty_outbox_starts_a_new_stream() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let mut out = DiskOutbox::open(dir.path()).unwrap();
            let big = AgentMessage::TaskOutput {
                task_id: Uuid::nil(),
                offset: 0,
                data: vec![0; 200 * 1024],
            };
            for _ in 0..30 {
                out.push(big.clone(), false).unwrap();
            }
            assert!(out.segments.len() >= 2);
            out.ack(30);
            assert!(out.segments.len() <= 1);
            out.stream()
        };
        let out = DiskOutbox::open(dir.path()).unwrap();
        assert!(out.is_empty() && out.stream() != first);
    }
}
