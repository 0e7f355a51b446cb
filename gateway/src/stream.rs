//! Server-streaming answers: newline-delimited JSON (`{"result": ...}` per message, a final
//! `{"error": ...}` on failure) or, when the client asks for `text/event-stream`, Server-Sent
//! Events with comment keep-alives.
//!
//! Each message is written to the client as soon as the upstream sends it (the body is a stream,
//! never buffered), and dropping the body (the client went away) drops the upstream call.
//!
//! # Resuming
//! A method whose stream can be resumed says so by its messages alone, with no rule of its own:
//! - when a response message has a string field named `resume_token`, each SSE event of it gets
//!   that token as its `id:` (other events get a counter; in a stream whose messages carry
//!   tokens, the final error event gets no id, so a client's last event id stays a token);
//! - when a request carries `Last-Event-ID` (as an `EventSource` sends it when it reconnects) and
//!   the request message has a string field `resume_token` that the request did not set, the
//!   edge sets it from the header ([`resume_from_last_event_id`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use prost_reflect::{DynamicMessage, Kind, ReflectMessage as _, Value};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tonic::Streaming;

use crate::status::status_json;
use crate::transcode::response::response_json;

/// How often an idle Server-Sent Events stream sends a comment, so proxies and load balancers
/// that close quiet connections (often after 30 to 60 s) keep a long watch open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The field through which a stream is resumed, in its request and in its messages.
const RESUME_TOKEN: &str = "resume_token";

/// The header an `EventSource` sends when it reconnects, naming the last event it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// Sets the `resume_token` field of a server-streaming `request` from its `Last-Event-ID`
/// header, when the message has such a string field and the request did not set it.
pub fn resume_from_last_event_id(headers: &HeaderMap, request: &mut DynamicMessage) {
    let Some(last) = headers
        .get(LAST_EVENT_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
    else {
        return;
    };
    if let Some(field) = resume_field(request)
        && !request.has_field(&field)
    {
        request.set_field(&field, Value::String(last.to_owned()));
    }
}

/// The singular string field `resume_token` of a message's type, if it has one.
fn resume_field(message: &DynamicMessage) -> Option<prost_reflect::FieldDescriptor> {
    message
        .descriptor()
        .get_field_by_name(RESUME_TOKEN)
        .filter(|field| field.kind() == Kind::String && !field.is_list())
}

/// A message's non-empty `resume_token` string field, if its type has one (and whether it has).
fn resume_token(message: &DynamicMessage) -> (bool, Option<String>) {
    let Some(field) = resume_field(message) else {
        return (false, None);
    };
    let token = message
        .get_field(&field)
        .as_str()
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    (true, token)
}

/// The wire format of a server-streaming answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// `application/x-ndjson`: one JSON object a line.
    NdJson,
    /// `text/event-stream`: one Server-Sent Event a message.
    Sse,
}

impl StreamFormat {
    /// [`StreamFormat::Sse`] when any `Accept` header lists `text/event-stream` (with a non-zero
    /// quality), else [`StreamFormat::NdJson`].
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let wants_sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(accepts_event_stream);
        if wants_sse { Self::Sse } else { Self::NdJson }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::NdJson => "application/x-ndjson",
            Self::Sse => "text/event-stream",
        }
    }
}

/// Whether one media range of an `Accept` header is `text/event-stream` and not refused (`q=0`).
fn accepts_event_stream(range: &str) -> bool {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("text/event-stream") {
        return false;
    }
    !parts.any(|param| {
        param
            .strip_prefix("q=")
            .or_else(|| param.strip_prefix("Q="))
            .and_then(|q| q.parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0)
    })
}

/// The streaming response for an upstream's server stream: each message rendered by
/// [`response_json`] (only its `response_body` field when the rule names one) as `format`
/// frames, an upstream error as the final frame, and `x-request-id` on the response.
pub fn stream_response(
    stream: Streaming<DynamicMessage>,
    response_body: Option<String>,
    format: StreamFormat,
    request_id: String,
) -> Response {
    stream_response_with_keep_alive(stream, response_body, format, request_id, KEEP_ALIVE)
}

/// [`stream_response`] with Server-Sent Events keep-alives every `keep_alive` instead of
/// [`KEEP_ALIVE`] (NDJSON has no comment syntax, so it sends none).
pub fn stream_response_with_keep_alive(
    stream: Streaming<DynamicMessage>,
    response_body: Option<String>,
    format: StreamFormat,
    request_id: String,
    keep_alive: Duration,
) -> Response {
    let frames = frames(
        stream,
        response_body,
        format,
        request_id.clone(),
        keep_alive,
    );
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // A stream is never the same twice; caches must not answer it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers proxied bodies by default, which would hold every event back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(value) = HeaderValue::from_str(&request_id)
        && !request_id.is_empty()
    {
        headers.insert("x-request-id", value);
    }
    response
}

/// Everything the body stream carries between frames.
struct Frames {
    /// The upstream call; dropped with the body, which cancels it.
    upstream: Streaming<DynamicMessage>,
    response_body: Option<String>,
    format: StreamFormat,
    request_id: String,
    /// The SSE event id of the next frame without a resume token, so a client can tell events
    /// apart.
    next_id: u64,
    /// Whether the messages carry resume tokens: then the ids are the tokens.
    resumable: bool,
    /// Ticks while an SSE stream is idle; `None` for NDJSON.
    keep_alive: Option<Interval>,
    /// Set after the final (error) frame: nothing follows it.
    done: bool,
}

fn frames(
    upstream: Streaming<DynamicMessage>,
    response_body: Option<String>,
    format: StreamFormat,
    request_id: String,
    keep_alive: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let keep_alive = (format == StreamFormat::Sse).then(|| {
        let mut interval = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
        // After a busy spell one comment is enough, not a burst of missed ones.
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    });
    let state = Frames {
        upstream,
        response_body,
        format,
        request_id,
        next_id: 1,
        resumable: false,
        keep_alive,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let item = match state.keep_alive.as_mut() {
            Some(interval) => tokio::select! {
                // A ready message goes before a due keep-alive.
                biased;
                item = state.upstream.next() => item,
                _ = interval.tick() => return Some((Ok(Bytes::from_static(b":\n\n")), state)),
            },
            None => state.upstream.next().await,
        };
        let frame = match item? {
            Ok(message) => match response_json(&message, state.response_body.as_deref()) {
                Ok(json) => {
                    let (resumable, token) = resume_token(&message);
                    state.resumable |= resumable;
                    state.result_frame(&json, token)
                }
                Err(status) => state.error_frame(&status),
            },
            Err(status) => state.error_frame(&status),
        };
        if let Some(interval) = state.keep_alive.as_mut() {
            interval.reset();
        }
        Some((Ok(frame), state))
    })
}

impl Frames {
    /// One message: `{"result": <json>}` as a line or a `data:` event (with the message's resume
    /// token as its id, when it has one).
    fn result_frame(&mut self, json: &[u8], token: Option<String>) -> Bytes {
        let mut payload = Vec::with_capacity(json.len() + 12);
        payload.extend_from_slice(b"{\"result\":");
        payload.extend_from_slice(json);
        payload.push(b'}');
        let id = match token {
            Some(token) => Some(token),
            None => self.counted_id(),
        };
        self.frame(id, None, &payload)
    }

    /// The next counted event id; none in a stream whose ids are resume tokens, where a counter
    /// would be taken for a token.
    fn counted_id(&mut self) -> Option<String> {
        if self.resumable {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(id.to_string())
    }

    /// The final frame: the status as `{"error": ...}` or an `error` event; the stream ends.
    fn error_frame(&mut self, status: &tonic::Status) -> Bytes {
        self.done = true;
        let body = status_json(status, &self.request_id);
        match self.format {
            StreamFormat::NdJson => {
                let line = serde_json::json!({ "error": body }).to_string();
                self.frame(None, None, line.as_bytes())
            }
            StreamFormat::Sse => {
                let id = self.counted_id();
                self.frame(id, Some("error"), body.to_string().as_bytes())
            }
        }
    }

    fn frame(&self, id: Option<String>, event: Option<&str>, payload: &[u8]) -> Bytes {
        match self.format {
            StreamFormat::NdJson => {
                let mut line = Vec::with_capacity(payload.len() + 1);
                line.extend_from_slice(payload);
                line.push(b'\n');
                Bytes::from(line)
            }
            StreamFormat::Sse => {
                // Compact JSON has no raw newlines, so one `data:` line carries the payload; a
                // token with a line break would end the `id:` line early, so such an id is left
                // out.
                let mut out = Vec::with_capacity(payload.len() + 32);
                if let Some(id) = id.filter(|id| !id.contains(['\n', '\r', '\0'])) {
                    out.extend_from_slice(format!("id: {id}\n").as_bytes());
                }
                if let Some(event) = event {
                    out.extend_from_slice(format!("event: {event}\n").as_bytes());
                }
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\n\n");
                Bytes::from(out)
            }
        }
    }
}
