//! Exactly-once delivery of durable messages over a connection that can drop at any time.
//!
//! The sender numbers each message on its stream ([`Outbox::push`]) and keeps it until the
//! receiver acknowledges it ([`Outbox::ack`]). After a reconnect the receiver says how far it got
//! and the sender replays the rest ([`Outbox::unacked`]). The receiver applies a message only if
//! its number is the next one on the stream ([`Inbox::accept`]), so replays are dropped and a gap
//! is noticed rather than papered over.

use std::collections::VecDeque;

use uuid::Uuid;

use crate::messages::Durable;

/// The sending side of a durable stream.
#[derive(Debug)]
pub struct Outbox<T> {
    stream: Uuid,
    next_seq: u64,
    pending: VecDeque<Durable<T>>,
    capacity: usize,
}

/// The outbox is full: the peer has not acknowledged `capacity` messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("outbox full: {0} messages await acknowledgement")]
pub struct OutboxFull(pub usize);

impl<T: Clone> Outbox<T> {
    /// A new, empty stream with a fresh id, holding at most `capacity` unacknowledged messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            stream: Uuid::new_v4(),
            next_seq: 1,
            pending: VecDeque::new(),
            capacity,
        }
    }

    /// Resumes stream `stream` with the messages still unacknowledged on it (oldest first,
    /// contiguous), e.g. as read back from disk after a restart. The next message is numbered
    /// after the last of them, or `next_seq` when there are none.
    pub fn resume(stream: Uuid, pending: Vec<Durable<T>>, next_seq: u64, capacity: usize) -> Self {
        let next_seq = pending.last().map_or(next_seq, |m| m.seq + 1);
        Self {
            stream,
            next_seq,
            pending: pending.into(),
            capacity,
        }
    }

    /// The sequence number the next pushed message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// This stream's id.
    pub fn stream(&self) -> Uuid {
        self.stream
    }

    /// Numbers a message and keeps it until acknowledged; returns the numbered message to send.
    pub fn push(&mut self, body: T) -> Result<Durable<T>, OutboxFull> {
        if self.pending.len() >= self.capacity {
            return Err(OutboxFull(self.pending.len()));
        }
        let msg = Durable {
            seq: self.next_seq,
            body,
        };
        self.next_seq += 1;
        self.pending.push_back(msg.clone());
        Ok(msg)
    }

    /// Drops every message up to and including `seq`; returns how many were dropped.
    pub fn ack(&mut self, seq: u64) -> usize {
        let before = self.pending.len();
        while self.pending.front().is_some_and(|m| m.seq <= seq) {
            self.pending.pop_front();
        }
        before - self.pending.len()
    }

    /// The messages not yet acknowledged, oldest first: what to replay after a reconnect.
    pub fn unacked(&self) -> impl Iterator<Item = &Durable<T>> {
        self.pending.iter()
    }

    /// The highest sequence number the peer has acknowledged (0 before the first).
    pub fn acked_through(&self) -> u64 {
        self.pending
            .front()
            .map_or(self.next_seq - 1, |m| m.seq - 1)
    }

    /// Number of messages awaiting acknowledgement.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing awaits acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What the receiving side should do with a durable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The next message on the stream: apply it, then acknowledge.
    Apply,
    /// Already applied: drop it, and acknowledge again so the sender stops replaying.
    Duplicate,
    /// A message is missing before this one: drop it and wait for the replay.
    Gap {
        /// The sequence number the receiver expected.
        expected: u64,
    },
}

/// The receiving side of a durable stream: which stream it follows and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbox {
    /// The stream being followed.
    pub stream: Uuid,
    /// Highest sequence number applied (0 before the first).
    pub applied: u64,
}

impl Inbox {
    /// Follows `stream` from position `applied`. If the sender announces a different stream, the
    /// receiver starts over at 0 with [`Inbox::switch_to`].
    pub fn new(stream: Uuid, applied: u64) -> Self {
        Self { stream, applied }
    }

    /// Switches to another stream, starting at 0, unless it is the one already followed.
    pub fn switch_to(&mut self, stream: Uuid) {
        if self.stream != stream {
            self.stream = stream;
            self.applied = 0;
        }
    }

    /// Decides what to do with message `seq`. Does not record it: call [`Inbox::applied`] once
    /// the message's effect is durable.
    pub fn check(&self, seq: u64) -> Accept {
        if seq <= self.applied {
            Accept::Duplicate
        } else if seq == self.applied + 1 {
            Accept::Apply
        } else {
            Accept::Gap {
                expected: self.applied + 1,
            }
        }
    }

    /// Records that message `seq` was applied.
    pub fn mark_applied(&mut self, seq: u64) {
        debug_assert_eq!(seq, self.applied + 1);
        self.applied = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_after_reconnect_delivers_each_message_once() {
        let mut out = Outbox::new(100);
        let mut inbox = Inbox::new(out.stream(), 0);
        let mut applied = Vec::new();
        for i in 0..5 {
            out.push(i).unwrap();
        }
        // The first connection delivers 1..=3, acks 2, then drops.
        for m in out.unacked().take(3) {
            if inbox.check(m.seq) == Accept::Apply {
                inbox.mark_applied(m.seq);
                applied.push(m.body);
            }
        }
        out.ack(2);
        // After the reconnect the receiver says it applied 3; the sender replays from there,
        // including the duplicate 3 it does not know was applied.
        for m in out.unacked() {
            match inbox.check(m.seq) {
                Accept::Apply => {
                    inbox.mark_applied(m.seq);
                    applied.push(m.body);
                }
                Accept::Duplicate => {}
                Accept::Gap { .. } => panic!("no gap expected"),
            }
        }
        out.ack(inbox.applied);
        assert_eq!(applied, vec![0, 1, 2, 3, 4]);
        assert!(out.is_empty());
    }

    #[test]
    fn gaps_and_new_streams_are_noticed() {
        let s = Uuid::new_v4();
        let mut inbox = Inbox::new(s, 4);
        assert_eq!(inbox.check(4), Accept::Duplicate);
        assert_eq!(inbox.check(6), Accept::Gap { expected: 5 });
        inbox.switch_to(s);
        assert_eq!(inbox.applied, 4);
        inbox.switch_to(Uuid::new_v4());
        assert_eq!(inbox.check(1), Accept::Apply);
    }

    #[test]
    fn a_full_outbox_refuses_rather_than_grows() {
        let mut out = Outbox::new(2);
        out.push(()).unwrap();
        out.push(()).unwrap();
        assert_eq!(out.push(()), Err(OutboxFull(2)));
        out.ack(1);
        assert!(out.push(()).is_ok());
    }
}
