//! `flywheel table …`: looking at versions, files and lineage.

use crate::cli::TableCommand;
use crate::error::{bad_input, CliError, OrBadInput};
use anyhow::anyhow;
use flywheel_explore::render;
use flywheel_formats::{Manifest, Table, TableRef};

fn open(address: &str) -> Result<(Table, Manifest), CliError> {
    let tref = TableRef::parse(address).or_bad_input()?;
    let table = Table::new(&tref.path);
    let manifest = table.manifest(tref.version).or_bad_input()?;
    // A read also completes the Delta log a crash left behind (docs/format.md).
    table.settle();
    Ok((table, manifest))
}

pub fn table(cmd: TableCommand) -> Result<(), CliError> {
    match cmd {
        TableCommand::Info { table, json } => {
            let (t, m) = open(&table)?;
            info(&t, &m, json)
        }
        TableCommand::Head { table, n, columns } => {
            let (t, m) = open(&table)?;
            head(&t, &m, n, columns.as_deref())
        }
        TableCommand::Show {
            table,
            row,
            path,
            raw,
        } => {
            let (t, m) = open(&table)?;
            show(&t, &m, row, path.as_deref(), raw)
        }
        TableCommand::Stats {
            table,
            columns,
            json,
            fast,
        } => {
            let (t, m) = open(&table)?;
            crate::stats_cmd::stats(&t, &m, &columns, json, fast)
        }
        TableCommand::Files { table } => {
            let (t, m) = open(&table)?;
            for p in t.file_paths(&m) {
                println!("{}", p.display());
            }
            Ok(())
        }
        TableCommand::Vacuum {
            table,
            keep,
            dry_run,
            force,
        } => vacuum(&table, keep, dry_run, force),
        TableCommand::Log { table } => log(&table),
    }
}

/// The table's directory as given, made absolute where it can be.
fn absolute(t: &Table) -> std::path::PathBuf {
    std::fs::canonicalize(t.dir()).unwrap_or_else(|_| t.dir().to_path_buf())
}

/// `table info`: a version's manifest, in words or as JSON.
fn info(t: &Table, m: &Manifest, json: bool) -> Result<(), CliError> {
    if json {
        let mut v = serde_json::to_value(m).unwrap_or_default();
        v["path"] = serde_json::json!(absolute(t));
        v["versions"] = serde_json::json!(t.versions().or_bad_input()?);
        v["schema_text"] = serde_json::json!(render::schema_text(&m.schema));
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    println!("table:    {}", absolute(t).display());
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
    for line in render::schema_text(&m.schema).split(" | ") {
        println!("  {line}");
    }
    if let Some(l) = m.lineage.as_object() {
        println!("lineage:");
        for (key, text) in lineage_lines(l) {
            println!("  {key}: {text}");
        }
    }
    Ok(())
}

/// The lineage's entries `table info` shows, in its order, each as one line of text.
fn lineage_lines(l: &serde_json::Map<String, serde_json::Value>) -> Vec<(&'static str, String)> {
    let keys = [
        "mapper",
        "input",
        "seed",
        "incremental",
        "slurm_job_id",
        "slurm_job_ids",
        "slurm_steps",
        "host",
        "started_at",
        "finished_at",
        "flywheel_version",
    ];
    keys.into_iter()
        .filter_map(|key| {
            let v = l.get(key)?;
            if v.as_array().is_some_and(Vec::is_empty) {
                return None;
            }
            let text = match key {
                "mapper" => {
                    v["spec"].as_str().unwrap_or("").to_string()
                        + &v["sha256"]
                            .as_str()
                            .map(|s| format!(" (sha256 {})", &s[..12.min(s.len())]))
                            .unwrap_or_default()
                }
                "input" => v["address"].as_str().unwrap_or("").to_string(),
                "incremental" => incremental_line(v),
                "slurm_job_ids" | "slurm_steps" => v
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|id| id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                _ => v.to_string().trim_matches('"').to_string(),
            };
            Some((key, text))
        })
        .collect()
}

/// "6 of 8 chunks reused from version 1, 2 computed (new input: 2)".
fn incremental_line(v: &serde_json::Value) -> String {
    let reasons: Vec<String> = v["recomputed"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(why, n)| format!("{why}: {n}"))
        .collect();
    format!(
        "{} of {} chunks reused{}, {} computed{}",
        v["reused"],
        v["chunks"],
        v["base_version"]
            .as_u64()
            .map(|b| format!(" from version {b}"))
            .unwrap_or_default(),
        v["computed"],
        match reasons.is_empty() {
            true => String::new(),
            false => format!(" ({})", reasons.join(", ")),
        }
    )
}

/// `table head`: the first `n` rows of a version.
fn head(t: &Table, m: &Manifest, n: usize, columns: Option<&str>) -> Result<(), CliError> {
    let batches = t
        .read_rows(m, 0..(n as u64).min(m.num_rows))
        .or_bad_input()?;
    let Some(first) = batches.first() else {
        println!("(no rows)");
        return Ok(());
    };
    let schema = first.schema();
    let wanted: Vec<usize> = match columns {
        None => (0..schema.fields().len()).collect(),
        Some(list) => {
            let names: Vec<&str> = list.split(',').collect();
            flywheel_explore::column_indices(&schema, &names).or_bad_input()?
        }
    };
    print!("{}", render::aligned(&schema, &batches, &wanted));
    Ok(())
}

/// `table show`: one row, or the value a path leads to, pretty-printed (or raw).
fn show(t: &Table, m: &Manifest, row: u64, path: Option<&str>, raw: bool) -> Result<(), CliError> {
    use std::io::Write;
    let found = flywheel_explore::value_at(t, m, row, path).or_bad_input()?;
    let mut out = std::io::stdout().lock();
    let written = if raw {
        out.write_all(&render::raw_bytes(&found))
    } else {
        writeln!(out, "{}", render::pretty(&found.to_json()))
    };
    // A closed stdout never gets here: this command dies of SIGPIPE, quietly (main.rs).
    written.or_bad_input()
}

/// `table vacuum`: removes old versions and the files only they reference.
fn vacuum(table: &str, keep: Option<usize>, dry_run: bool, force: bool) -> Result<(), CliError> {
    let tref = TableRef::parse(table).or_bad_input()?;
    if let Some(v) = tref.version {
        return Err(bad_input(anyhow!(
            "vacuum works on a whole table, not on version {v} of it ({table}): give {} and say how many versions to keep with --keep N",
            tref.path.display()
        )));
    }
    let t = Table::new(&tref.path);
    let keep = keep.unwrap_or(usize::MAX);
    if keep == 0 {
        return Err(bad_input(anyhow!("--keep must be at least 1")));
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
    Ok(())
}

/// `table log`: one line per version (`T@V`: the history up to version V).
fn log(table: &str) -> Result<(), CliError> {
    let tref = TableRef::parse(table).or_bad_input()?;
    let t = Table::new(&tref.path);
    let mut versions = t.versions().or_bad_input()?;
    t.settle();
    if versions.is_empty() {
        return Err(bad_input(flywheel_formats::FormatError::NoVersion(
            tref.path,
        )));
    }
    if let Some(upto) = tref.version {
        // The version must exist (or have existed and been vacuumed: then its manifest is gone
        // and the error says so).
        t.manifest(Some(upto)).or_bad_input()?;
        versions.retain(|v| *v <= upto);
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
    Ok(())
}
