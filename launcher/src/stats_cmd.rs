//! `flywheel table stats`: per-column statistics of a version.

use crate::error::{bad_input, CliError, OrBadInput};
use anyhow::anyhow;
use flywheel_formats::{ColumnStats, Manifest, Profile, Profiler, Table};
use serde_json::{json, Value};

/// One column's statistics: the manifest's (or a scan's) and, where scanned, its profile.
struct ColumnReport {
    name: String,
    ty: String,
    stats: ColumnStats,
    profile: Option<Profile>,
}

pub fn stats(
    t: &Table,
    m: &Manifest,
    columns: &[String],
    json: bool,
    fast: bool,
) -> Result<(), CliError> {
    let schema = flywheel_formats::schema_from_json(&m.schema.to_string()).or_bad_input()?;
    let wanted: Vec<usize> = if columns.is_empty() {
        (0..schema.fields().len()).collect()
    } else {
        columns
            .iter()
            .map(|c| {
                schema.index_of(c.trim()).map_err(|_| {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    bad_input(anyhow!(
                        "no column '{}' in {}@{} (columns: {})",
                        c.trim(),
                        t.dir().display(),
                        m.version,
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let recorded = |name: &str| m.columns.iter().find(|c| c.name == name).cloned();
    // Columns to read: those whose manifest lacks statistics, and (unless --fast) those with
    // distinct and top values.
    let needs_stats: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|i| recorded(schema.field(*i).name()).is_none())
        .collect();
    let to_profile: Vec<usize> = if fast {
        Vec::new()
    } else {
        wanted
            .iter()
            .copied()
            .filter(|i| flywheel_formats::profiled(schema.field(*i).data_type()))
            .collect()
    };
    let mut read: Vec<usize> = needs_stats.iter().chain(&to_profile).copied().collect();
    read.sort_unstable();
    read.dedup();
    let mut profilers: Vec<(usize, Profiler)> = to_profile
        .iter()
        .map(|i| (*i, Profiler::new(schema.field(*i).data_type())))
        .collect();
    let mut scanned: Vec<Vec<ColumnStats>> = Vec::new();
    if !read.is_empty() && m.num_rows > 0 {
        flywheel_formats::scan_columns(t, m, &read, |batch| {
            for (i, p) in &mut profilers {
                if let Some(col) = batch.column_by_name(schema.field(*i).name()) {
                    p.add(col.as_ref());
                }
            }
            if !needs_stats.is_empty() {
                scanned.push(flywheel_formats::batch_stats(std::slice::from_ref(batch)));
            }
        })
        .or_bad_input()?;
    }
    let from_scan = flywheel_formats::merge_stats(scanned.iter().map(Vec::as_slice));
    let mut profiles: std::collections::HashMap<usize, Profile> = profilers
        .into_iter()
        .map(|(i, p)| (i, p.finish()))
        .collect();
    let reports: Vec<ColumnReport> = wanted
        .iter()
        .map(|i| {
            let f = schema.field(*i);
            let stats = recorded(f.name())
                .or_else(|| from_scan.iter().find(|c| &c.name == f.name()).cloned())
                .unwrap_or_else(|| ColumnStats {
                    name: f.name().clone(),
                    count: m.num_rows,
                    ..Default::default()
                });
            ColumnReport {
                name: f.name().clone(),
                ty: crate::table_cmd::type_text(f),
                stats,
                profile: profiles.remove(i),
            }
        })
        .collect();
    if json {
        let v = json!({
            "table": std::fs::canonicalize(t.dir()).unwrap_or_else(|_| t.dir().to_path_buf()),
            "version": m.version,
            "rows": m.num_rows,
            "columns": reports.iter().map(column_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&reports));
    }
    Ok(())
}

fn column_json(r: &ColumnReport) -> Value {
    let s = &r.stats;
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!(r.name));
    o.insert("type".into(), json!(r.ty));
    o.insert("count".into(), json!(s.count));
    o.insert("nulls".into(), json!(s.nulls));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("min", s.min.clone());
    put("max", s.max.clone());
    put("mean", s.mean.map(|x| json!(x)));
    put("min_length", s.min_length.map(|x| json!(x)));
    put("mean_length", s.mean_length.map(|x| json!(x)));
    put("max_length", s.max_length.map(|x| json!(x)));
    if let Some(p) = &r.profile {
        put("distinct", Some(json!(p.distinct)));
        put("distinct_exact", Some(json!(p.distinct_exact)));
        put(
            "top",
            p.top.as_ref().map(|t| {
                json!(t
                    .iter()
                    .map(|(v, c)| json!({"value": v, "count": c}))
                    .collect::<Vec<_>>())
            }),
        );
    }
    Value::Object(o)
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let s = s.replace('\n', "⏎");
    if s.chars().count() > 24 {
        format!("{}…", s.chars().take(23).collect::<String>())
    } else {
        s
    }
}

fn text(reports: &[ColumnReport]) -> String {
    let header = [
        "column", "type", "count", "nulls", "min", "max", "mean", "length", "distinct", "top",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in reports {
        let s = &r.stats;
        let opt = |v: &Option<Value>| v.as_ref().map(short).unwrap_or_default();
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
                            .map(|(v, c)| format!("{} ({c})", short(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        rows.push(vec![
            r.name.clone(),
            r.ty.clone(),
            s.count.to_string(),
            s.nulls.to_string(),
            opt(&s.min),
            opt(&s.max),
            s.mean.map(|x| short(&json!(x))).unwrap_or_default(),
            length,
            distinct,
            top,
        ]);
    }
    let mut out = crate::table_cmd::align(&rows);
    out.push_str("length: characters (strings), bytes (bytes, media), items (lists) — min / mean / max; ~: estimated\n");
    out
}
