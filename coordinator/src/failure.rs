//! Why a job fails, as the scheduling core decides it: values a caller can match on, whose
//! `Display` is the sentence a user reads (never `Debug`).

use flywheel_protocol::{Attempt, ChunkId, Rank};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// One failed attempt: the cause a final error names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub chunk: ChunkId,
    pub attempt: Attempt,
    pub worker: Rank,
    pub error: String,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {}: {}",
            self.chunk, self.attempt, self.worker, self.error
        )
    }
}

/// Why the coordinator stopped feeding a worker that still answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainReason {
    /// It failed this many chunks in a row.
    FailedInARow(u32),
    /// Its GPU reported a problem (uncorrected ECC errors, lost device).
    SickGpu(String),
}

impl fmt::Display for DrainReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainReason::FailedInARow(n) => {
                write!(
                    f,
                    "failed {n} chunk{} in a row",
                    if *n == 1 { "" } else { "s" }
                )
            }
            DrainReason::SickGpu(problem) => f.write_str(problem),
        }
    }
}

/// Why a worker was declared lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// It sent nothing (not even a heartbeat) for longer than the heartbeat timeout.
    Silent { timeout: Duration },
    /// It had been drained, then went silent past the heartbeat timeout.
    SilentAfterDrain {
        timeout: Duration,
        drained: DrainReason,
    },
}

impl LostReason {
    /// Why it had been drained before it went silent, if it had.
    pub fn drained(&self) -> Option<&DrainReason> {
        match self {
            LostReason::Silent { .. } => None,
            LostReason::SilentAfterDrain { drained, .. } => Some(drained),
        }
    }
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Silent { timeout } => {
                write!(f, "sent nothing for {}s", timeout.as_secs())
            }
            LostReason::SilentAfterDrain { timeout, drained } => write!(
                f,
                "sent nothing for {}s (drained before: {drained})",
                timeout.as_secs()
            ),
        }
    }
}

/// Where a registered worker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Answering and given chunks.
    Live,
    /// Answering, but given no more chunks; what it held went to others.
    Drained(DrainReason),
    /// Silent: what it held went to others; a late result from it is discarded.
    Lost(LostReason),
    /// It said goodbye.
    Stopped,
}

impl WorkerState {
    /// Whether it may be given chunks.
    pub fn usable(&self) -> bool {
        matches!(self, WorkerState::Live)
    }

    /// Whether its silence is watched: it answers, given chunks or not (live or drained).
    pub fn watched(&self) -> bool {
        matches!(self, WorkerState::Live | WorkerState::Drained(_))
    }

    /// Whether it is lost.
    pub fn is_lost(&self) -> bool {
        matches!(self, WorkerState::Lost(_))
    }

    /// Whether it can take no more chunks for a reason of its own (lost or drained).
    pub fn is_gone(&self) -> bool {
        matches!(self, WorkerState::Lost(_) | WorkerState::Drained(_))
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerState::Live => f.write_str("live"),
            WorkerState::Drained(why) => write!(f, "drained ({why})"),
            WorkerState::Lost(why) => write!(f, "lost ({why})"),
            WorkerState::Stopped => f.write_str("stopped"),
        }
    }
}

/// Why the job failed; nothing is published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobFailure {
    /// A chunk used all its attempts.
    #[error("{chunk} ({at}) failed {failures} time{} on {}; last error ({} on {}): {}",
        plural(*failures), ranks(workers), last.attempt, last.worker, last.error)]
    AttemptsExhausted {
        chunk: ChunkId,
        /// The chunk's input file.
        path: String,
        /// Where its rows are in the file, in words ([`where_rows`]).
        at: String,
        failures: u32,
        /// The workers its failed attempts ran on, in order, each once.
        workers: Vec<Rank>,
        last: AttemptError,
    },
    /// A chunk found the input itself bad: retrying cannot help.
    #[error("{}", bad_input_text(path, error))]
    BadInput {
        chunk: ChunkId,
        /// The input file the chunk reads.
        path: String,
        /// The worker's words (they usually name the file, the line or row and the column).
        error: String,
    },
    /// Every registered worker was lost or drained before the job completed.
    #[error("every worker was lost or drained ({}){}", states(workers),
        last.as_ref().map(|l| format!("; last error: {l}")).unwrap_or_default())]
    NoWorkersLeft {
        workers: Vec<(Rank, WorkerState)>,
        /// The latest failure of a chunk's own making, else the latest of any.
        last: Option<AttemptError>,
    },
    /// The chunks' output schemas cannot be unified into one table schema.
    #[error("the chunks' outputs cannot be one table: {0}")]
    SchemaConflict(String),
}

impl JobFailure {
    /// The input itself is bad (exit 2 rather than 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, JobFailure::BadInput { .. })
    }
}

/// Where a failed chunk's rows are, in words: `rows 0..100 of PATH`, or for a text chunk (cut
/// by bytes: its planned rows are an estimate) `bytes 2439..4878 of PATH, from row 116` (without
/// the row before the chunks of its file before it were read).
pub(crate) fn where_rows(
    path: &str,
    rows: &Range<u64>,
    bytes: &Option<(u64, u64)>,
    start: &Option<u64>,
) -> String {
    match (bytes, start) {
        (Some((b, e)), Some(s)) => format!("bytes {b}..{e} of {path}, from row {s}"),
        (Some((b, e)), None) => format!("bytes {b}..{e} of {path}"),
        (None, _) => format!("rows {}..{} of {path}", rows.start, rows.end),
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// "worker 1, worker 2".
fn ranks(workers: &[Rank]) -> String {
    workers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most this many workers are named in one message; the rest are counted.
const NAMED_WORKERS: usize = 8;

/// "worker 1 lost (sent nothing for 10s), worker 2 drained (failed 5 chunks in a row)".
fn states(workers: &[(Rank, WorkerState)]) -> String {
    let mut s = workers
        .iter()
        .take(NAMED_WORKERS)
        .map(|(r, st)| format!("{r} {st}"))
        .collect::<Vec<_>>()
        .join(", ");
    if workers.len() > NAMED_WORKERS {
        s.push_str(&format!(" and {} more", workers.len() - NAMED_WORKERS));
    }
    s
}

/// The worker's words, with the input file in front when they do not name it.
fn bad_input_text(path: &str, error: &str) -> String {
    let name = std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path);
    if path.is_empty() || error.contains(name) {
        error.to_string()
    } else {
        format!("{path}: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> AttemptError {
        AttemptError {
            chunk: ChunkId(3),
            attempt: Attempt(2),
            worker: Rank(1),
            error: "boom".into(),
        }
    }

    #[test]
    fn failures_read_as_sentences() {
        let f = JobFailure::AttemptsExhausted {
            chunk: ChunkId(3),
            path: "/in.parquet".into(),
            at: where_rows("/in.parquet", &(30..40), &None, &None),
            failures: 2,
            workers: vec![Rank(2), Rank(1)],
            last: last(),
        };
        assert_eq!(
            f.to_string(),
            "chunk 3 (rows 30..40 of /in.parquet) failed 2 times on worker 2, worker 1; last error (attempt 2 on worker 1): boom"
        );
        let f = JobFailure::NoWorkersLeft {
            workers: vec![
                (
                    Rank(1),
                    WorkerState::Lost(LostReason::Silent {
                        timeout: Duration::from_secs(10),
                    }),
                ),
                (Rank(2), WorkerState::Drained(DrainReason::FailedInARow(5))),
            ],
            last: Some(last()),
        };
        assert_eq!(
            f.to_string(),
            "every worker was lost or drained (worker 1 lost (sent nothing for 10s), worker 2 drained (failed 5 chunks in a row)); last error: chunk 3 attempt 2 on worker 1: boom"
        );
        let many: Vec<_> = (1..=10).map(|i| (Rank(i), WorkerState::Stopped)).collect();
        let text = JobFailure::NoWorkersLeft {
            workers: many,
            last: None,
        }
        .to_string();
        assert!(text.ends_with("worker 8 stopped and 2 more)"), "{text}");
    }

    #[test]
    fn bad_input_names_the_file() {
        let named = JobFailure::BadInput {
            chunk: ChunkId(0),
            path: "/data/x.jsonl".into(),
            error: "x.jsonl: line 7: not JSON".into(),
        };
        assert_eq!(named.to_string(), "x.jsonl: line 7: not JSON");
        assert!(named.is_bad_input());
        let unnamed = JobFailure::BadInput {
            chunk: ChunkId(0),
            path: "/data/x.jsonl".into(),
            error: "line 7: not JSON".into(),
        };
        assert_eq!(unnamed.to_string(), "/data/x.jsonl: line 7: not JSON");
    }
}
