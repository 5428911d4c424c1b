//! The table schema of a job run without `--schema`: decided from every chunk's output, in chunk
//! order, so that neither scheduling nor `--chunk-rows` changes it.
//!
//! ```text
//!  chunk outputs (any finishing order)      unify in chunk order           chunks whose file
//!  c0: a: int?        ─┐                                                    has another schema
//!  c1: a: float?, b ───┼──▶ a: float? | b: str? ──▶ the table schema ──▶ run again with it
//!  c2: (no rows)      ─┘        (or a conflict: the job fails, naming       (fixed) before the
//!                                the column, both types and their chunks)   job completes
//! ```
//!
//! [`flywheel_formats::unify`] is the rule inside one chunk too (the worker infers a chunk's
//! schema row by row with it), so a type that changes within a chunk and one that changes
//! between two chunks end the same way.

use flywheel_formats::{schema_from_json, schema_to_json, unify, Schema};
use flywheel_protocol::ChunkId;
use std::collections::HashMap;

/// A chunk's output schema, parsed when flywheel can read it as one of its schemas.
fn parse(json: &str) -> Option<Schema> {
    Schema::from_arrow(&schema_from_json(json).ok()?)
}

/// Whether two output schemas (Arrow JSON) describe the same table schema.
pub(crate) fn same_schema(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        // Types flywheel's schemas do not describe: the same Arrow schema.
        _ => matches!((schema_from_json(a), schema_from_json(b)), (Ok(x), Ok(y)) if x == y),
    }
}

/// Unifies one more accepted chunk schema into `acc` (in any order); whether the accepted
/// schemas conflict. Schemas flywheel cannot read are left to [`unify_chunks`].
pub(crate) fn probe(acc: &mut Option<Schema>, json: &str) -> bool {
    let Some(s) = parse(json) else {
        return false;
    };
    match acc {
        None => {
            *acc = Some(s);
            false
        }
        Some(a) => match unify(a, &s, "", "") {
            Ok(u) => {
                *a = u;
                false
            }
            Err(_) => true,
        },
    }
}

/// The outcome of unifying the chunks' schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unified {
    /// The table schema (Arrow JSON).
    pub schema: String,
    /// Columns whose type was widened to hold every chunk's values, in words.
    pub widened: Vec<String>,
}

/// Unifies the output schemas of chunks (given in chunk order; chunks without rows left out).
/// `Ok(None)` when no chunk produced rows; `Err` names the column, both types and the chunks
/// they came from. Schemas flywheel cannot read (a builtin mapper's unusual Arrow types) are
/// not unified: the first chunk's is the table's and the others are cast to it.
pub(crate) fn unify_chunks(schemas: &[(ChunkId, &str)]) -> Result<Option<Unified>, String> {
    let Some((_, first)) = schemas.first() else {
        return Ok(None);
    };
    // Chunks nearly always repeat one schema text: each distinct text is parsed once, and a
    // chunk with the text of the one before adds nothing to the unified schema.
    let mut distinct: HashMap<&str, Option<Schema>> = HashMap::new();
    for (_, s) in schemas {
        distinct.entry(s).or_insert_with(|| parse(s));
    }
    let parsed: Option<Vec<(ChunkId, &Schema)>> = schemas
        .iter()
        .map(|(c, s)| distinct.get(s).and_then(Option::as_ref).map(|p| (*c, p)))
        .collect();
    let Some(parsed) = parsed else {
        return Ok(Some(Unified {
            schema: first.to_string(),
            widened: Vec::new(),
        }));
    };
    let mut acc = parsed[0].1.clone();
    for (i, (chunk, s)) in parsed.iter().enumerate().skip(1) {
        if schemas[i].1 == schemas[i - 1].1 {
            continue;
        }
        acc = unify(&acc, s, "an earlier chunk", &chunk.to_string()).map_err(|mut e| {
            // Name the first chunk that had the column with a known type.
            if let Some((c, _)) = parsed[..i].iter().find(|(_, p)| {
                p.field(&e.top)
                    .is_some_and(|f| f.ty != flywheel_formats::Type::Any)
            }) {
                e.first_at = c.to_string();
            }
            e.to_string()
        })?;
    }
    let mut widened = Vec::new();
    for f in &acc.fields {
        let narrower: Vec<String> = parsed
            .iter()
            .filter_map(|(c, p)| {
                let g = p.field(&f.name)?;
                (g.ty != f.ty && g.ty != flywheel_formats::Type::Any)
                    .then(|| format!("{c} had {}", g.ty))
            })
            .collect();
        if !narrower.is_empty() {
            let shown: Vec<&str> = narrower.iter().take(3).map(String::as_str).collect();
            let more = narrower.len().saturating_sub(shown.len());
            widened.push(format!(
                "column '{}' was widened to {}{} ({}{})",
                f.name,
                f.ty,
                if f.nullable { "?" } else { "" },
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more chunks")
                } else {
                    String::new()
                }
            ));
        }
    }
    Ok(Some(Unified {
        schema: schema_to_json(&acc.to_arrow()),
        widened,
    }))
}

#[cfg(test)]
// A test's unwrap is its assertion that the set-up worked.
mod tests {
    use super::*;

    fn json(dsl: &str) -> String {
        schema_to_json(&Schema::parse(dsl).unwrap().to_arrow())
    }

    #[test]
    fn the_result_does_not_depend_on_which_chunk_is_listed_first_for_conflicts() {
        let a = json("x: int?");
        let b = json("x: str?");
        let c = json("y: bool?");
        for order in [
            vec![
                (ChunkId(0), a.as_str()),
                (ChunkId(1), c.as_str()),
                (ChunkId(2), b.as_str()),
            ],
            vec![
                (ChunkId(0), c.as_str()),
                (ChunkId(1), a.as_str()),
                (ChunkId(2), b.as_str()),
            ],
        ] {
            let e = unify_chunks(&order).unwrap_err();
            assert!(
                e.starts_with("column 'x' has int values (first at chunk"),
                "{e}"
            );
            assert!(e.contains("str values (first at chunk 2)"), "{e}");
        }
    }

    #[test]
    fn columns_are_unioned_and_widenings_named() {
        let a = json("x: int?");
        let b = json("x: float?, y: str?");
        let n = json("x: any?");
        let u = unify_chunks(&[(ChunkId(0), &a), (ChunkId(1), &n), (ChunkId(2), &b)])
            .unwrap()
            .unwrap();
        assert_eq!(u.schema, json("x: float?, y: str?"));
        assert_eq!(
            u.widened,
            vec!["column 'x' was widened to float? (chunk 0 had int)"]
        );
        assert!(same_schema(&u.schema, &b));
        assert!(!same_schema(&u.schema, &a));
        assert_eq!(unify_chunks(&[]).unwrap(), None);
    }
}
