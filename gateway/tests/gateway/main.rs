//! The edge's integration tests, one binary with a module per area: each test binary is
//! compiled and linked on its own, and linking dominates the build, so the areas share one.
//!
//! Nothing here installs a process-wide global (no tracing subscriber, crypto provider or
//! environment variable), so the areas can share a process.
//!
//! # Layout
//! - `whole_edge`: a whole edge (`serve::serve` on a TCP listener) in front of real services,
//!   and hand-written HTTP/1.1 requests to it; shared by the areas below that need one.
//! - `conformance`: the transcoding conformance suite, rule by rule.
//! - `unary`, `streaming`, `status_table`, `error_details`: transcoding end to end, streamed
//!   answers, the gRPC -> HTTP status table and rich error details.
//! - `grpc_proxy`: native gRPC and gRPC-Web through the edge, and its reflection.
//! - `edge_layers`: CORS, body limit, auth and rate limits stacked as a gateway mounts them.
//! - `polyglot`: a Python service outside Agora's contracts behind the edge.
//! - `order_watch`: WatchOrder as Server-Sent Events through a whole edge.
//! - `bad_input`, `hostile_headers`, `slow_clients`, `client_address`: a whole edge under
//!   hostile input, slow clients and spoofed forwarding headers.
//! - `device_cookie`, `sign_in_budget`: auth's device token and sign-in budget at the edge.
//! - `one_upstream_down`, `lost_upstream`: an upstream stopped, and one lost mid-call.
//! - `console`: who may see `/console`, and the snapshot its event stream carries.

mod bad_input;
mod client_address;
mod conformance;
mod console;
mod device_cookie;
mod edge_layers;
mod error_details;
mod grpc_proxy;
mod hostile_headers;
mod lost_upstream;
mod one_upstream_down;
mod order_watch;
mod polyglot;
mod sign_in_budget;
mod slow_clients;
mod status_table;
mod streaming;
mod unary;
mod whole_edge;
