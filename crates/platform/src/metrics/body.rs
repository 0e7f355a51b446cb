//! [`Timed`]: a response body that records its call's duration when it ends, so a stream is
//! timed to its last message and a gRPC call is counted under the status of its trailers.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::{KeyValue, metrics::Histogram};

/// The gRPC status code of a stream cut off before its trailers (the client went away).
const CANCELLED: i64 = 1;
/// The gRPC status code of a response that ended without saying its status.
const UNKNOWN: i64 = 2;

/// One call being timed: recorded once, when it is dropped (its body ended, failed or was
/// dropped unfinished).
#[derive(Debug)]
pub struct Recorder {
    histogram: Histogram<f64>,
    attributes: Vec<KeyValue>,
    start: Instant,
    /// For a gRPC call: its status code once known, and whether its body ended.
    grpc: Option<(Option<i64>, bool)>,
}

impl Recorder {
    /// A call recorded into `histogram` under `attributes`, timed from `start`.
    pub fn new(histogram: Histogram<f64>, attributes: Vec<KeyValue>, start: Instant) -> Self {
        Self {
            histogram,
            attributes,
            start,
            grpc: None,
        }
    }

    /// A gRPC call, recorded with `rpc.grpc.status_code` as well: from the response `headers`
    /// (a trailers-only answer), else from the trailers; CANCELLED when the body is dropped
    /// before them, UNKNOWN when it ends without them.
    pub fn grpc(
        histogram: Histogram<f64>,
        attributes: Vec<KeyValue>,
        start: Instant,
        headers: &HeaderMap,
    ) -> Self {
        let mut recorder = Self::new(histogram, attributes, start);
        recorder.grpc = Some((grpc_status(headers), false));
        recorder
    }

    /// A gRPC call sent and not answered yet: recorded as CANCELLED if dropped before
    /// [`Recorder::answered`] or [`Recorder::failed`] (its caller gave up waiting).
    pub fn grpc_pending(
        histogram: Histogram<f64>,
        attributes: Vec<KeyValue>,
        start: Instant,
    ) -> Self {
        let mut recorder = Self::new(histogram, attributes, start);
        recorder.grpc = Some((None, false));
        recorder
    }

    /// The call's answer came with these `headers` (its status, when trailers-only); the rest
    /// is read from its body's trailers ([`Timed`]).
    pub fn answered(&mut self, headers: &HeaderMap) {
        if let Some((code, _)) = &mut self.grpc {
            *code = grpc_status(headers);
        }
    }

    /// The call failed with status `code` before any answer: recorded now.
    pub fn failed(mut self, code: i64) {
        self.grpc = Some((Some(code), true));
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some((code, _)) = &mut self.grpc
            && let Some(status) = grpc_status(trailers)
        {
            *code = Some(status);
        }
    }

    fn ended(&mut self) {
        if let Some((_, ended)) = &mut self.grpc {
            *ended = true;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some((code, ended)) = self.grpc {
            let code = code.unwrap_or(if ended { UNKNOWN } else { CANCELLED });
            self.attributes
                .push(KeyValue::new("rpc.grpc.status_code", code));
        }
        self.histogram
            .record(self.start.elapsed().as_secs_f64(), &self.attributes);
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

pin_project_lite::pin_project! {
    /// A body that records its call (its [`Recorder`]) when it ends or is dropped.
    #[derive(Debug)]
    pub struct Timed<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
    }
}

impl<B> Timed<B> {
    /// `inner`, recorded by `recorder` when it ends.
    pub fn new(inner: B, recorder: Recorder) -> Self {
        Self {
            inner,
            recorder: Some(recorder),
        }
    }
}

impl<B: Body> Body for Timed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(recorder)) = (frame.trailers_ref(), this.recorder) {
                    recorder.trailers(trailers);
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                if let Some(mut recorder) = this.recorder.take() {
                    recorder.ended();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
