//! Incremental jobs: a new version equal to a full map of the input's current state, computing
//! only the chunks whose fingerprint the output's latest version does not hold.
//!
//! ```text
//!  planned chunks, each with a fingerprint        the latest version of OUT
//!  (input rows' identity, mapper, args,    ──▶    files (and chunks with no rows) by
//!   schema, seed, format)                         fingerprint, minus those that sent rows
//!        │                                        to _errors or whose file is gone
//!        ▼
//!  same fingerprint ──▶ reused: the old file is named by the new manifest (never copied)
//!  otherwise        ──▶ computed by the scheduler, with the reason (new input, changed mapper…)
//! ```
//!
//! The reuse is decided again on every run of the job (a `--resume` included) from the version
//! it builds on, which stays the same until the job publishes: the journal records only the
//! computed chunks.

use flywheel_formats::{DataFile, Fingerprint, FormatError, Table};
use flywheel_protocol::{Attempt, ChunkId, ChunkOutput};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// The fingerprint layout this build writes; a version written under another never matches.
pub const FINGERPRINT_VERSION: u32 = 2;

/// The job-wide parts of every chunk's fingerprint, kept in the version's lineage
/// (`incremental.parts`) so a later job can say which of them changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintParts {
    /// [`FINGERPRINT_VERSION`] and the manifest format version.
    pub format: String,
    /// sha256 of the mapper's identity (its file's sha256, a shipped mapper's model directory).
    pub mapper: String,
    /// sha256 of the `--mapper-arg`s.
    pub args: String,
    /// sha256 of the output schema given (`--schema`, a shipped mapper's), or of none.
    pub schema: String,
    /// The job seed (each chunk's seed is derived from it and the chunk's rows).
    pub seed: u64,
    /// sha256 of the interpreter of a Python mapper (its path, version and installed
    /// distributions), or of none.
    #[serde(default)]
    pub python: String,
    /// sha256 of `--on-row-error`.
    #[serde(default)]
    pub on_row_error: String,
    /// sha256 of the `--depends-on` files' digests.
    #[serde(default)]
    pub depends_on: String,
}

/// What an incremental job knows of its chunks before it runs.
#[derive(Debug, Clone)]
pub struct IncrementalPlan {
    /// One per planned chunk, in plan order.
    pub fingerprints: Vec<Fingerprint>,
    pub parts: FingerprintParts,
}

/// Why a chunk is computed rather than reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    NoEarlierVersion,
    NoFingerprint,
    NewInput,
    ChangedInput,
    ChangedMapper,
    ChangedArgs,
    ChangedSchema,
    ChangedSeed,
    ChangedFormat,
    ChangedPython,
    ChangedRowErrorPolicy,
    ChangedDependsOn,
    /// A local module or declared file the mapper's processes reported (see [`Reuse::changed_dependency`]).
    ChangedDependency,
    PreviouslyFailed,
    FileMissing,
    /// Reused at first, then written again with a table schema its file lacked.
    Rewritten,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::NoEarlierVersion => "no earlier version",
            Reason::NoFingerprint => "no fingerprint",
            Reason::NewInput => "new input",
            Reason::ChangedInput => "changed input",
            Reason::ChangedMapper => "changed mapper",
            Reason::ChangedArgs => "changed args",
            Reason::ChangedSchema => "changed schema",
            Reason::ChangedSeed => "changed seed",
            Reason::ChangedFormat => "changed fingerprint format",
            Reason::ChangedPython => "changed Python interpreter or packages",
            Reason::ChangedRowErrorPolicy => "changed --on-row-error",
            Reason::ChangedDependsOn => "changed --depends-on file",
            Reason::ChangedDependency => "changed mapper dependency",
            Reason::PreviouslyFailed => "previously failed to _errors",
            Reason::FileMissing => "earlier file missing",
            Reason::Rewritten => "rewritten with the table schema",
        })
    }
}

/// The chunks an incremental job reuses and those it computes, against one base version.
#[derive(Debug, Clone)]
pub struct Reuse {
    /// The version the reused chunks come from (the output's latest), if any.
    pub base: Option<u64>,
    /// Reused chunks, as accepted outputs numbered in this plan, with their file's provenance;
    /// in chunk order (looked up by binary search: a lookup per output stays cheap at a million
    /// chunks).
    pub reused: Vec<(ChunkOutput, Option<serde_json::Value>)>,
    /// The chunks to compute, with why.
    pub compute: Vec<(ChunkId, Reason)>,
    /// The base version's recorded dependency that changed since (its path), if one did:
    /// every chunk is computed.
    pub changed_dependency: Option<String>,
    /// The dependencies the base version recorded (kept for the chunks reused from it).
    pub base_dependencies: Vec<String>,
}

/// Where an earlier version holds a chunk: a data file, or a chunk that yielded no rows.
enum Held<'m> {
    File(&'m DataFile),
    Empty,
}

/// Decides, for each planned chunk, whether the output's latest version holds its rows.
pub fn plan_reuse(table: &Table, plan: &IncrementalPlan) -> Result<Reuse, FormatError> {
    let base = table.latest_version()?;
    let manifest = match base {
        Some(v) => Some(table.manifest(Some(v))?),
        None => None,
    };
    let mut reuse = Reuse {
        base,
        reused: Vec::new(),
        compute: Vec::new(),
        changed_dependency: None,
        base_dependencies: Vec::new(),
    };
    let Some(m) = manifest else {
        for i in 0..plan.fingerprints.len() {
            reuse.compute.push((chunk_id(i), Reason::NoEarlierVersion));
        }
        return Ok(reuse);
    };
    let recorded = &m.lineage["incremental"];
    let empty: Vec<Fingerprint> =
        serde_json::from_value(recorded["empty"].clone()).unwrap_or_default();
    let old_parts: Option<FingerprintParts> =
        serde_json::from_value(recorded["parts"].clone()).ok();
    let mut held: HashMap<&str, Held<'_>> = HashMap::new();
    let mut inputs = HashSet::new();
    let mut sources = HashSet::new();
    for f in &m.files {
        if let Some(fp) = &f.fingerprint {
            held.insert(&fp.hash, Held::File(f));
            inputs.insert(fp.input.as_str());
            sources.insert(fp.source.as_str());
        }
    }
    for fp in &empty {
        held.insert(&fp.hash, Held::Empty);
        inputs.insert(fp.input.as_str());
        sources.insert(fp.source.as_str());
    }
    let mut failed = HashSet::new();
    for fp in m.errors.iter().filter_map(|e| e.fingerprint.as_ref()) {
        failed.insert(fp.hash.as_str());
        inputs.insert(fp.input.as_str());
        sources.insert(fp.source.as_str());
    }
    let schema = serde_json::to_string(&m.schema).unwrap_or_default();
    let deps = crate::dependencies::recorded(&m.lineage);
    reuse.changed_dependency = crate::dependencies::first_changed(&deps);
    reuse.base_dependencies = deps.into_iter().map(|(p, _)| p).collect();
    for (i, fp) in plan.fingerprints.iter().enumerate() {
        let id = chunk_id(i);
        let why = match held.get(fp.hash.as_str()) {
            _ if old_parts.is_none() => Reason::NoFingerprint,
            _ if reuse.changed_dependency.is_some() => Reason::ChangedDependency,
            // Its rows went to _errors (a chunk whose every row did has no data file).
            _ if failed.contains(fp.hash.as_str()) => Reason::PreviouslyFailed,
            Some(Held::Empty) => {
                reuse.reused.push((ChunkOutput::none(id, Attempt(1)), None));
                continue;
            }
            Some(Held::File(f)) if file_whole(table, f) => {
                reuse.reused.push(reused_output(id, f, &schema, m.version));
                continue;
            }
            Some(Held::File(_)) => Reason::FileMissing,
            None if !inputs.contains(fp.input.as_str()) => {
                if sources.contains(fp.source.as_str()) {
                    Reason::ChangedInput
                } else {
                    Reason::NewInput
                }
            }
            None => changed_part(old_parts.as_ref(), &plan.parts),
        };
        reuse.compute.push((id, why));
    }
    Ok(reuse)
}

fn chunk_id(i: usize) -> ChunkId {
    ChunkId(u32::try_from(i).unwrap_or(u32::MAX))
}

/// Which job-wide part differs, when a chunk's input is known but its fingerprint is not.
fn changed_part(old: Option<&FingerprintParts>, new: &FingerprintParts) -> Reason {
    let Some(old) = old else {
        return Reason::NoFingerprint;
    };
    if old.format != new.format {
        Reason::ChangedFormat
    } else if old.mapper != new.mapper {
        Reason::ChangedMapper
    } else if old.args != new.args {
        Reason::ChangedArgs
    } else if old.schema != new.schema {
        Reason::ChangedSchema
    } else if old.python != new.python {
        Reason::ChangedPython
    } else if old.on_row_error != new.on_row_error {
        Reason::ChangedRowErrorPolicy
    } else if old.depends_on != new.depends_on {
        Reason::ChangedDependsOn
    } else {
        // Same input rows and parts: only the seed (or the range's seed) is left.
        Reason::ChangedSeed
    }
}

/// The file is still there at its recorded size.
fn file_whole(table: &Table, f: &DataFile) -> bool {
    std::fs::metadata(table.dir().join(&f.path)).is_ok_and(|m| m.len() == f.bytes)
}

/// An earlier file as this plan's accepted output of `chunk`, and its provenance renumbered
/// (`reused_from`: the version that first published the file).
fn reused_output(
    chunk: ChunkId,
    f: &DataFile,
    schema: &str,
    base: u64,
) -> (ChunkOutput, Option<serde_json::Value>) {
    let p = f
        .provenance
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    let num = |k: &str| p[k].as_u64().unwrap_or(0);
    let out = ChunkOutput {
        file: Some(f.path.clone()),
        rows_in: num("rows_in"),
        rows_out: f.rows,
        bytes: f.bytes,
        schema: Some(schema.into()),
        stats: f.stats.as_ref().and_then(|s| serde_json::to_value(s).ok()),
        worker: u32::try_from(num("worker")).unwrap_or(0),
        host: p["host"].as_str().unwrap_or_default().to_string(),
        ..ChunkOutput::none(
            chunk,
            Attempt(u32::try_from(num("attempt")).unwrap_or(1).max(1)),
        )
    };
    let mut p = p;
    if let serde_json::Value::Object(map) = &mut p {
        map.insert("chunk".into(), serde_json::json!(chunk.0));
        map.entry("reused_from")
            .or_insert_with(|| serde_json::json!(base));
    }
    (out, Some(p))
}

impl Reuse {
    /// How many chunks are recomputed for each reason, in words.
    pub fn reasons(&self) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::<Reason, usize>::new();
        for (_, r) in &self.compute {
            *by.entry(*r).or_default() += 1;
        }
        by.into_iter().map(|(r, n)| (r.to_string(), n)).collect()
    }

    /// One line: "3 of 4 chunks reused from version 1, 1 to compute (new input: 1)".
    pub fn summary(&self) -> String {
        let total = self.reused.len() + self.compute.len();
        let from = self
            .base
            .map(|v| format!(" from version {v}"))
            .unwrap_or_default();
        let reasons: Vec<String> = self
            .reasons()
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let mut why = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        if let Some(dep) = &self.changed_dependency {
            why += &format!("; {dep} changed since version {}", self.base.unwrap_or(0));
        }
        format!(
            "{} of {total} chunks reused{from}, {} to compute{why}",
            self.reused.len(),
            self.compute.len()
        )
    }

    /// Puts the reused chunks among `done` (outputs a resumed run's journal accepted win).
    pub(crate) fn merge_into(&self, done: &mut Vec<ChunkOutput>) {
        let have: HashSet<ChunkId> = done.iter().map(|o| o.chunk).collect();
        done.extend(
            self.reused
                .iter()
                .filter(|(o, _)| !have.contains(&o.chunk))
                .map(|(o, _)| o.clone()),
        );
    }

    /// The provenance of `o` when it is the reused file of its chunk.
    pub(crate) fn provenance_of(&self, o: &ChunkOutput) -> Option<serde_json::Value> {
        let i = self
            .reused
            .binary_search_by_key(&o.chunk, |(r, _)| r.chunk)
            .ok()?;
        let (r, p) = &self.reused[i];
        (r.file == o.file).then(|| p.clone().unwrap_or_else(|| serde_json::json!({})))
    }

    /// The version's `incremental` lineage: what was reused and computed and why, the
    /// fingerprint parts and the fingerprints of the chunks with no rows (no file records them).
    pub(crate) fn lineage(
        &self,
        plan: &IncrementalPlan,
        outputs: &[&ChunkOutput],
    ) -> serde_json::Value {
        let mut reused = 0;
        let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
        let why: HashMap<ChunkId, Reason> = self.compute.iter().copied().collect();
        for o in outputs {
            if self.provenance_of(o).is_some() {
                reused += 1;
            } else {
                *reasons
                    .entry(why.get(&o.chunk).copied().unwrap_or(Reason::Rewritten))
                    .or_default() += 1;
            }
        }
        let empty: Vec<&Fingerprint> = outputs
            .iter()
            .filter(|o| o.file.is_none() && o.errors_file.is_none())
            .filter_map(|o| plan.fingerprints.get(o.chunk.0 as usize))
            .collect();
        let reasons: BTreeMap<String, usize> = reasons
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect();
        serde_json::json!({
            "base_version": self.base,
            "chunks": outputs.len(),
            "reused": reused,
            "computed": outputs.len() - reused,
            "recomputed": reasons,
            "parts": plan.parts,
            "empty": empty,
        })
    }
}

/// Each output's fingerprint, for its data file and its error file.
pub(crate) fn fingerprint_of<'p>(
    plan: Option<&'p IncrementalPlan>,
    o: &ChunkOutput,
) -> Option<&'p Fingerprint> {
    plan?.fingerprints.get(o.chunk.0 as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> FingerprintParts {
        FingerprintParts {
            format: "fingerprint 1, table format 1".into(),
            mapper: "m".into(),
            args: "a".into(),
            schema: "s".into(),
            seed: 0,
            python: "p".into(),
            on_row_error: "e".into(),
            depends_on: "d".into(),
        }
    }

    #[test]
    fn the_first_changed_part_names_the_reason() {
        let old = parts();
        let with = |f: &dyn Fn(&mut FingerprintParts)| {
            let mut p = parts();
            f(&mut p);
            changed_part(Some(&old), &p)
        };
        assert_eq!(with(&|p| p.mapper = "m2".into()), Reason::ChangedMapper);
        assert_eq!(with(&|p| p.args = "a2".into()), Reason::ChangedArgs);
        assert_eq!(with(&|p| p.schema = "s2".into()), Reason::ChangedSchema);
        assert_eq!(with(&|p| p.seed = 7), Reason::ChangedSeed);
        assert_eq!(
            with(&|p| p.format = "fingerprint 2".into()),
            Reason::ChangedFormat
        );
        assert_eq!(
            with(&|p| {
                p.mapper = "m2".into();
                p.args = "a2".into();
            }),
            Reason::ChangedMapper
        );
        assert_eq!(changed_part(None, &parts()), Reason::NoFingerprint);
    }

    #[test]
    fn the_summary_counts_reused_and_computed_chunks_by_reason() {
        let reuse = Reuse {
            base: Some(1),
            reused: vec![(ChunkOutput::none(ChunkId(0), Attempt(1)), None)],
            compute: vec![
                (ChunkId(1), Reason::NewInput),
                (ChunkId(2), Reason::NewInput),
                (ChunkId(3), Reason::ChangedInput),
            ],
            changed_dependency: None,
            base_dependencies: Vec::new(),
        };
        assert_eq!(
            reuse.summary(),
            "1 of 4 chunks reused from version 1, 3 to compute (changed input: 1, new input: 2)"
        );
    }
}
