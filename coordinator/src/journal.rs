//! The job journal: every accepted chunk is appended (and fsynced) to the job's own journal
//! before it counts, so an interrupted job (crash, scancel, time limit, preemption) can resume
//! where it stopped: `--resume` reads the journal, checks the recorded files, and schedules only
//! the rest. `flywheel status OUT` reads it too.
//!
//! ```text
//! OUT/_jobs/<job-id>.jsonl     the journal of job <job-id> (one per job: concurrent jobs never share one)
//! OUT/_journal.jsonl           symlink to the journal of the job started last (status, --resume)
//! ```
//!
//! ```text
//! {"Start": {"plan": "<sha256>", "job_id": "…", "inputs": [{"path": …, "bytes": …, "mtime_ns": …}], "chunks": 25, "rows": 500, "at": 1764130000, "host": "n1", "slurm_job_id": "42", "slurm_step_id": "0", "resumed": false}}
//! {"Accepted": {"at": 1764130003, "output": { …ChunkOutput… }}}
//! {"Start": { … "resumed": true }}            a later run continuing the same job
//! {"Published": {"at": 1764130100, "version": 1}}
//! ```
//! The plan hash covers the chunk plan, every input file's size and modification time and every
//! option that changes output, so a journal is never applied to a different job or input.

use flywheel_protocol::{ChunkOutput, WorkerGpu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const JOURNAL: &str = "_journal.jsonl";
const JOBS_DIR: &str = "_jobs";

/// What identifies one input file of a plan: a resume against a changed file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    pub path: PathBuf,
    pub bytes: u64,
    pub mtime_ns: u128,
}

impl InputIdentity {
    /// Reads a file's identity now.
    pub fn of(path: &Path) -> std::io::Result<InputIdentity> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = m
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(InputIdentity {
            path: path.to_path_buf(),
            bytes: m.len(),
            mtime_ns,
        })
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JournalEntry {
    Start {
        plan: String,
        /// The job's id (journals written before ids existed have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inputs: Vec<InputIdentity>,
        chunks: usize,
        rows: u64,
        at: u64,
        host: String,
        slurm_job_id: Option<String>,
        /// The Slurm step that ran it (`SLURM_STEP_ID`): one that lost a node goes on in another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slurm_step_id: Option<String>,
        resumed: bool,
        /// Chunks (and their input rows) an incremental run reuses from the output's latest
        /// version: accepted without being journaled.
        #[serde(default, skip_serializing_if = "is_zero")]
        reused_chunks: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        reused_rows: u64,
    },
    Accepted {
        at: u64,
        output: ChunkOutput,
        /// Its worker's GPU so far (for `flywheel status`); journals before GPUs were
        /// recorded have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpu: Option<WorkerGpu>,
    },
    Published {
        at: u64,
        version: u64,
    },
}

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The journal belongs to another plan (mapper or options changed).
    #[error("{path} records a different job (its input, mapper or options differ); remove it or run without --resume")]
    OtherPlan { path: PathBuf },
    /// An input file changed since the interrupted job planned it.
    #[error("input {} changed since the interrupted job read it ({what}); resuming would mix old and new rows. Run without --resume to start over", path.display())]
    InputChanged { path: PathBuf, what: String },
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A job's journal as read back.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub path: PathBuf,
    pub entries: Vec<JournalEntry>,
}

/// The first `Start` of a record: plan, id and inputs.
pub struct StartInfo<'a> {
    pub plan: &'a str,
    pub job_id: Option<&'a str>,
    pub inputs: &'a [InputIdentity],
}

impl JobRecord {
    /// The job's first start.
    pub fn start(&self) -> Option<StartInfo<'_>> {
        self.entries.iter().find_map(|e| match e {
            JournalEntry::Start {
                plan,
                job_id,
                inputs,
                ..
            } => Some(StartInfo {
                plan,
                job_id: job_id.as_deref(),
                inputs,
            }),
            _ => None,
        })
    }

    /// The version the journal says the job published.
    pub fn published(&self) -> Option<u64> {
        self.entries.iter().find_map(|e| match e {
            JournalEntry::Published { version, .. } => Some(*version),
            _ => None,
        })
    }

    /// Checks that this journal is of `plan`; names a changed input file when that is why not.
    pub fn check_plan(&self, plan: &str) -> Result<(), JournalError> {
        let Some(start) = self.start() else {
            return Err(JournalError::OtherPlan {
                path: self.path.clone(),
            });
        };
        if start.plan == plan {
            return Ok(());
        }
        for was in start.inputs {
            let what = match InputIdentity::of(&was.path) {
                Err(e) => Some(format!("it cannot be read now: {e}")),
                Ok(now) if now.bytes != was.bytes => {
                    Some(format!("{} bytes then, {} now", was.bytes, now.bytes))
                }
                Ok(now) if now.mtime_ns != was.mtime_ns => {
                    Some("modified since, same size".to_string())
                }
                Ok(_) => None,
            };
            if let Some(what) = what {
                return Err(JournalError::InputChanged {
                    path: was.path.clone(),
                    what,
                });
            }
        }
        Err(JournalError::OtherPlan {
            path: self.path.clone(),
        })
    }

    /// The accepted outputs whose files are still there, whole (size and row count as recorded);
    /// one per chunk, the last accepted (a chunk run again to match the job's schema is
    /// accepted again).
    pub fn verified_outputs(&self, table: &Path) -> Vec<ChunkOutput> {
        let mut by_chunk = BTreeMap::new();
        for e in &self.entries {
            if let JournalEntry::Accepted { output, .. } = e {
                by_chunk.insert(output.chunk, output);
            }
        }
        let mut done = Vec::new();
        for (_, o) in by_chunk {
            match verify(table, o) {
                Ok(()) => done.push(o.clone()),
                Err(why) => tracing::warn!("{}: {why}; it runs again", o.chunk),
            }
        }
        done
    }

    /// The Slurm steps that worked on this job (`JOB.STEP`), in order.
    pub fn slurm_steps(&self) -> Vec<String> {
        self.distinct_starts(|job, step| Some(format!("{job}.{}", step?)))
    }

    /// The Slurm jobs that worked on this job, in order.
    pub fn slurm_job_ids(&self) -> Vec<String> {
        self.distinct_starts(|job, _| Some(job.to_string()))
    }

    /// What `pick` makes of each start's Slurm job and step ids, once each, in order.
    fn distinct_starts(&self, pick: impl Fn(&str, Option<&str>) -> Option<String>) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.entries
            .iter()
            .filter_map(|e| match e {
                JournalEntry::Start {
                    slurm_job_id: Some(job),
                    slurm_step_id: step,
                    ..
                } => pick(job, step.as_deref()),
                _ => None,
            })
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }
}

/// Reads a journal file (`None` when there is none).
///
/// A torn last line (no newline at its end: the writer was killed mid-write) never counted and
/// is skipped quietly. Any other line that is not a journal entry (an edited or damaged file) is
/// skipped with a warning naming the file and the line: skipping is safe for a resume, since a
/// lost `Accepted` line only runs its chunk again, a lost `Start` leaves the plan to a later
/// `Start` (or refuses the resume as another plan), and a lost `Published` is found again in the
/// table's manifests, which carry the job id — as long as that version was not vacuumed away
/// (`table vacuum` before the resume); then the resume runs the job again and publishes it anew.
fn read_file(path: &Path) -> Result<Option<Vec<JournalEntry>>, JournalError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let (entries, bad) = parse_lines(&bytes);
    if !entries
        .iter()
        .any(|e| matches!(e, JournalEntry::Start { .. }))
    {
        // A run killed between creating its journal and writing (or syncing) the start line
        // recorded nothing: there is no job here to resume, and the next run starts it afresh.
        tracing::info!(
            "{}: no start line (a run stopped as it began); it records no job",
            path.display()
        );
        return Ok(None);
    }
    for line in bad {
        tracing::warn!(
            "{} line {}: not a journal entry, skipped ({})",
            path.display(),
            line.number,
            line.why
        );
    }
    Ok(Some(entries))
}

/// A journal line that is not an entry.
#[derive(Debug, PartialEq)]
struct BadLine {
    /// 1-based.
    number: usize,
    why: String,
}

/// The entries of a journal's bytes, and the lines that are not entries (a torn last line
/// excepted: it is no one's error).
fn parse_lines(bytes: &[u8]) -> (Vec<JournalEntry>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty piece after a final newline: not a line.
    let n = if torn { lines.len() } else { lines.len() - 1 };
    for (i, line) in lines.iter().take(n).enumerate() {
        match serde_json::from_slice::<JournalEntry>(line) {
            Ok(e) => entries.push(e),
            Err(_) if torn && i + 1 == n => {}
            Err(e) => bad.push(BadLine {
                number: i + 1,
                why: e.to_string(),
            }),
        }
    }
    (entries, bad)
}

/// The journal of the job started last on `table`.
pub fn latest_job(table: &Path) -> Result<Option<JobRecord>, JournalError> {
    let link = table.join(JOURNAL);
    // Resolve the symlink so the record names the job's own file (a later job may re-point it).
    let path = match std::fs::read_link(&link) {
        Ok(target) => table.join(target),
        Err(_) => link,
    };
    Ok(read_file(&path)?.map(|entries| JobRecord { path, entries }))
}

/// The journal of job `job_id`.
pub fn job_record(table: &Path, job_id: &str) -> Result<Option<JobRecord>, JournalError> {
    let path = job_journal_path(table, job_id);
    Ok(read_file(&path)?.map(|entries| JobRecord { path, entries }))
}

/// Where job `job_id` keeps its journal.
pub fn job_journal_path(table: &Path, job_id: &str) -> PathBuf {
    table.join(JOBS_DIR).join(format!("{job_id}.jsonl"))
}

/// Whether an accepted output's files are still there, whole; why not.
fn verify(table: &Path, o: &ChunkOutput) -> Result<(), String> {
    let check = |rel: &str, bytes: Option<u64>, rows: u64| -> Result<(), String> {
        let path = table.join(rel);
        let m = std::fs::metadata(&path).map_err(|e| format!("{rel}: {e}"))?;
        if !m.is_file() {
            return Err(format!("{rel} is not a file"));
        }
        if let Some(b) = bytes {
            if m.len() != b {
                return Err(format!("{rel} has {} bytes, the journal says {b}", m.len()));
            }
        }
        let got = flywheel_formats::parquet_rows(&path).map_err(|e| e.to_string())?;
        if got != rows {
            return Err(format!("{rel} holds {got} rows, the journal says {rows}"));
        }
        Ok(())
    };
    match &o.file {
        Some(f) => check(f, Some(o.bytes), o.rows_out)?,
        None if o.rows_out != 0 => {
            return Err(format!(
                "the journal says {} rows but names no file",
                o.rows_out
            ))
        }
        None => {}
    }
    if let Some(f) = &o.errors_file {
        check(&format!("_errors/{f}"), None, o.error_rows)?;
    }
    Ok(())
}

/// The journal a running job appends to.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// What a job's `Start` line records.
pub struct StartLine<'a> {
    pub plan: &'a str,
    pub job_id: &'a str,
    pub inputs: &'a [InputIdentity],
    pub chunks: usize,
    pub rows: u64,
    /// Chunks and input rows an incremental run reuses.
    pub reused: (usize, u64),
}

/// Whether the file is empty or ends with a whole line.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl Journal {
    /// Opens job `start.job_id`'s journal for appending (creating it for a new job) and records
    /// this run's start; points `_journal.jsonl` at it.
    pub fn open(
        table: &Path,
        start: &StartLine<'_>,
        resumed: bool,
    ) -> Result<Journal, JournalError> {
        let path = job_journal_path(table, start.job_id);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A new job's journal starts empty: what a run that stopped before its start line left
        // (an empty file, a torn line) is no job's. A resumed one goes on after a whole line.
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        if !resumed {
            file.set_len(0).map_err(io)?;
        } else if !ends_with_newline(&path).map_err(io)? {
            file.write_all(b"\n").map_err(io)?;
        }
        let mut j = Journal {
            file,
            path: path.clone(),
        };
        j.append(&JournalEntry::Start {
            plan: start.plan.to_string(),
            job_id: Some(start.job_id.to_string()),
            inputs: start.inputs.to_vec(),
            chunks: start.chunks,
            rows: start.rows,
            at: now(),
            host: flywheel_protocol::hostname(),
            slurm_job_id: std::env::var("SLURM_JOB_ID").ok(),
            slurm_step_id: std::env::var("SLURM_STEP_ID").ok(),
            resumed,
            reused_chunks: start.reused.0,
            reused_rows: start.reused.1,
        })?;
        point_latest(table, start.job_id).map_err(io)?;
        Ok(j)
    }

    /// Opens an existing journal for appending (to record a publish found after a crash).
    pub fn reopen(path: &Path) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, e: &JournalEntry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(e).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Records an accepted chunk, with its worker's GPU so far (synced before returning).
    pub fn accept(
        &mut self,
        output: &ChunkOutput,
        gpu: Option<WorkerGpu>,
    ) -> Result<(), JournalError> {
        self.append(&JournalEntry::Accepted {
            at: now(),
            output: output.clone(),
            gpu,
        })
    }

    /// Records the publish.
    pub fn published(&mut self, version: u64) -> Result<(), JournalError> {
        self.append(&JournalEntry::Published { at: now(), version })
    }
}

/// Atomically re-points `table/_journal.jsonl` at job `job_id`'s journal.
fn point_latest(table: &Path, job_id: &str) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = table.join(format!(".journal-{}-{nanos}", std::process::id()));
    std::os::unix::fs::symlink(Path::new(JOBS_DIR).join(format!("{job_id}.jsonl")), &tmp)?;
    match std::fs::rename(&tmp, table.join(JOURNAL)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
