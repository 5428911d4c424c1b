//! `flywheel table stats`: per-column statistics of a version, as a table or as JSON.

use crate::error::{CliError, OrBadInput};
use flywheel_explore::render::{align, brief};
use flywheel_explore::{column_reports, ColumnReport};
use flywheel_formats::{Manifest, Table};
use serde_json::json;

pub fn stats(
    t: &Table,
    m: &Manifest,
    columns: &[String],
    json: bool,
    fast: bool,
) -> Result<(), CliError> {
    let reports = column_reports(t, m, columns, fast).or_bad_input()?;
    if json {
        let v = json!({
            "table": std::fs::canonicalize(t.dir()).unwrap_or_else(|_| t.dir().to_path_buf()),
            "version": m.version,
            "rows": m.num_rows,
            "columns": reports.iter().map(ColumnReport::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&reports));
    }
    Ok(())
}

/// One report as a row of the text table.
fn text_row(r: &ColumnReport) -> Vec<String> {
    let s = &r.stats;
    let opt = |v: &Option<serde_json::Value>| v.as_ref().map(brief).unwrap_or_default();
    let length = match (s.min_length, s.mean_length, s.max_length) {
        (Some(a), Some(b), Some(c)) => format!("{a} / {b:.1} / {c}"),
        _ => String::new(),
    };
    let (distinct, top) = match &r.profile {
        Some(p) => (
            format!("{}{}", if p.distinct_exact { "" } else { "~" }, p.distinct),
            p.top
                .as_ref()
                .map(|t| {
                    t.iter()
                        .take(3)
                        .map(|(v, c)| format!("{} ({c})", brief(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    vec![
        r.name.clone(),
        r.ty.clone(),
        s.count.to_string(),
        s.nulls.to_string(),
        opt(&s.min),
        opt(&s.max),
        s.mean.map(|x| brief(&json!(x))).unwrap_or_default(),
        length,
        distinct,
        top,
    ]
}

fn text(reports: &[ColumnReport]) -> String {
    let header = [
        "column", "type", "count", "nulls", "min", "max", "mean", "length", "distinct", "top",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    rows.extend(reports.iter().map(text_row));
    let mut out = align(&rows);
    out.push_str("length: characters (strings), bytes (bytes, media), items (lists) — min / mean / max; ~: estimated\n");
    out
}
