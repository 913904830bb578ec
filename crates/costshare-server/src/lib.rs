//! # costshare-server
//!
//! `costshare serve`: the HTTP API and the dashboard over one ledger. Every
//! answer comes from the same `costshare-app` call and the same renderer as
//! the command line, so a figure served equals the figure printed.
//!
//! The process keeps no state of its own that matters: the journal, the
//! derived state and the tokens are in the ledger's database, so several
//! processes may serve one PostgreSQL ledger behind a load balancer. What it
//! keeps in memory is a cache keyed by the journal's head: a request first
//! reads the head (one small query), and answers from memory when nothing
//! was written since.
//!
//! - [`auth`] checks bearer tokens, roles, party scope, slowing repeated failures.
//! - [`api`] holds the `/api/v1` handlers.
//! - [`cache`] keeps answers kept per journal head.
//! - [`openapi`] serves `/openapi.json`.
//! - [`assets`] serves the dashboard, built into the binary.
//! - [`analysis`] holds compare, forecast and the built-in examples.
//! - [`whatif`] applies edits of an agreement, re-allocated on the fly.

pub mod analysis;
pub mod api;
pub mod assets;
pub mod auth;
pub mod cache;
pub mod error;
pub mod openapi;
pub mod whatif;

use std::net::SocketAddr;
use std::sync::Arc;

/// How to serve.
#[derive(Clone, Debug)]
pub struct Config {
    /// The ledger: a SQLite file path or a `postgres://` URL.
    pub ledger: String,
    /// `HOST:PORT` (port 0: any free port).
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Log each request on stderr.
    pub log: bool,
}

impl Config {
    pub fn new(ledger: &str, listen: &str) -> Config {
        Config {
            ledger: ledger.to_string(),
            listen: listen.to_string(),
            body_limit: 64 * 1024 * 1024,
            log: true,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug)]
pub enum ServerError {
    /// The ledger could not be opened (the app's error, worded by `words`).
    Ledger(costshare_app::AppError),
    /// The address could not be bound or parsed.
    Listen { addr: String, error: std::io::Error },
    /// The runtime could not start.
    Runtime(std::io::Error),
}

/// Serve until Ctrl-C (or SIGTERM). `ready` hears the bound address first.
pub fn serve(cfg: Config, ready: impl FnOnce(SocketAddr)) -> Result<(), ServerError> {
    error::set_ledger(&cfg.ledger);
    // the ledger must open before we listen: a wrong path is said at once
    let mut l = costshare_store::Ledger::open(&cfg.ledger).map_err(|e| ServerError::Ledger(e.into()))?;
    l.head().map_err(|e| ServerError::Ledger(e.into()))?.ok_or_else(|| {
        ServerError::Ledger(costshare_app::AppError::from(costshare_store::StoreError::NotFound(
            cfg.ledger.clone(),
        )))
    })?;
    drop(l);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|error| ServerError::Listen {
                addr: cfg.listen.clone(),
                error,
            })?;
        let addr = listener.local_addr().map_err(ServerError::Runtime)?;
        ready(addr);
        let state = Arc::new(api::Shared::new(cfg));
        let app = api::router(state);
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(ServerError::Runtime)
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
