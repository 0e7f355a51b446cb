//! The console: `GET /console`, a page showing every service's health, replicas and golden
//! numbers (request rate, success rate, p50 and p99 over the last minute) by method, the edge's
//! routes, the event bus and the orders, live; and `GET /console/events`, the Server-Sent Events
//! stream the page reads.
//!
//! One task per edge reads the metrics every `gateway.console.interval` and computes the
//! snapshot; every viewer gets that same snapshot, so ten open pages cost what one does. It
//! reads this process's own metrics in memory (in `agora up`, every service's and the edge's)
//! and scrapes each URL of `gateway.console.sources` (the services' `/metrics` when they run
//! apart).
//!
//! Only administrators see it: an admin's bearer token, verified as the edge verifies every
//! token; or, with `gateway.console.open_on_loopback` (which `agora up` sets), any client on
//! the loopback interface. A browser without a token is answered 401 with the page itself, which
//! asks for one.
//!
//! # Layout
//! - this file: the settings, the routes and who may see them, the sampling task.
//! - `window`: readings folded into counts, and rates and quantiles over the last minute.
//! - `board`: the snapshot sent to the page, and the history of its charts.
//! - `sources`: this process's metrics and the scraped ones.
//! - `page.html`, `page.css`, `page.js`: the page, one document with no outside resources.

pub mod board;
pub mod sources;
pub mod window;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use agora_platform::access::Access;
use agora_platform::config::ServiceKind;
use agora_platform::time::now_micros;
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    response::{
        Html, IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use http::{HeaderValue, header};
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::EdgeAuth;
use crate::health::Health;
use board::{Board, Upstream};
use sources::Sources;

/// The console's paths: the page and its event stream.
pub const PATHS: [&str; 2] = ["/console", "/console/events"];

/// `[gateway.console]`: where the console reads the metrics, how often, and who may see it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// `/metrics` URLs to scrape besides this process's own metrics: the services' when they run
    /// in processes of their own (`http://product:9464/metrics`). None by default.
    pub sources: Vec<String>,
    /// How often the metrics are read and the page updated.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Whether clients on the loopback interface see the console without a token (`agora up`
    /// sets it: whoever runs it on a laptop is its administrator).
    pub open_on_loopback: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            interval: Duration::from_secs(2),
            open_on_loopback: false,
        }
    }
}

impl ConsoleSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// An interval shorter than 100 ms, or a source that is not an `http://` or `https://` URL.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.interval >= Duration::from_millis(100),
            "gateway.console.interval must be at least 100ms, not {:?}",
            self.interval
        );
        for (index, source) in self.sources.iter().enumerate() {
            anyhow::ensure!(
                source.starts_with("http://") || source.starts_with("https://"),
                "gateway.console.sources[{index}] must be an http:// URL of a /metrics, not {source:?}"
            );
        }
        Ok(())
    }
}

/// The page: one document, its style and script inlined, so it needs nothing from elsewhere.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("console/page.html")
        .replace("/* page.css */", include_str!("console/page.css"))
        .replace("/* page.js */", include_str!("console/page.js"))
});

/// What the page may load: itself, and its own event stream.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    script-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";

/// The console of one edge. Cheap to clone; the sampling task stops when the last clone goes.
#[derive(Debug, Clone)]
pub struct Console {
    auth: EdgeAuth,
    open_on_loopback: bool,
    /// The latest snapshot as JSON; empty before the first reading.
    latest: watch::Receiver<Arc<str>>,
}

impl Console {
    /// Starts reading the metrics every `settings.interval`, with the upstreams' states from
    /// `health`, and admits viewers by `auth`.
    ///
    /// # Errors
    /// A bad setting.
    ///
    /// # Panics
    /// Outside a Tokio runtime (the sampling is a task).
    pub fn new(settings: &ConsoleSettings, auth: EdgeAuth, health: Health) -> anyhow::Result<Self> {
        settings.validate()?;
        let sources = Sources::new(settings.sources.clone(), settings.interval)?;
        let (publish, latest) = watch::channel(Arc::<str>::from(""));
        tokio::spawn(sample(sources, health, settings.interval, publish));
        Ok(Self {
            auth,
            open_on_loopback: settings.open_on_loopback,
            latest,
        })
    }

    /// `GET /console` and `GET /console/events` ([`PATHS`]).
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route(PATHS[0], get(page))
            .route(PATHS[1], get(events))
            .with_state(self.clone())
    }

    /// Whether a request (its head: `ConnectInfo`, headers) may see the console: an admin's
    /// token, or loopback when the console is open there.
    async fn admit(&self, head: &http::Request<()>) -> Result<(), Response> {
        let peer = head
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        if self.open_on_loopback && peer.is_some_and(|ip| ip.is_loopback()) {
            return Ok(());
        }
        match self.auth.admit_access(Access::Admin, head.headers()).await {
            Ok(_) => Ok(()),
            Err(refusal) => Err(refusal.answer(head)),
        }
    }
}

/// Reads the sources every `interval` while anyone holds the console, and publishes what the
/// page shows.
async fn sample(
    sources: Sources,
    health: Health,
    interval: Duration,
    publish: watch::Sender<Arc<str>>,
) {
    let started = Instant::now();
    let mut board = Board::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = publish.closed() => return,
            _ = ticks.tick() => {}
        }
        let reading = sources.read().await;
        let unix_ms = u64::try_from(now_micros() / 1000).unwrap_or(0);
        let snapshot = board.update(
            started.elapsed().as_secs_f64(),
            unix_ms,
            reading,
            &upstreams(&health),
        );
        match serde_json::to_string(&snapshot) {
            Ok(json) => publish.send_replace(Arc::from(json)),
            Err(error) => {
                tracing::error!(%error, "the console's snapshot could not be written");
                continue;
            }
        };
    }
}

/// Each upstream of the edge with its last health check.
fn upstreams(health: &Health) -> Vec<Upstream> {
    health
        .states()
        .into_iter()
        .map(|(name, seen)| {
            let grpc = ServiceKind::ALL
                .into_iter()
                .find(|kind| kind.name() == name)
                .map_or_else(|| name.clone(), |kind| kind.grpc_name().to_owned());
            Upstream {
                name,
                grpc,
                health: seen.observed.name().to_owned(),
                since: prost_types::Timestamp::from(seen.since).to_string(),
            }
        })
        .collect()
}

/// The page; without access, the same page with the refusal's status, so a browser can ask for
/// a token (the page shows no data until its event stream is admitted).
async fn page(State(console): State<Console>, request: Request) -> Response {
    // The head alone is kept across the check: a body cannot be shared between threads.
    let head = Request::from_parts(request.into_parts().0, ());
    let mut response = Html(PAGE.as_str()).into_response();
    if let Err(refusal) = console.admit(&head).await {
        *response.status_mut() = refusal.status();
        if let Some(challenge) = refusal.headers().get(header::WWW_AUTHENTICATE) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge.clone());
        }
    }
    secured(response)
}

/// The page's headers: what it may load, never cached, its type as sent.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The snapshots as Server-Sent Events (`event: snapshot`), the latest at once and each new one
/// as it is computed.
async fn events(State(console): State<Console>, request: Request) -> Response {
    let head = Request::from_parts(request.into_parts().0, ());
    if let Err(refusal) = console.admit(&head).await {
        return refusal;
    }
    let mut latest = console.latest.clone();
    latest.mark_changed();
    let stream = futures::stream::unfold(latest, |mut latest| async move {
        loop {
            latest.changed().await.ok()?;
            let json = latest.borrow_and_update().clone();
            if !json.is_empty() {
                let event = Event::default().event("snapshot").data(json.as_ref());
                return Some((Ok::<_, Infallible>(event), latest));
            }
        }
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
