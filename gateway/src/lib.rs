//! Agora's edge: what browsers and plain HTTP clients see of the mesh.
//!
//! # Layout
//! - [`app`]: the axum router: match, transcode, call upstream, answer JSON.
//! - [`rules`]: the `google.api.http` rules of the descriptor set, one [`rules::Binding`] each.
//! - [`status`]: gRPC status -> HTTP status and a `google.rpc.Status` JSON body, the one table.
//! - [`template`]: path templates parsed at start-up and matched against request paths.
//! - [`routes`]: the route table checked at start-up (GET with a body, ambiguity) and its lookup.
//! - [`transcode`]: request messages from path, query and body; response JSON.
//! - [`upstream`]: a channel per upstream; unary and server-streaming calls of any method.
//! - [`stream`]: server-streaming answers as newline-delimited JSON or Server-Sent Events.
//! - [`grpc_proxy`]: native gRPC and gRPC-Web calls passed through to their service by path,
//!   and the edge's own reflection listing every service it routes.
//! - [`discover`]: an upstream's descriptors read from its reflection service at start-up.
//! - [`edge`]: one request's way through the edge, every step in order.
//! - [`serve`]: the `[gateway]` settings, the edge built from them, and serving it until shutdown.
//! - [`client_address`]: who the client is (forwarding headers believed from trusted proxies only).
//! - [`auth`]: bearer tokens and each method's access option, enforced at the edge.
//! - [`ratelimit`]: budgets per client, a stricter one for sign-in counted per address; Redis or
//!   memory.
//! - [`cors`]: which web origins may call the edge; preflights answered here.
//! - [`device_cookie`]: auth's device token as an `HttpOnly` cookie, forwarded to Login only.
//! - [`limits`]: the size limits: URL (414), headers (431) and body (413).
//! - [`listen`]: the HTTP server (hyper): head sizes consistent with [`limits`], timeouts and
//!   the connection cap.
//! - [`health`]: `/healthz`, `/readyz` and `/readyz/upstreams`; each upstream checked in the
//!   background, and calls to one that cannot be reached refused at once.
//! - [`metrics`]: `http.server.request.duration` of every request, by route template and status.
//! - [`openapi`]: `/openapi.json` and `/docs`, generated from the same descriptors and rules.
//! - [`console`]: `/console`, every service's health and golden numbers live, for admins.

pub mod app;
pub mod auth;
pub mod client_address;
pub mod console;
pub mod cors;
pub mod device_cookie;
pub mod discover;
pub mod edge;
pub mod grpc_proxy;
pub mod health;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod rules;
pub mod serve;
pub mod status;
pub mod stream;
pub mod template;
pub mod transcode;
pub mod upstream;
