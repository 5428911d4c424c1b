//! SQL over the served tables at chosen versions (DataFusion, behind `flywheel query`'s
//! read-only guard), its CSV download, and saved queries: `T/_queries/NAME.json`, written once
//! (never replaced), listed on every table they read as its existing uses.

use crate::api::open;
use crate::{blocking, cells, App, Served, ViewError};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Rows of a result sent at once.
const MAX_RESULT_ROWS: usize = 500;
/// Where a table keeps its saved queries.
const QUERIES_DIR: &str = "_queries";

/// A query and the tables it reads: SQL name → `TABLE@V`.
#[derive(Deserialize, Serialize, Clone)]
pub struct Ask {
    pub sql: String,
    pub tables: BTreeMap<String, String>,
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

fn execute(app: &App, ask: &Ask) -> Result<flywheel_query::QueryResult, ViewError> {
    if ask.tables.is_empty() {
        return Err(ViewError::BadRequest(
            "choose the tables the query reads (a name and TABLE@V each)".into(),
        ));
    }
    flywheel_query::check_read_only(&ask.sql)?;
    let mut opened = Vec::new();
    for (name, address) in &ask.tables {
        let (served, m) = open(app, address)?;
        served.check_files(&m, None)?;
        opened.push((name.clone(), served, m));
    }
    let registered: Vec<flywheel_query::Registered<'_>> = opened
        .iter()
        .map(|(name, served, m)| flywheel_query::Registered {
            name,
            table: &served.table,
            manifest: m,
        })
        .collect();
    Ok(flywheel_query::run(&ask.sql, &registered)?)
}

/// Runs a query; answers one page of its rows (all rows are counted).
pub async fn run(
    State(app): State<Arc<App>>,
    Json(ask): Json<Ask>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let result = execute(&app, &ask)?;
        let all = arrow::compute::concat_batches(&result.schema, &result.batches)
            .map_err(|e| ViewError::Internal(e.to_string()))?;
        let offset = ask.offset.min(all.num_rows());
        let limit = ask.limit.unwrap_or(100).clamp(1, MAX_RESULT_ROWS);
        let page = all.slice(offset, limit.min(all.num_rows() - offset));
        Ok(Json(json!({
            "columns": cells::schema(&result.schema),
            "rows": cells::rows(&[page]),
            "offset": offset,
            "total": all.num_rows(),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct CsvAsk {
    /// The [`Ask`] as JSON text (a download is a plain link).
    q: String,
}

/// The whole result as CSV, as `flywheel query --format csv` writes it.
pub async fn csv(
    State(app): State<Arc<App>>,
    Query(q): Query<CsvAsk>,
) -> Result<Response, ViewError> {
    blocking(move || {
        let ask: Ask = serde_json::from_str(&q.q)
            .map_err(|e| ViewError::BadRequest(format!("q: not a query ({e})")))?;
        let result = execute(&app, &ask)?;
        let mut out = Vec::new();
        flywheel_query::write_csv(&result, &mut out)
            .map_err(|e| ViewError::Internal(e.to_string()))?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"query.csv\"",
                ),
            ],
            out,
        )
            .into_response())
    })
    .await
}

/// A query to save with a table.
#[derive(Deserialize)]
pub struct Save {
    /// The served table it is stored with.
    pub table: String,
    pub name: String,
    pub sql: String,
    pub tables: BTreeMap<String, String>,
    #[serde(default)]
    pub who: String,
}

/// A saved query, as stored.
#[derive(Serialize, Deserialize)]
struct Saved {
    name: String,
    sql: String,
    tables: BTreeMap<String, String>,
    who: String,
    created_at: String,
}

/// A saved query's name: letters, digits, `_` and `-`, at most 64.
fn check_name(name: &str) -> Result<(), ViewError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ViewError::BadRequest(format!(
            "query name '{name}': use 1 to 64 letters, digits, '_' or '-'"
        )))
    }
}

/// Saves a query with a table: refused when the name is taken, the SQL is not read-only or it
/// names a table or version that is not served.
pub async fn save(
    State(app): State<Arc<App>>,
    Json(s): Json<Save>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        check_name(&s.name)?;
        flywheel_query::check_read_only(&s.sql)?;
        // Stored at the versions they name now: `T` and `T@latest` become `T@V`.
        let mut tables = BTreeMap::new();
        for (alias, address) in &s.tables {
            let (served, m) = open(&app, address)?;
            tables.insert(alias.clone(), format!("{}@{}", served.name, m.version));
        }
        let (served, _) = app.catalog.address(&s.table)?;
        let who = match s.who.trim() {
            "" => std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            w if w.len() <= 100 && !w.contains(['\n', '\r']) => w.to_string(),
            _ => {
                return Err(ViewError::BadRequest(
                    "who: at most 100 characters, one line".into(),
                ))
            }
        };
        let saved = Saved {
            name: s.name.clone(),
            sql: s.sql,
            tables,
            who,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        write_once(served, &saved)?;
        Ok(Json(json!({ "saved": s.name, "table": served.name })))
    })
    .await
}

/// Writes `T/_queries/NAME.json` whole or not at all, never replacing one: a synced temporary
/// file linked to its name (`link(2)` fails on an existing name).
fn write_once(served: &Served, saved: &Saved) -> Result<(), ViewError> {
    let dir = served.dir.join(QUERIES_DIR);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ViewError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    served.check_inside(&dir)?;
    let target = dir.join(format!("{}.json", saved.name));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!(".tmp-{}-{nanos}.json", std::process::id()));
    let text = serde_json::to_vec_pretty(saved).map_err(|e| ViewError::Internal(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    let linked = std::fs::hard_link(&tmp, &target);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(ViewError::Conflict(format!(
                "a query named '{}' is already saved with {}",
                saved.name, served.name
            )))
        }
        Err(e) => Err(io(&target)(e)),
    }
}

/// The queries saved with `served`, and those saved elsewhere that read it: its existing uses.
pub fn uses(app: &App, served: &Served) -> Result<Vec<Value>, ViewError> {
    let mut out = Vec::new();
    for other in app.catalog.tables.values() {
        for q in stored(other) {
            let reads = q.tables.values().any(|address| {
                app.catalog
                    .address(address)
                    .is_ok_and(|(s, _)| s.name == served.name)
            });
            if other.name == served.name || reads {
                out.push(json!({
                    "name": q.name, "sql": q.sql, "tables": q.tables, "who": q.who,
                    "created_at": q.created_at, "stored_with": other.name,
                }));
            }
        }
    }
    Ok(out)
}

/// The readable queries saved with a table (plain files only: a symlink is not followed).
fn stored(served: &Served) -> Vec<Saved> {
    let Ok(entries) = std::fs::read_dir(served.dir.join(QUERIES_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<Saved> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".json") && !n.starts_with('.')
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
    out
}
