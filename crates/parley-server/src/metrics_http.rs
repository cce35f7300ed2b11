//! The metrics listener: `/metrics` (the Prometheus text format) and `/healthz` on each
//! `[metrics] listen` address, served by axum over hyper's HTTP/1.1 like the web listener.
//!
//! It lives above the core because a scrape samples the world (connections, registered users,
//! channels, held history) into [`metrics::Sampled`]; `metrics` below it only names and counts.
//!
//! Access is the bind address alone (the config docs say: loopback or a private network); the
//! figures are not secret, and a scraper has no account to log in with. A scrape must not be a
//! way to tie the server up, so each connection carries one request (keep-alive off; scrapers
//! connect again next time), the request head must arrive within [`REQUEST_TIMEOUT`] and fit in
//! [`MAX_REQUEST`] bytes (hyper answers 431 past it), a request body is never read, and a
//! connection lives at most [`CONNECTION_DEADLINE`], so a peer that never reads its answer is
//! dropped too.
//!
//! `/healthz` answers `ok` or 503 with what is down (see [`health`]); a cluster node's scrape
//! adds the `parley_cluster_*` gauges of its bus, peers, stream lag and users.

mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::cluster;
use crate::metrics::{self, MetricsError, Sampled};
use crate::server::Shared;

/// Longest a scraper may take to send its request head, counted from the accept.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection lives: the request head, then as long again to take the answer.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request head; a scrape is one short line and a few headers. (Also hyper's minimum.)
const MAX_REQUEST: usize = 8192;
/// After an accept error (such as running out of file descriptors) wait before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Install the recorder and serve `/metrics` and `/healthz` on `listeners` until shutdown.
pub fn serve(
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    tasks: &TaskTracker,
) -> Result<(), MetricsError> {
    if listeners.is_empty() {
        return Ok(());
    }
    metrics::install()?;
    tasks.spawn(metrics::upkeep(shared.shutdown.clone()));
    let router = router(shared.clone());
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "serving metrics (/metrics, /healthz)");
        }
        tasks.spawn(accept_loop(
            shared.clone(),
            listener,
            router.clone(),
            tasks.clone(),
        ));
    }
    Ok(())
}

/// What the handlers get: the server, and the health checks' cache.
#[derive(Clone)]
struct Served {
    shared: Arc<Shared>,
    checks: Arc<health::Checks>,
}

/// The two paths, GET (and so HEAD) only; 405 names the allowed methods, anything else is 404.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(scrape).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(Served {
            shared,
            checks: Arc::default(),
        })
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    router: Router,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shutdown = shared.shutdown.clone();
                let router = router.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        () = answer(stream, peer, router) => {}
                        _ = shutdown.cancelled() => {}
                    }
                });
            }
            Err(err) => {
                warn!(%err, "metrics accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serve one connection: one request, then close.
async fn answer(stream: TcpStream, peer: SocketAddr, router: Router) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .max_buf_size(MAX_REQUEST)
        .keep_alive(false)
        // `Content-Type`, not `content-type`: what the hand-written listener before this one
        // sent, and what a scraper matching header names by case (wrongly) still finds.
        .title_case_headers(true);
    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => debug!(%peer, %err, "metrics request failed"),
        Err(_) => debug!(%peer, "metrics connection outlived its deadline; dropped"),
    }
}

/// `GET /metrics`: sample the world's counts, then render everything.
async fn scrape(State(served): State<Served>) -> impl IntoResponse {
    let shared = &served.shared;
    if let Some(cluster) = cluster::of(shared) {
        let (local, network) = cluster::observe::user_counts(&shared.world.lock());
        metrics::sample_cluster(&cluster.sample(local, network).await);
    }
    (
        [(header::CONTENT_TYPE, metrics::TEXT_FORMAT)],
        metrics::render(sample(shared)),
    )
}

fn sample(shared: &Shared) -> Sampled {
    let (registered_users, channels) = {
        let world = shared.world.lock();
        let registered = world.users.values().filter(|u| u.registered).count();
        (registered, world.channels.len())
    };
    Sampled {
        connections: shared.connection_count(),
        registered_users,
        channels,
        history_held: shared.history.health().borrow().held,
    }
}

/// `GET /healthz`: `ok`, or 503 with one line per thing that is down.
async fn healthz(State(served): State<Served>) -> (StatusCode, String) {
    let problems = served.checks.problems(&served.shared).await;
    if problems.is_empty() {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let mut body = String::from("not ok\n");
    for problem in problems {
        body.push_str(&problem);
        body.push('\n');
    }
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found; try /metrics or /healthz\n",
    )
}

async fn method_not_allowed() -> (StatusCode, &'static str) {
    (StatusCode::METHOD_NOT_ALLOWED, "use GET\n")
}
