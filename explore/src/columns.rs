//! Columns of a version by name, and per-column statistics (`table stats`): the manifest's
//! statistics (or a scan's, for versions whose manifest lacks them) and, unless asked to be
//! fast, each column's profile.

use crate::{profiled, render, ExploreError, Profile, Profiler};
use arrow::datatypes::Schema as ArrowSchema;
use flywheel_formats::{batch_stats, merge_stats, ColumnStats, Manifest, Table};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A column name that a schema does not have, with the names it does have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no column '{column}' (columns: {})", .columns.join(", "))]
pub struct NoColumn {
    /// The name asked for.
    pub column: String,
    /// The columns the schema has.
    pub columns: Vec<String>,
}

impl NoColumn {
    /// The same miss, naming the version (`TABLE@V`) it was looked for in.
    pub fn within(self, table: String) -> ExploreError {
        ExploreError::NoColumn {
            column: self.column,
            table,
            columns: self.columns,
        }
    }
}

/// Indices in `schema` of the columns `names` (each trimmed), in the order given.
pub fn column_indices<S: AsRef<str>>(
    schema: &arrow::datatypes::Schema,
    names: &[S],
) -> Result<Vec<usize>, NoColumn> {
    names
        .iter()
        .map(|name| {
            let name = name.as_ref().trim();
            schema.index_of(name).map_err(|_| NoColumn {
                column: name.to_string(),
                columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            })
        })
        .collect()
}

/// One column's statistics: the manifest's (or a scan's) and, where scanned, its profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnReport {
    /// The column's name.
    pub name: String,
    /// The type in flywheel's language (see [`render::type_text`]).
    pub ty: String,
    /// The manifest's statistics of the column, or a scan's where the manifest has none.
    pub stats: ColumnStats,
    /// Distinct and top values, where counted (see [`profiled`]).
    pub profile: Option<Profile>,
}

/// The columns to read for a report, and what to do with them.
struct Plan {
    /// Columns in the report, in its order (indices in the schema).
    wanted: Vec<usize>,
    /// Columns whose manifest holds no statistics.
    needs_stats: Vec<usize>,
    /// Columns whose distinct and top values are counted.
    to_profile: Vec<usize>,
}

impl Plan {
    fn new(schema: &ArrowSchema, m: &Manifest, wanted: Vec<usize>, fast: bool) -> Plan {
        let needs_stats = wanted
            .iter()
            .copied()
            .filter(|i| recorded(m, schema.field(*i).name()).is_none())
            .collect();
        let to_profile = if fast {
            Vec::new()
        } else {
            wanted
                .iter()
                .copied()
                .filter(|i| profiled(schema.field(*i).data_type()))
                .collect()
        };
        Plan {
            wanted,
            needs_stats,
            to_profile,
        }
    }

    /// Every column that must be read, once each, in schema order.
    fn read(&self) -> Vec<usize> {
        let mut read: Vec<usize> = self
            .needs_stats
            .iter()
            .chain(&self.to_profile)
            .copied()
            .collect();
        read.sort_unstable();
        read.dedup();
        read
    }
}

/// The statistics the manifest records for column `name`.
fn recorded(m: &Manifest, name: &str) -> Option<ColumnStats> {
    m.columns.iter().find(|c| c.name == name).cloned()
}

/// Reports on `columns` of a version (all columns when empty), in the order given. `fast` skips
/// the scan for distinct and top values (the manifest's statistics need none).
pub fn column_reports(
    table: &Table,
    manifest: &Manifest,
    columns: &[String],
    fast: bool,
) -> Result<Vec<ColumnReport>, ExploreError> {
    let schema = flywheel_formats::schema_from_json(&manifest.schema.to_string())?;
    let wanted = if columns.is_empty() {
        (0..schema.fields().len()).collect()
    } else {
        column_indices(&schema, columns).map_err(|miss| {
            miss.within(format!("{}@{}", table.dir().display(), manifest.version))
        })?
    };
    let plan = Plan::new(&schema, manifest, wanted, fast);
    let (from_scan, mut profiles) = scan(table, manifest, &schema, &plan)?;
    Ok(plan
        .wanted
        .iter()
        .map(|i| {
            let f = schema.field(*i);
            let stats = recorded(manifest, f.name())
                .or_else(|| from_scan.iter().find(|c| &c.name == f.name()).cloned())
                .unwrap_or_else(|| ColumnStats {
                    name: f.name().clone(),
                    count: manifest.num_rows,
                    ..Default::default()
                });
            ColumnReport {
                name: f.name().clone(),
                ty: render::type_text(f),
                stats,
                profile: profiles.remove(i),
            }
        })
        .collect())
}

/// Reads the columns `plan` needs: statistics of those the manifest lacks, and profiles.
fn scan(
    table: &Table,
    manifest: &Manifest,
    schema: &ArrowSchema,
    plan: &Plan,
) -> Result<(Vec<ColumnStats>, HashMap<usize, Profile>), ExploreError> {
    let mut profilers: Vec<(usize, Profiler)> = plan
        .to_profile
        .iter()
        .map(|i| (*i, Profiler::new(schema.field(*i).data_type())))
        .collect();
    let mut scanned: Vec<Vec<ColumnStats>> = Vec::new();
    let read = plan.read();
    if !read.is_empty() && manifest.num_rows > 0 {
        table.scan_columns(manifest, &read, |batch| {
            for (i, p) in &mut profilers {
                if let Some(col) = batch.column_by_name(schema.field(*i).name()) {
                    p.add(col.as_ref());
                }
            }
            if !plan.needs_stats.is_empty() {
                scanned.push(batch_stats(std::slice::from_ref(batch)));
            }
        })?;
    }
    let profiles = profilers
        .into_iter()
        .map(|(i, p)| (i, p.finish()))
        .collect();
    Ok((merge_stats(scanned.iter().map(Vec::as_slice)), profiles))
}

impl ColumnReport {
    /// The report as `table stats --json` writes it: name, type, count, nulls, then whichever of
    /// min, max, mean, lengths, distinct and top values it has.
    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let mut o = serde_json::Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("type".into(), json!(self.ty));
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
        if let Some(p) = &self.profile {
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
}
