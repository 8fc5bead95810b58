//! Server-sent events from a streamed answer (parsed by `eventsource-stream`), with a limit on
//! the silence between events.

use std::{pin::Pin, time::Duration};

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

use super::LlmError;

type Inner = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<std::io::Error>>>
            + Send,
    >,
>;

/// The text of the error a body over its cap ends with.
const OVER_CAP: &str = "the answer is over its size cap";

/// The `data` of each event of a response, in order.
pub(super) struct Events {
    inner: Inner,
    idle: Duration,
    cap: usize,
}

impl Events {
    /// The events of `response`; a silence longer than `idle` fails the stream, and so does a
    /// body of more than `cap` bytes (counted as it arrives, before it is parsed, so a server
    /// that never ends an event cannot make the parser buffer without end).
    pub(super) fn new(response: reqwest::Response, idle: Duration, cap: usize) -> Self {
        let mut seen = 0usize;
        let bytes = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.without_url()))?;
            seen += chunk.len();
            if seen > cap {
                return Err(std::io::Error::other(OVER_CAP));
            }
            Ok(chunk)
        });
        Self {
            inner: Box::pin(bytes.eventsource()),
            idle,
            cap,
        }
    }

    /// The next event's data (events without data are skipped); `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<String>, LlmError> {
        loop {
            let item = tokio::time::timeout(self.idle, self.inner.next())
                .await
                .map_err(|_| LlmError::Transport("the stream went silent".into()))?;
            match item {
                None => return Ok(None),
                Some(Ok(event)) if event.data.is_empty() => continue,
                Some(Ok(event)) => return Ok(Some(event.data)),
                Some(Err(EventStreamError::Transport(e))) if e.to_string() == OVER_CAP => {
                    return Err(LlmError::TooLarge(self.cap));
                }
                Some(Err(EventStreamError::Transport(e))) => {
                    return Err(LlmError::Transport(e.to_string()));
                }
                Some(Err(e)) => return Err(LlmError::Malformed(e.to_string())),
            }
        }
    }
}

/// Up to `cap` bytes of a response's body, as text (for error answers).
pub(super) async fn read_capped(response: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(Duration::from_secs(10), stream.next()).await
    {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}
