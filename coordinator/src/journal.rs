//! The job journal: every accepted chunk is appended (and fsynced) to `OUT/_journal.jsonl`
//! before it counts, so an interrupted job (crash, scancel, time limit, preemption) can resume
//! where it stopped: `--resume` reads the journal, checks the recorded files, and schedules only
//! the rest. `flywheel status OUT` reads it too.
//!
//! ```text
//! {"Start": {"plan": "<sha256>", "chunks": 25, "rows": 500, "at": 1764130000, "host": "n1", "slurm_job_id": "42", "resumed": false}}
//! {"Accepted": {"at": 1764130003, "output": { …ChunkOutput… }}}
//! {"Start": { … "resumed": true }}            a later run continuing the same plan
//! {"Published": {"at": 1764130100, "version": 1}}
//! ```
//! The plan hash covers the chunk plan and every option that changes output, so a journal is
//! never applied to a different job.

use flywheel_protocol::ChunkOutput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

const JOURNAL: &str = "_journal.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JournalEntry {
    Start {
        plan: String,
        chunks: usize,
        rows: u64,
        at: u64,
        host: String,
        slurm_job_id: Option<String>,
        resumed: bool,
    },
    Accepted {
        at: u64,
        output: ChunkOutput,
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
    /// The journal belongs to another plan (input, mapper or options changed).
    #[error("{path} records a different job (its input, mapper or options differ); remove it or run without --resume")]
    OtherPlan { path: PathBuf },
    /// The interrupted job already published.
    #[error(
        "{path}: this job already finished and published version {version}; nothing to resume"
    )]
    AlreadyPublished { path: PathBuf, version: u64 },
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The journal of one output table.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// Reads a table's journal (empty when there is none).
pub fn read_journal(table: &Path) -> Result<Vec<JournalEntry>, JournalError> {
    let path = table.join(JOURNAL);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| JournalError::Io {
            path: path.clone(),
            source,
        })?;
        // A torn last line (the writer was killed mid-write) is ignored: it never counted.
        if let Ok(e) = serde_json::from_str::<JournalEntry>(&line) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Whether an accepted output's files are still there, whole.
fn verified(table: &Path, o: &ChunkOutput) -> bool {
    let file_ok = |rel: &str, bytes: Option<u64>| {
        std::fs::metadata(table.join(rel))
            .map(|m| m.is_file() && bytes.is_none_or(|b| m.len() == b))
            .unwrap_or(false)
    };
    o.file.as_deref().is_none_or(|f| file_ok(f, Some(o.bytes)))
        && o.errors_file
            .as_deref()
            .is_none_or(|f| file_ok(&format!("_errors/{f}"), None))
}

impl Journal {
    /// Starts the journal of a job with plan hash `plan`. With `resume`, continues an existing
    /// journal of the same plan and returns the outputs it accepted whose files check out.
    pub fn start(
        table: &Path,
        plan: &str,
        chunks: usize,
        rows: u64,
        resume: bool,
    ) -> Result<(Journal, Vec<ChunkOutput>), JournalError> {
        let path = table.join(JOURNAL);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(table).map_err(io)?;
        let mut done = Vec::new();
        let previous = if resume {
            read_journal(table)?
        } else {
            Vec::new()
        };
        let resumed = !previous.is_empty();
        if resumed {
            let same_plan = previous.iter().rev().find_map(|e| match e {
                JournalEntry::Start { plan: p, .. } => Some(p == plan),
                _ => None,
            });
            if same_plan != Some(true) {
                return Err(JournalError::OtherPlan { path });
            }
            if let Some(version) = previous.iter().find_map(|e| match e {
                JournalEntry::Published { version, .. } => Some(*version),
                _ => None,
            }) {
                return Err(JournalError::AlreadyPublished { path, version });
            }
            let mut by_chunk = BTreeMap::new();
            for e in previous {
                if let JournalEntry::Accepted { output, .. } = e {
                    by_chunk.entry(output.chunk).or_insert(output);
                }
            }
            for (_, o) in by_chunk {
                if verified(table, &o) {
                    done.push(o);
                } else {
                    tracing::warn!(
                        "{} of the interrupted run lost its file; it runs again",
                        o.chunk
                    );
                }
            }
        }
        let file = if resumed {
            OpenOptions::new().append(true).open(&path).map_err(io)?
        } else {
            File::create(&path).map_err(io)?
        };
        let mut j = Journal { file, path };
        j.append(&JournalEntry::Start {
            plan: plan.to_string(),
            chunks,
            rows,
            at: now(),
            host: flywheel_protocol::hostname(),
            slurm_job_id: std::env::var("SLURM_JOB_ID").ok(),
            resumed,
        })?;
        Ok((j, done))
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

    /// Records an accepted chunk (synced before returning).
    pub fn accept(&mut self, output: &ChunkOutput) -> Result<(), JournalError> {
        self.append(&JournalEntry::Accepted {
            at: now(),
            output: output.clone(),
        })
    }

    /// Records the publish.
    pub fn published(&mut self, version: u64) -> Result<(), JournalError> {
        self.append(&JournalEntry::Published { at: now(), version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flywheel_protocol::{Attempt, ChunkId};

    fn out(i: u32, dir: &Path) -> ChunkOutput {
        let rel = format!("data/c{i}.parquet");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join(&rel), b"1234").unwrap();
        ChunkOutput {
            chunk: ChunkId(i),
            attempt: Attempt(1),
            file: Some(rel),
            rows_in: 1,
            rows_out: 1,
            bytes: 4,
            schema: None,
            wall_ms: 1,
            errors_file: None,
            error_rows: 0,
            stats: None,
            worker: 1,
            host: "h".into(),
        }
    }

    #[test]
    fn resume_keeps_checked_chunks_of_the_same_plan() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, done) = Journal::start(dir.path(), "p1", 3, 3, true).unwrap();
        assert!(done.is_empty());
        j.accept(&out(0, dir.path())).unwrap();
        j.accept(&out(2, dir.path())).unwrap();
        drop(j);
        std::fs::write(dir.path().join("data/c2.parquet"), b"12").unwrap(); // damaged
        let (_, done) = Journal::start(dir.path(), "p1", 3, 3, true).unwrap();
        assert_eq!(done.iter().map(|o| o.chunk.0).collect::<Vec<_>>(), vec![0]);
        assert!(matches!(
            Journal::start(dir.path(), "other", 3, 3, true),
            Err(JournalError::OtherPlan { .. })
        ));
        let entries = read_journal(dir.path()).unwrap();
        assert_eq!(
            entries
                .iter()
                .filter(|e| matches!(e, JournalEntry::Start { resumed: true, .. }))
                .count(),
            1
        );
        // A torn last line is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap()
            .write_all(b"{\"Accep")
            .unwrap();
        assert_eq!(read_journal(dir.path()).unwrap().len(), entries.len());
    }
}
