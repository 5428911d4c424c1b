//! `flywheel table …`: looking at versions, files and lineage.

use crate::cli::TableCommand;
use crate::error::{CliError, OrBadInput};
use flywheel_formats::{Manifest, Table, TableRef};

fn open(address: &str) -> Result<(Table, Manifest), CliError> {
    let tref = TableRef::parse(address).or_bad_input()?;
    let table = Table::new(&tref.path);
    let manifest = table.manifest(tref.version).or_bad_input()?;
    Ok((table, manifest))
}

/// The schema in flywheel's language (Arrow's type names for columns the language cannot express).
fn schema_text(schema: &serde_json::Value) -> String {
    let Ok(arrow) = serde_json::from_value::<flywheel_formats::ArrowSchema>(schema.clone()) else {
        return schema.to_string();
    };
    if let Some(s) = flywheel_formats::Schema::from_arrow(&arrow) {
        return s.to_string();
    }
    arrow
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), type_text(f)))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A column's type in flywheel's language (Arrow's name where the language has none), `?` when
/// nullable.
pub fn type_text(f: &arrow::datatypes::Field) -> String {
    match flywheel_formats::Field::from_arrow(f) {
        Some(ff) => format!("{}{}", ff.ty, if ff.nullable { "?" } else { "" }),
        None => format!(
            "{}{}",
            f.data_type(),
            if f.is_nullable() { "?" } else { "" }
        ),
    }
}

pub fn table(cmd: TableCommand) -> Result<(), CliError> {
    match cmd {
        TableCommand::Info { table, json } => {
            let (t, m) = open(&table)?;
            if json {
                let mut v = serde_json::to_value(&m).unwrap_or_default();
                v["path"] = serde_json::json!(
                    std::fs::canonicalize(t.dir()).unwrap_or_else(|_| t.dir().to_path_buf())
                );
                v["versions"] = serde_json::json!(t.versions().or_bad_input()?);
                v["schema_text"] = serde_json::json!(schema_text(&m.schema));
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
            println!(
                "table:    {}",
                std::fs::canonicalize(t.dir())
                    .unwrap_or_else(|_| t.dir().to_path_buf())
                    .display()
            );
            println!(
                "version:  {} (of {})",
                m.version,
                t.versions().or_bad_input()?.len()
            );
            println!("created:  {}", m.created_at);
            println!("operation: {}", m.operation);
            println!("rows:     {}", m.num_rows);
            println!("files:    {} ({bytes} bytes)", m.files.len());
            println!("schema:");
            for line in schema_text(&m.schema).split(" | ") {
                println!("  {line}");
            }
            if let Some(l) = m.lineage.as_object() {
                println!("lineage:");
                for key in [
                    "mapper",
                    "input",
                    "seed",
                    "slurm_job_id",
                    "host",
                    "started_at",
                    "finished_at",
                    "flywheel_version",
                ] {
                    if let Some(v) = l.get(key) {
                        let text = match key {
                            "mapper" => {
                                v["spec"].as_str().unwrap_or("").to_string()
                                    + &v["sha256"]
                                        .as_str()
                                        .map(|s| format!(" (sha256 {})", &s[..12.min(s.len())]))
                                        .unwrap_or_default()
                            }
                            "input" => v["address"].as_str().unwrap_or("").to_string(),
                            _ => v.to_string().trim_matches('"').to_string(),
                        };
                        println!("  {key}: {text}");
                    }
                }
            }
        }
        TableCommand::Head { table, n, columns } => {
            let (t, m) = open(&table)?;
            head(&t, &m, n, columns.as_deref())?;
        }
        TableCommand::Show {
            table,
            row,
            path,
            raw,
        } => {
            let (t, m) = open(&table)?;
            show(&t, &m, row, path.as_deref(), raw)?;
        }
        TableCommand::Stats {
            table,
            columns,
            json,
            fast,
        } => {
            let (t, m) = open(&table)?;
            crate::stats_cmd::stats(&t, &m, &columns, json, fast)?;
        }
        TableCommand::Files { table } => {
            let (t, m) = open(&table)?;
            for p in t.file_paths(&m) {
                println!("{}", p.display());
            }
        }
        TableCommand::Vacuum {
            table,
            keep,
            dry_run,
            force,
        } => {
            let tref = TableRef::parse(&table).or_bad_input()?;
            let t = Table::new(&tref.path);
            let keep = keep.unwrap_or(usize::MAX);
            if keep == 0 {
                return Err(crate::error::bad_input(anyhow::anyhow!(
                    "--keep must be at least 1"
                )));
            }
            // Error rows a crashed job committed but did not yet derive into `_errors` are
            // derived first, so that vacuuming `_errors` never takes them for orphans.
            let main = if tref.path.file_name().is_some_and(|n| n == "_errors") {
                tref.path.parent().map(Table::new)
            } else {
                Some(Table::new(&tref.path))
            };
            if let Some(main) = main.filter(|m| Table::is_table(m.dir())) {
                if let Err(e) = flywheel_coordinator::complete_errors(&main) {
                    tracing::warn!("{}/_errors: {e}", main.dir().display());
                }
            }
            let report = t.vacuum(keep, dry_run, force).or_bad_input()?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for v in &report.versions {
                println!("{verb} version {v}");
            }
            for (p, bytes) in &report.files {
                println!("{verb} {} ({bytes} bytes)", p.display());
            }
            let total: u64 = report.files.iter().map(|(_, b)| b).sum();
            eprintln!(
                "{verb} {} version(s) and {} file(s), {total} bytes",
                report.versions.len(),
                report.files.len()
            );
        }
        TableCommand::Log { table } => {
            let tref = TableRef::parse(&table).or_bad_input()?;
            let t = Table::new(&tref.path);
            let versions = t.versions().or_bad_input()?;
            if versions.is_empty() {
                return Err(crate::error::bad_input(
                    flywheel_formats::FormatError::NoVersion(tref.path),
                ));
            }
            for v in versions {
                let m = t.manifest(Some(v)).or_bad_input()?;
                let mapper = m.lineage["mapper"]["spec"].as_str().unwrap_or("-");
                let input = m.lineage["input"]["address"].as_str().unwrap_or("-");
                println!(
                    "{:>4}  {}  {:<9}  {:>10} rows  {:>4} files  {input} → {mapper}",
                    m.version,
                    m.created_at,
                    m.operation,
                    m.num_rows,
                    m.files.len()
                );
            }
        }
    }
    Ok(())
}

const CELL: usize = 48;

/// One value, short: media as `<image/png 12.3 KiB>`, vectors abbreviated, long text cut.
fn cell(col: &dyn arrow::array::Array, i: usize) -> String {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    if col.is_null(i) {
        return "null".to_string();
    }
    let cut = |s: String| {
        if s.chars().count() > CELL {
            format!("{}…", s.chars().take(CELL - 1).collect::<String>())
        } else {
            s
        }
    };
    match col.data_type() {
        DataType::Binary => flywheel_formats::bytes_summary(col.as_binary::<i32>().value(i)),
        DataType::LargeBinary => flywheel_formats::bytes_summary(col.as_binary::<i64>().value(i)),
        DataType::FixedSizeList(_, n) => {
            let values = col.as_fixed_size_list().value(i);
            let shown: Vec<String> = (0..(*n as usize).min(3))
                .map(|k| {
                    arrow::util::display::array_value_to_string(&values, k).unwrap_or_default()
                })
                .collect();
            format!("[{}, … {n} values]", shown.join(", "))
        }
        // Shown in UTC without needing the time-zone database.
        DataType::Timestamp(unit, Some(_)) => {
            let naive = arrow::compute::cast(&col.slice(i, 1), &DataType::Timestamp(*unit, None));
            naive
                .ok()
                .and_then(|a| arrow::util::display::array_value_to_string(&a, 0).ok())
                .map(|s| format!("{s}Z"))
                .unwrap_or_default()
        }
        _ => cut(arrow::util::display::array_value_to_string(col, i)
            .unwrap_or_default()
            .replace('\n', "⏎")),
    }
}

/// `table head`: the first `n` rows of a version.
fn head(t: &Table, m: &Manifest, n: usize, columns: Option<&str>) -> Result<(), CliError> {
    use flywheel_protocol::{InputFormat, InputSlice};
    let mut batches = Vec::new();
    let mut left = n as u64;
    for (f, path) in m.files.iter().zip(t.file_paths(m)) {
        if left == 0 {
            break;
        }
        let take = left.min(f.rows);
        let slice = InputSlice {
            path: path.to_string_lossy().into_owned(),
            format: InputFormat::Parquet,
            group: None,
            row_start: 0,
            row_count: take,
            bytes: None,
            schema: None,
        };
        batches.extend(flywheel_formats::read_slice(&slice, 1024).or_bad_input()?);
        left -= take;
    }
    let Some(first) = batches.first() else {
        println!("(no rows)");
        return Ok(());
    };
    let schema = first.schema();
    let wanted: Vec<usize> = match columns {
        None => (0..schema.fields().len()).collect(),
        Some(list) => list
            .split(',')
            .map(|c| {
                schema.index_of(c.trim()).map_err(|_| {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    crate::error::bad_input(anyhow::anyhow!(
                        "no column '{}' (columns: {})",
                        c.trim(),
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    print!("{}", aligned(&schema, &batches, &wanted));
    Ok(())
}

/// Columns `wanted` of `batches` as an aligned table with a header line.
pub fn aligned(
    schema: &arrow::datatypes::Schema,
    batches: &[arrow::record_batch::RecordBatch],
    wanted: &[usize],
) -> String {
    let mut rows: Vec<Vec<String>> = vec![wanted
        .iter()
        .map(|i| schema.field(*i).name().clone())
        .collect()];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                wanted
                    .iter()
                    .map(|c| cell(b.column(*c).as_ref(), r))
                    .collect(),
            );
        }
    }
    align(&rows)
}

/// Rows of cells as lines whose columns line up (cells padded to their column's width).
pub fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `table show`: one row, or the value a path leads to, pretty-printed (or raw).
fn show(t: &Table, m: &Manifest, row: u64, path: Option<&str>, raw: bool) -> Result<(), CliError> {
    use std::io::Write;
    let batch = flywheel_formats::read_row(t, m, row).or_bad_input()?;
    let found = match path {
        None => {
            let schema = batch.schema();
            let v = serde_json::Value::Object(
                schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| {
                        (
                            f.name().clone(),
                            flywheel_formats::to_json(f, c.as_ref(), 0),
                        )
                    })
                    .collect(),
            );
            flywheel_formats::Found::Json(v)
        }
        Some(p) => {
            let steps = flywheel_formats::parse_path(p).or_bad_input()?;
            flywheel_formats::navigate(&batch, &steps).map_err(|miss| {
                let deepest = if miss.deepest.is_empty() {
                    String::new()
                } else {
                    format!("; the deepest part that exists is '{}'", miss.deepest)
                };
                crate::error::bad_input(anyhow::anyhow!(
                    "no value at '{p}' in row {row} of {}@{}: {}{deepest}",
                    t.dir().display(),
                    m.version,
                    miss.reason
                ))
            })?
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if raw {
        out.write_all(&flywheel_formats::raw_bytes(&found))
    } else {
        let v = match &found {
            flywheel_formats::Found::Arrow(f, a) => flywheel_formats::to_json(f, a.as_ref(), 0),
            flywheel_formats::Found::Json(v) => v.clone(),
        };
        writeln!(out, "{}", flywheel_formats::pretty(&v))
    };
    // A closed stdout never gets here: this command dies of SIGPIPE, quietly (main.rs).
    written.or_bad_input()
}
