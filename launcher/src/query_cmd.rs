//! `flywheel query`: SQL over tables at chosen versions.

use crate::cli::{QueryArgs, QueryFormat};
use crate::error::{bad_input, CliError, OrBadInput};
use anyhow::anyhow;
use arrow::record_batch::RecordBatch;
use flywheel_formats::{Manifest, Table, TableRef};
use std::io::Write;

/// `NAME=TABLE[@V]` → (NAME, TABLE[@V]); a plain `TABLE[@V]` is called `t`.
fn split_table_arg(arg: &str) -> (&str, &str) {
    match arg.split_once('=') {
        Some((name, address)) if flywheel_query::is_identifier(name) => (name, address),
        _ => ("t", arg),
    }
}

pub fn query(args: QueryArgs) -> Result<(), CliError> {
    if args.tables.is_empty() {
        return Err(bad_input(anyhow!(
            "give the tables the query reads: --table TABLE[@V] (called t) or --table NAME=TABLE[@V]"
        )));
    }
    let mut opened: Vec<(String, Table, Manifest)> = Vec::new();
    for arg in &args.tables {
        let (name, address) = split_table_arg(arg);
        let tref = TableRef::parse(address).or_bad_input()?;
        let table = Table::new(&tref.path);
        let manifest = table.manifest(tref.version).or_bad_input()?;
        opened.push((name.to_string(), table, manifest));
    }
    let registered: Vec<flywheel_query::Registered<'_>> = opened
        .iter()
        .map(|(name, table, manifest)| flywheel_query::Registered {
            name,
            table,
            manifest,
        })
        .collect();
    let result = flywheel_query::run(&args.sql, &registered)
        .map_err(|e| bad_input(anyhow!("query: {e}")))?;
    // A closed stdout never gets here: this command dies of SIGPIPE, quietly (main.rs).
    write_result(&result, args.format).map_err(bad_input)
}

fn write_result(result: &flywheel_query::QueryResult, format: QueryFormat) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        QueryFormat::Table => {
            let wanted: Vec<usize> = (0..result.schema.fields().len()).collect();
            out.write_all(
                flywheel_explore::render::aligned(&result.schema, &result.batches, &wanted)
                    .as_bytes(),
            )?;
            let rows: usize = result.batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        QueryFormat::Csv => flywheel_query::write_csv(result, &mut out)?,
        QueryFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = result.batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            if result.batches.iter().all(|b| b.num_rows() == 0) {
                // arrow writes nothing for no rows; an empty result is still a JSON array.
                out.write_all(b"[]")?;
            }
            out.write_all(b"\n")?;
        }
        QueryFormat::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = result.batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_arguments_name_their_tables() {
        assert_eq!(split_table_arg("out/pairs@1"), ("t", "out/pairs@1"));
        assert_eq!(split_table_arg("a=out/pairs"), ("a", "out/pairs"));
        assert_eq!(split_table_arg("data/k=v/t@2"), ("t", "data/k=v/t@2"));
    }
}
