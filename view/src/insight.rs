//! A version's statistics (the manifest's, with histograms and top values from its rows,
//! sampled past a size), its lineage and what changed from the version before, and its job
//! (per worker: chunks, rows, GPU).

use crate::api::{open, At};
use crate::{blocking, App, Served, ViewError};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use axum::extract::{Query, State};
use axum::Json;
use flywheel_explore::{profiled, Profiler};
use flywheel_formats::Manifest;
use serde_json::{json, Value};
use std::sync::Arc;

/// Past this many rows, statistics beyond the manifest's come from a sample of this size.
const SAMPLE_ROWS: u64 = 100_000;
/// Runs of consecutive rows the sample is read in, spread over the version.
const SAMPLE_RUNS: u64 = 20;
/// Bars of a histogram.
const BINS: usize = 20;

/// The rows statistics are computed from: all of them, or runs spread evenly over the version.
fn sample(served: &Served, m: &Manifest) -> Result<(Vec<RecordBatch>, Option<String>), ViewError> {
    if m.num_rows <= SAMPLE_ROWS {
        served.check_files(m, None)?;
        return Ok((served.table.read_rows(m, 0..m.num_rows)?, None));
    }
    let run = SAMPLE_ROWS / SAMPLE_RUNS;
    let mut batches = Vec::new();
    for k in 0..SAMPLE_RUNS {
        let start = (m.num_rows - run) * k / (SAMPLE_RUNS - 1);
        served.check_files(m, Some(start..start + run))?;
        batches.extend(served.table.read_rows(m, start..start + run)?);
    }
    let note = format!(
        "histograms and top values from a sample: {} of {} rows, in {SAMPLE_RUNS} runs spread over the version",
        SAMPLE_ROWS, m.num_rows
    );
    Ok((batches, Some(note)))
}

/// The numbers a column's histogram counts: its values (numbers) or lengths (text, bytes,
/// lists); `None` for other columns.
fn measures(col: &dyn Array) -> Option<(&'static str, Vec<f64>)> {
    let dt = col.data_type();
    let valid = |i: &usize| !col.is_null(*i);
    if dt.is_numeric() {
        let cast = arrow::compute::cast(col, &DataType::Float64).ok()?;
        let a = cast.as_primitive::<arrow::datatypes::Float64Type>();
        return Some((
            "value",
            (0..a.len())
                .filter(valid)
                .map(|i| a.value(i))
                .filter(|x| x.is_finite())
                .collect(),
        ));
    }
    let lengths: Vec<f64> = match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (0..col.len())
            .filter(valid)
            .map(|i| {
                flywheel_explore::render::text_at(col, i).map_or(0, |t| t.chars().count()) as f64
            })
            .collect(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => (0..col.len())
            .filter(valid)
            .map(|i| flywheel_explore::render::bytes_at(col, i).map_or(0, <[u8]>::len) as f64)
            .collect(),
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            (0..l.len())
                .filter(valid)
                .map(|i| l.value_length(i) as f64)
                .collect()
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            (0..l.len())
                .filter(valid)
                .map(|i| l.value_length(i) as f64)
                .collect()
        }
        _ => return None,
    };
    Some(("length", lengths))
}

/// Equal-width bins from the smallest to the largest value.
fn histogram(values: &[f64]) -> Value {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        });
    if values.is_empty() {
        return Value::Null;
    }
    let bins = if hi > lo { BINS } else { 1 };
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0u64; bins];
    for x in values {
        let b = (((x - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    json!({"min": lo, "max": hi, "counts": counts})
}

pub async fn stats(
    State(app): State<Arc<App>>,
    Query(at): Query<At>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &at.t)?;
        let reports = flywheel_explore::column_reports(&served.table, &m, &[], true)?;
        let (batches, sampled) = sample(&served, &m)?;
        let mut columns = Vec::new();
        for (i, mut report) in reports.into_iter().enumerate() {
            let mut hist = Value::Null;
            if let Some(first) = batches.first() {
                let dt = first.column(i).data_type().clone();
                if profiled(&dt) {
                    let mut p = Profiler::new(&dt);
                    batches.iter().for_each(|b| p.add(b.column(i).as_ref()));
                    report.profile = Some(p.finish());
                }
                let mut values = Vec::new();
                let mut kind = "";
                for b in &batches {
                    if let Some((k, v)) = measures(b.column(i).as_ref()) {
                        kind = k;
                        values.extend(v);
                    }
                }
                if !kind.is_empty() {
                    hist = json!({"of": kind, "bins": histogram(&values)});
                }
            }
            let mut o = report.to_json();
            o["histogram"] = hist;
            columns.push(o);
        }
        Ok(Json(json!({
            "name": served.name, "version": m.version, "rows": m.num_rows,
            "sampled": sampled, "columns": columns,
        })))
    })
    .await
}

/// What changed from `prev` to `m`: rows, files, schema and each column's statistics.
fn changes(prev: &Manifest, m: &Manifest) -> Value {
    let paths = |x: &Manifest| {
        x.files
            .iter()
            .map(|f| f.path.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (before, after) = (paths(prev), paths(m));
    let stats: Vec<Value> = m
        .columns
        .iter()
        .filter_map(|c| {
            let old = prev.columns.iter().find(|o| o.name == c.name);
            let differs = old.is_none_or(|o| o.nulls != c.nulls || o.min != c.min || o.max != c.max || o.mean != c.mean);
            differs.then(|| json!({
                "column": c.name,
                "before": old.map(|o| json!({"nulls": o.nulls, "min": o.min, "max": o.max, "mean": o.mean})),
                "after": {"nulls": c.nulls, "min": c.min, "max": c.max, "mean": c.mean},
            }))
        })
        .collect();
    json!({
        "from": prev.version,
        "rows": m.num_rows as i128 - prev.num_rows as i128,
        "files_added": after.difference(&before).count(),
        "files_removed": before.difference(&after).count(),
        "schema_changed": prev.schema != m.schema,
        "schema_before": (prev.schema != m.schema).then(|| flywheel_explore::render::schema_text(&prev.schema)),
        "stats": stats,
    })
}

/// The served table and version a lineage's input table is, when it is served.
fn served_input(app: &App, lineage: &Value) -> Option<(String, Option<u64>)> {
    let t = lineage.pointer("/input/table")?;
    let path = t.get("path")?.as_str()?;
    let cwd = lineage.get("cwd").and_then(Value::as_str).unwrap_or("");
    let dir = std::path::Path::new(cwd).join(path);
    let served = app.catalog.by_dir(&dir)?;
    Some((
        served.name.clone(),
        t.get("version").and_then(Value::as_u64),
    ))
}

pub async fn lineage(
    State(app): State<Arc<App>>,
    Query(at): Query<At>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &at.t)?;
        let mut versions = Vec::new();
        let mut prev: Option<Manifest> = None;
        for v in served.table.versions()? {
            let vm = served.manifest(Some(v))?;
            let input = served_input(&app, &vm.lineage);
            versions.push(json!({
                "version": v, "created_at": vm.created_at, "operation": vm.operation,
                "rows": vm.num_rows, "files": vm.files.len(),
                "mapper": vm.lineage.get("mapper"),
                "input": vm.lineage.pointer("/input/address"),
                "input_served": input.map(|(name, v)| json!({"name": name, "version": v})),
                "options": vm.lineage.get("options"),
                "slurm_job_ids": vm.lineage.get("slurm_job_ids"),
                "job_id": vm.job_id, "host": vm.lineage.get("host"),
                "changes": prev.as_ref().map(|p| changes(p, &vm)),
            }));
            prev = Some(vm);
        }
        let mut derived = Vec::new();
        for other in app.catalog.tables.values() {
            for v in other.table.versions().unwrap_or_default() {
                let Ok(om) = other.manifest(Some(v)) else {
                    continue;
                };
                if let Some((name, from)) = served_input(&app, &om.lineage) {
                    if name == served.name {
                        derived
                            .push(json!({"name": other.name, "version": v, "from_version": from}));
                    }
                }
            }
        }
        Ok(Json(json!({
            "name": served.name, "version": m.version, "versions": versions, "derived": derived,
        })))
    })
    .await
}

/// A version's job: its report and, per worker, the chunks it wrote (from each file's
/// provenance), in the order the manifest lists them.
pub async fn job(
    State(app): State<Arc<App>>,
    Query(at): Query<At>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, m) = open(&app, &at.t)?;
        let Some(report) = m.report.clone() else {
            return Err(ViewError::NotFound(format!(
                "{}@{} was not written by a job (no job report)",
                served.name, m.version
            )));
        };
        let mut by_worker: std::collections::BTreeMap<u64, Vec<Value>> = Default::default();
        for f in &m.files {
            let Some(p) = &f.provenance else { continue };
            let worker = p.get("worker").and_then(Value::as_u64).unwrap_or(0);
            by_worker.entry(worker).or_default().push(json!({
                "chunk": p.get("chunk"), "attempt": p.get("attempt"), "host": p.get("host"),
                "rows_in": p.get("rows_in"), "rows_out": p.get("rows_out"), "wall_ms": p.get("wall_ms"),
            }));
        }
        let workers: Vec<Value> = by_worker
            .into_iter()
            .map(|(w, chunks)| json!({"worker": w, "chunks": chunks}))
            .collect();
        Ok(Json(json!({
            "name": served.name, "version": m.version, "job_id": m.job_id,
            "report": report, "timeline": workers,
        })))
    })
    .await
}

/// `?t=NAME`: the progress of the latest job writing to a served table, from its journal
/// (`null` when no job wrote there).
pub async fn progress(
    State(app): State<Arc<App>>,
    Query(at): Query<At>,
) -> Result<Json<Value>, ViewError> {
    blocking(move || {
        let (served, _) = app.catalog.address(&at.t)?;
        served.check_inside(&served.dir.join("_journal.jsonl"))?;
        let p = flywheel_coordinator::JobProgress::of_table(&served.dir)
            .map_err(|e| ViewError::Internal(e.to_string()))?;
        Ok(Json(
            json!({ "name": served.name, "progress": p.map(|p| p.to_json()) }),
        ))
    })
    .await
}
