//! The transcoding conformance suite: rule by rule, the edge follows TRANSCODING.md.
//!
//! Every test drives the edge's router in-process against a real gRPC upstream that serves the
//! conformance proto (`tests/proto/conformance/v1/conformance.proto`) generically and answers each
//! call with the message it received, so each test asserts exactly what reached gRPC.
//!
//! # Layout
//! - `echo`: the upstream (records every call; `Fail`, `Vanish` and `Sleep` misbehave on purpose).
//! - `edge`: the gateway in front of it and the answer helpers.
//! - `paths`: templates, percent-decoding, precedence, verbs, additional bindings, 404 and 405.
//! - `startup`: the rules the edge refuses to start with.
//! - `query`: every query type, and the 400s naming the parameter.
//! - `body`: the body modes, collisions with the path, malformed JSON, `response_body`.
//! - `json`: the JSON output choices.
//! - `errors`: upstream statuses, their details, an answer without a status.
//! - `headers`: what goes upstream as metadata and what comes back.

mod body;
mod echo;
mod edge;
mod errors;
mod headers;
mod json;
mod paths;
mod query;
mod startup;
