//! `flywheel view`: a read-only dataset viewer in the browser.
//!
//! One process serves the tables found under the paths it is given ([`catalog`]): a small page
//! (HTML, JavaScript and CSS embedded in the binary: no CDN, nothing installed) and a JSON API
//! behind it ([`api`], [`sql`], [`insight`]). Rows are read a page at a time, only the row
//! groups a page needs; SQL runs through `flywheel query`'s read-only guard; the only write is a
//! saved query (`T/_queries/NAME.json`, never replacing one).
//!
//! Security ([`guard`]): every request needs the token printed at start (a cookie after the
//! first visit); paths with `..` are refused before routing; a table is reached only by its
//! served name and every file read is checked to resolve inside its table.

mod api;
mod catalog;
mod cells;
mod guard;
mod insight;
mod sql;

pub use catalog::{Catalog, Served};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong serving.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A path given on the command line that is not usable.
    #[error("{}: {reason}", .path.display())]
    Path { path: PathBuf, reason: String },
    /// The address could not be bound, or the runtime not started.
    #[error("cannot serve on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    /// A request the viewer refuses to answer (bad parameters).
    #[error("{0}")]
    BadRequest(String),
    /// A request for something that is not there.
    #[error("{0}")]
    NotFound(String),
    /// A request for something outside the served tables.
    #[error("{0}")]
    Forbidden(String),
    /// Something exists already (a saved query's name).
    #[error("{0}")]
    Conflict(String),
    /// Reading a table failed.
    #[error("{0}")]
    Format(#[from] flywheel_formats::FormatError),
    /// Following a path or profiling columns failed.
    #[error("{0}")]
    Explore(#[from] flywheel_explore::ExploreError),
    /// A query refused or failed.
    #[error("query: {0}")]
    Query(#[from] flywheel_query::QueryError),
    /// Writing a saved query failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request's work could not finish.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ViewError {
    fn status(&self) -> StatusCode {
        use flywheel_formats::FormatError as F;
        match self {
            ViewError::BadRequest(_) | ViewError::Query(_) | ViewError::Explore(_) => {
                StatusCode::BAD_REQUEST
            }
            ViewError::NotFound(_)
            | ViewError::Format(F::VersionMissing { .. } | F::NoVersion(_) | F::NoSuchRow { .. }) => {
                StatusCode::NOT_FOUND
            }
            ViewError::Forbidden(_) => StatusCode::FORBIDDEN,
            ViewError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// API errors are JSON (`{"error": "…"}`) with their status; the page shows the message.
impl IntoResponse for ViewError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::info!("{status}: {self}");
        let body = serde_json::json!({ "error": self.to_string() });
        (status, axum::Json(body)).into_response()
    }
}

/// How to serve.
pub struct Options {
    /// Tables, or directories holding tables.
    pub paths: Vec<PathBuf>,
    pub host: String,
    /// 0: any free port.
    pub port: u16,
}

/// What every request handler shares.
pub struct App {
    pub catalog: Catalog,
    pub token: String,
    /// The cookie that carries the token, named after the port: browsers keep one cookie jar
    /// per host, not per port, and two viewers on one machine must not replace each other's.
    pub cookie: String,
}

/// Serves until interrupted (SIGINT or SIGTERM). `ready` gets the URL to open (with the token)
/// once the port is bound; `flywheel view` prints it as its first line.
pub fn serve(options: Options, ready: impl FnOnce(&str)) -> Result<(), ViewError> {
    let catalog = Catalog::discover(&options.paths)?;
    let token = guard::new_token()?;
    let address = format!("{}:{}", options.host, options.port);
    let bind_err = |source| ViewError::Bind {
        address: address.clone(),
        source,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("flywheel-view")
        .build()
        .map_err(bind_err)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port))
            .await
            .map_err(bind_err)?;
        let port = listener.local_addr().map_err(bind_err)?.port();
        let host = if options.host.contains(':') {
            format!("[{}]", options.host)
        } else {
            options.host.clone()
        };
        ready(&format!("http://{host}:{port}/?token={token}"));
        let app = Arc::new(App {
            catalog,
            token,
            cookie: format!("{}_{port}", guard::COOKIE),
        });
        axum::serve(listener, api::router(app))
            .with_graceful_shutdown(interrupted())
            .await
            .map_err(bind_err)
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // No signal handling: serve until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Runs blocking work (file reads, queries) off the server's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ViewError> + Send + 'static,
) -> Result<T, ViewError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ViewError::Internal(e.to_string()))?
}
