//! Server-sent events out of a channel: the answer of the doors that stream a turn (the
//! assistant's REST door, A2A). The stream ends when every sender is gone.

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::Response,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// A `text/event-stream` response of the items `rx` receives, each written as `frame` makes
/// it (one whole event, blank line included).
pub fn event_stream<T: Send + 'static>(
    rx: UnboundedReceiver<T>,
    frame: impl Fn(T) -> String + Send + Sync + 'static,
) -> Response {
    let frame = std::sync::Arc::new(frame);
    let events = futures_util::stream::unfold(rx, move |mut rx| {
        let frame = frame.clone();
        async move {
            let item = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(frame(item)), rx))
        }
    });
    let mut r = Response::new(Body::from_stream(events));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
