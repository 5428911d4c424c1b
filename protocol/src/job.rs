//! The options of one map job. The same struct is filled from `flywheel map`'s flags and from a
//! job file's top-level fields, and every MPI rank reads it, so ranks agree on the job without
//! sending it around.

use crate::ShippedMapper;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// How the output table's new version relates to its previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse an output that already has a version.
    #[default]
    Create,
    /// Keep the previous version's files and add the new ones.
    Append,
    /// Publish a version holding only the new files.
    Overwrite,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Create => "create",
            Mode::Append => "append",
            Mode::Overwrite => "overwrite",
        })
    }
}

/// What a row whose mapper call raised does to its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowErrorPolicy {
    /// The chunk fails (and is retried up to `max_attempts`).
    #[default]
    Fail,
    /// The row goes to `OUT/_errors` with the error text; the chunk goes on.
    Skip,
}

/// How each chunk's seed is derived from the job seed (recorded in a version's lineage, so that
/// `flywheel rerun` of a version draws what it drew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedScheme {
    /// From the chunk's rows: its file's path relative to the input's root (the table, the
    /// glob's directory, the file's directory) and its range ([`crate::rows_seed`]). A plain
    /// and an incremental map of the same input draw the same values, wherever the data sits.
    InputRows,
    /// Before `input-rows`, plain maps: from the chunk's place in the plan.
    ChunkIndex,
    /// Before `input-rows`, incremental maps: from the file's absolute path and the range.
    AbsoluteRows,
}

impl SeedScheme {
    /// The scheme of a version whose lineage records none (written before schemes were).
    pub fn legacy(incremental: bool) -> SeedScheme {
        if incremental {
            SeedScheme::AbsoluteRows
        } else {
            SeedScheme::ChunkIndex
        }
    }
}

/// Everything a rank needs to know about a map job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    /// Input address: a file, a glob of files, or a table (`PATH[@V]`).
    pub input: String,
    /// Output table directory.
    pub output: PathBuf,
    /// Mapper spec: `file.py:Name`, `exec:CMD ARGS…` or `builtin:NAME`.
    pub mapper: String,
    /// Worker count for the embedded runner (MPI and Slurm decide it from the rank count).
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// Target rows per chunk.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: u64,
    #[serde(default)]
    pub mode: Mode,
    /// Output schema in flywheel's schema language (or `@FILE`); inferred when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// Attempts a chunk gets before the job fails.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub on_row_error: RowErrorPolicy,
    /// Python interpreter for Python mappers.
    #[serde(default = "default_python")]
    pub python: String,
    /// Job seed; each chunk's mapper gets a seed derived from it.
    #[serde(default)]
    pub seed: u64,
    /// Seconds a chunk may run before its mapper is killed and the chunk counted failed.
    #[serde(default = "default_chunk_timeout")]
    pub chunk_timeout_s: u64,
    /// Memory limit of each mapper process (`512M`, `8G`): its data segment (heap and anonymous
    /// maps), enforced with RLIMIT_DATA. Exceeding it makes allocations fail in the mapper.
    #[serde(default)]
    pub mapper_mem: Option<String>,
    /// Continue an interrupted job into the same output from its journal.
    #[serde(default)]
    pub resume: bool,
    /// The job's id: a job publishes at most one version, so running a job again under the same
    /// id (a retry, a Slurm requeue or continuation) finishes it instead of publishing twice.
    /// Chosen by flywheel when absent. Letters, digits, `.`, `_` and `-`, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Constructor keyword arguments (Python) or environment (exec mappers).
    #[serde(default)]
    pub mapper_args: BTreeMap<String, String>,
    /// Publish a version equal to a full map of the input's current state, reusing the output
    /// table's chunks whose fingerprint (input rows, mapper, arguments, schema, seed) did not
    /// change. Every map plans each file's chunks from that file alone and seeds them from their
    /// rows ([`SeedScheme::InputRows`]), so an unchanged file's chunks stay the same chunks and
    /// an incremental version equals a full map, random draws included.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// Files and directories the mapper reads besides its own file (`--depends-on`): part of an
    /// incremental chunk's fingerprint, by content (a directory by its files' identities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// How chunks are seeded; unset means [`SeedScheme::InputRows`] (a rerun of a version
    /// whose lineage has none uses [`SeedScheme::legacy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_scheme: Option<SeedScheme>,
}

fn default_workers() -> u32 {
    2
}
fn default_chunk_rows() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    3
}
fn default_python() -> String {
    "python3".to_string()
}
fn default_chunk_timeout() -> u64 {
    3600
}

impl JobOptions {
    /// Options with every default, for the given input, output and mapper.
    pub fn new(
        input: impl Into<String>,
        output: impl Into<PathBuf>,
        mapper: impl Into<String>,
    ) -> Self {
        JobOptions {
            input: input.into(),
            output: output.into(),
            mapper: mapper.into(),
            workers: default_workers(),
            chunk_rows: default_chunk_rows(),
            mode: Mode::default(),
            schema: None,
            max_attempts: default_max_attempts(),
            on_row_error: RowErrorPolicy::default(),
            python: default_python(),
            seed: 0,
            chunk_timeout_s: default_chunk_timeout(),
            mapper_mem: None,
            resume: false,
            job_id: None,
            mapper_args: BTreeMap::new(),
            incremental: false,
            depends_on: Vec::new(),
            seed_scheme: None,
        }
    }
}

/// Parses a size like `512M`, `8G`, `1.5G` or a number of bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        (i, 't' | 'T') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v > 0.0 && v.is_finite()).then_some((v * mult as f64) as u64)
}

/// A parsed `--mapper` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapperSpec {
    /// `path/to/file.py:Name`: a Python function or class.
    Python { file: PathBuf, name: String },
    /// `exec:COMMAND ARGS…`: any executable speaking the JSON-lines protocol.
    Exec { argv: Vec<String> },
    /// `builtin:NAME`: a mapper written in Rust.
    Builtin { name: String },
    /// `flywheel:NAME`: a Python mapper shipped with flywheel (`generate`, `embed`).
    Shipped { mapper: ShippedMapper },
}

/// Why a `--mapper` value could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapperSpecError {
    /// The spec has none of the known forms.
    #[error(
        "mapper '{0}' is not of the form FILE.py:NAME, exec:COMMAND, builtin:NAME or flywheel:NAME"
    )]
    UnknownForm(String),
    /// `exec:` with nothing after it.
    #[error("mapper '{0}' names no command after 'exec:'")]
    EmptyExec(String),
    /// A shipped mapper that does not exist.
    #[error("unknown mapper 'flywheel:{name}' (shipped mappers: {available})")]
    UnknownShipped { name: String, available: String },
    /// A builtin mapper that does not exist.
    #[error("unknown builtin mapper '{name}' (available: {available})")]
    UnknownBuiltin { name: String, available: String },
}

/// The builtin mappers, for messages and `--help`.
pub const BUILTIN_MAPPERS: &[&str] = &["identity"];

impl MapperSpec {
    /// Parses a `--mapper` value.
    pub fn parse(spec: &str) -> Result<MapperSpec, MapperSpecError> {
        if let Some(rest) = spec.strip_prefix("exec:") {
            let argv: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            if argv.is_empty() {
                return Err(MapperSpecError::EmptyExec(spec.to_string()));
            }
            return Ok(MapperSpec::Exec { argv });
        }
        if let Some(name) = spec.strip_prefix("flywheel:") {
            return match ShippedMapper::from_name(name) {
                Some(mapper) => Ok(MapperSpec::Shipped { mapper }),
                None => Err(MapperSpecError::UnknownShipped {
                    name: name.to_string(),
                    available: ShippedMapper::ALL
                        .iter()
                        .map(|m| format!("flywheel:{m}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            };
        }
        if let Some(name) = spec.strip_prefix("builtin:") {
            if !BUILTIN_MAPPERS.contains(&name) {
                return Err(MapperSpecError::UnknownBuiltin {
                    name: name.to_string(),
                    available: BUILTIN_MAPPERS.join(", "),
                });
            }
            return Ok(MapperSpec::Builtin {
                name: name.to_string(),
            });
        }
        if let Some((file, name)) = spec.rsplit_once(':') {
            if file.ends_with(".py")
                && !name.is_empty()
                && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            {
                return Ok(MapperSpec::Python {
                    file: PathBuf::from(file),
                    name: name.to_string(),
                });
            }
        }
        Err(MapperSpecError::UnknownForm(spec.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_mapper_form() {
        assert_eq!(
            MapperSpec::parse("examples/m.py:Expand").expect("a Python mapper"),
            MapperSpec::Python {
                file: "examples/m.py".into(),
                name: "Expand".into()
            }
        );
        assert_eq!(
            MapperSpec::parse("exec:sh -c cat").expect("an exec mapper"),
            MapperSpec::Exec {
                argv: vec!["sh".into(), "-c".into(), "cat".into()]
            }
        );
        assert_eq!(
            MapperSpec::parse("builtin:identity").expect("a builtin mapper"),
            MapperSpec::Builtin {
                name: "identity".into()
            }
        );
    }

    #[test]
    fn rejects_bad_mapper_specs_with_the_value() {
        assert!(
            matches!(MapperSpec::parse("m.py"), Err(MapperSpecError::UnknownForm(s)) if s == "m.py")
        );
        assert!(matches!(
            MapperSpec::parse("exec:  "),
            Err(MapperSpecError::EmptyExec(_))
        ));
        let err = MapperSpec::parse("builtin:nope").expect_err("no such builtin");
        assert_eq!(
            err.to_string(),
            "unknown builtin mapper 'nope' (available: identity)"
        );
        assert_eq!(
            MapperSpec::parse("flywheel:embed").expect("a shipped mapper"),
            MapperSpec::Shipped {
                mapper: ShippedMapper::Embed
            }
        );
        assert_eq!(
            MapperSpec::parse("flywheel:chat")
                .expect_err("no such shipped mapper")
                .to_string(),
            "unknown mapper 'flywheel:chat' (shipped mappers: flywheel:generate, flywheel:embed)"
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
    }

    #[test]
    fn job_options_fill_defaults_from_toml_like_json() {
        let j: JobOptions = serde_json::from_str(
            r#"{"input":"a.parquet","output":"out","mapper":"builtin:identity"}"#,
        )
        .expect("job options parse");
        assert_eq!(j, JobOptions::new("a.parquet", "out", "builtin:identity"));
    }
}
