//! The routes: the page (one HTML file and its script and style, embedded), and the JSON API
//! for tables, versions, rows and values. Statistics, lineage and jobs are [`crate::insight`]'s;
//! SQL and saved queries [`crate::sql`]'s.

use crate::{blocking, cells, guard, insight, sql, App, Served, ViewError};
use axum::extract::{Query, State};
use axum::http::{header, HeaderName, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flywheel_formats::Manifest;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Rows a page may ask for at once.
const MAX_PAGE_ROWS: u64 = 500;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const TREE_JS: &str = include_str!("../assets/tree.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Only what the page's own files do: no inline script, nothing from elsewhere.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; media-src 'self'; \
    script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'";

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/t/{*rest}", get(index))
        .route("/sql", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/tables", get(tables))
        .route("/api/info", get(info))
        .route("/api/rows", get(rows))
        .route("/api/media", get(media))
        .route("/api/stats", get(insight::stats))
        .route("/api/lineage", get(insight::lineage))
        .route("/api/job", get(insight::job))
        .route("/api/progress", get(insight::progress))
        .route("/api/sql", post(sql::run))
        .route("/api/sql.csv", get(sql::csv))
        .route("/api/queries", post(sql::save))
        .fallback(not_found)
        .layer(from_fn_with_state(Arc::clone(&app), guard::token))
        .layer(from_fn(guard::no_traversal))
        .with_state(app)
}

async fn not_found(uri: Uri) -> Response {
    guard::page(
        StatusCode::NOT_FOUND,
        &format!("nothing is served at {}", uri.path()),
    )
}

/// The page; a first visit's `?token=` (now a cookie) is dropped from the address bar.
async fn index(uri: Uri) -> Response {
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token=")))
    {
        let rest: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
            .collect();
        let to = if rest.is_empty() {
            uri.path().to_string()
        } else {
            format!("{}?{}", uri.path(), rest.join("&"))
        };
        return Redirect::to(&to).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, mime) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "tree.js" => (TREE_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return guard::page(StatusCode::NOT_FOUND, &format!("no asset '{name}'")),
    };
    ([(header::CONTENT_TYPE, mime)], body).into_response()
}

/// `?t=NAME@V`: a served table's version.
#[derive(Deserialize)]
pub struct At {
    pub t: String,
}

/// The table and manifest `t` names.
pub fn open(app: &App, t: &str) -> Result<(Served, Manifest), ViewError> {
    let (served, version) = app.catalog.address(t)?;
    let manifest = served.manifest(version)?;
    Ok((served.clone(), manifest))
}

fn bytes(m: &Manifest) -> u64 {
    m.files.iter().map(|f| f.bytes).sum()
}

async fn tables(State(app): State<Arc<App>>) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let mut out = Vec::new();
        for served in app.catalog.tables.values() {
            let versions = served.table.versions()?;
            let latest = match versions.last() {
                Some(v) => Some(served.manifest(Some(*v))?),
                None => None,
            };
            out.push(json!({
                "name": served.name,
                "versions": versions.len(),
                "version": latest.as_ref().map(|m| m.version),
                "rows": latest.as_ref().map(|m| m.num_rows),
                "bytes": latest.as_ref().map(bytes),
                "changed": latest.as_ref().map(|m| m.created_at.clone()),
                "operation": latest.as_ref().map(|m| m.operation.clone()),
            }));
        }
        Ok(Json(json!({ "tables": out })))
    })
    .await
}

async fn info(State(app): State<Arc<App>>, Query(at): Query<At>) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &at.t)?;
        let mut versions = Vec::new();
        for v in served.table.versions()? {
            let vm = served.manifest(Some(v))?;
            versions.push(json!({
                "version": v, "created_at": vm.created_at, "operation": vm.operation,
                "rows": vm.num_rows,
            }));
        }
        let schema = flywheel_formats::schema_from_json(&m.schema.to_string())?;
        Ok(Json(json!({
            "name": served.name,
            "version": m.version,
            "versions": versions,
            "rows": m.num_rows,
            "files": m.files.len(),
            "bytes": bytes(&m),
            "created_at": m.created_at,
            "operation": m.operation,
            "schema": cells::schema(&schema),
            "schema_text": flywheel_explore::render::schema_text(&m.schema),
            "job": m.report.is_some(),
            "queries": sql::uses(&app, &served)?,
        })))
    })
    .await
}

#[derive(Deserialize)]
struct Page {
    t: String,
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

/// Rows `offset..offset+limit` of a version: only the files and row groups holding them are
/// read.
async fn rows(
    State(app): State<Arc<App>>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &p.t)?;
        let limit = p.limit.unwrap_or(50).clamp(1, MAX_PAGE_ROWS);
        let start = p.offset.min(m.num_rows);
        let end = start.saturating_add(limit).min(m.num_rows);
        served.check_files(&m, Some(start..end))?;
        let batches = served.table.read_rows(&m, start..end)?;
        let schema = flywheel_formats::schema_from_json(&m.schema.to_string())?;
        Ok(Json(json!({
            "name": served.name,
            "version": m.version,
            "offset": start,
            "total": m.num_rows,
            "columns": cells::schema(&schema),
            "rows": cells::rows(&batches),
        })))
    })
    .await
}

#[derive(Deserialize)]
struct ValueAt {
    t: String,
    row: u64,
    path: String,
}

/// One value's bytes, as `table show --row R --path P --raw` writes them, with the MIME type its
/// magic bytes say (images, audio, video), else text or JSON.
async fn media(
    State(app): State<Arc<App>>,
    Query(q): Query<ValueAt>,
) -> Result<Response, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &q.t)?;
        served.check_files(&m, Some(q.row..q.row.saturating_add(1)))?;
        let found = flywheel_explore::value_at(&served.table, &m, q.row, Some(&q.path))?;
        let raw = flywheel_explore::raw_bytes(&found);
        let mime = match &found {
            flywheel_explore::Found::Arrow(_, a)
                if flywheel_explore::render::bytes_at(a.as_ref(), 0).is_some() =>
            {
                flywheel_formats::sniff(&raw).map_or("application/octet-stream", |(_, mime)| mime)
            }
            flywheel_explore::Found::Json(serde_json::Value::String(_)) => {
                "text/plain; charset=utf-8"
            }
            flywheel_explore::Found::Arrow(f, a)
                if flywheel_explore::render::text_at(a.as_ref(), 0).is_some()
                    && !flywheel_explore::render::is_json_field(f) =>
            {
                "text/plain; charset=utf-8"
            }
            _ => "application/json",
        };
        let nosniff = HeaderName::from_static("x-content-type-options");
        Ok((
            [
                (header::CONTENT_TYPE, mime),
                (nosniff, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'",
                ),
                // A version never changes.
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            raw,
        )
            .into_response())
    })
    .await
}
