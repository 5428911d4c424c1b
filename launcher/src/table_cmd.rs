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
        .map(|f| match flywheel_formats::Field::from_arrow(f) {
            Some(ff) => format!(
                "{}: {}{}",
                ff.name,
                ff.ty,
                if ff.nullable { "?" } else { "" }
            ),
            None => format!(
                "{}: {}{}",
                f.name(),
                f.data_type(),
                if f.is_nullable() { "?" } else { "" }
            ),
        })
        .collect::<Vec<_>>()
        .join(" | ")
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
