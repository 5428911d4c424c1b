//! Reading one chunk's answer from the mapper, and checking it: nothing a mapper says is taken
//! on trust. The chunk id it names, the rows it counts, the input rows its errors and rows point
//! at are checked against what the worker knows; a mismatch fails the chunk, naming the chunk and
//! the field.

use super::ProcessMapper;
use crate::child::{Message, Wait};
use crate::convert::{arrow_to_output, input_row, read_ipc, rows_to_output};
use crate::lines::{Answer, EndLine, ErrorLine, Loose};
use crate::{ChunkError, MapOutput, RowError};
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{ChunkId, ChunkTask, FailureKind, RowErrorPolicy};
use std::time::Instant;

/// What a chunk's answer holds so far, and the first thing in it that is not true.
struct Collected {
    label: String,
    chunk: ChunkId,
    rows_in: u64,
    rows: Vec<serde_json::Value>,
    /// The input row of each of `rows`.
    sources: Vec<u64>,
    row_errors: Vec<RowError>,
    arrow_batches: Vec<RecordBatch>,
    arrow_rows: u64,
    /// The first thing the mapper said that is not true; the chunk fails at its end.
    lie: Option<String>,
}

/// How the `end` line ends a chunk.
enum Ending {
    Done,
    /// `"failed": true`, with the reason the line gives, if any.
    Failed(Option<String>),
}

impl Collected {
    fn new(label: String, chunk: ChunkId, rows_in: u64) -> Collected {
        Collected {
            label,
            chunk,
            rows_in,
            rows: Vec::new(),
            sources: Vec::new(),
            row_errors: Vec::new(),
            arrow_batches: Vec::new(),
            arrow_rows: 0,
            lie: None,
        }
    }

    fn note(&mut self, what: String) {
        if self.lie.is_none() {
            self.lie = Some(format!(
                "mapper {} answered {} with {what}",
                self.label, self.chunk
            ));
        }
    }

    /// The batches of an Arrow stream, and the row count its arrow line announced.
    fn arrow(&mut self, batches: Vec<RecordBatch>, announced: Option<u64>) {
        let n: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if let Some(a) = announced.filter(|a| *a != n) {
            self.note(format!(
                "an arrow line announcing rows {a} for an Arrow stream of {n} rows"
            ));
        }
        self.arrow_rows += n;
        self.arrow_batches.extend(batches);
    }

    /// A `row` line: the row, and the input row it came from (`in`, default 0).
    fn row(&mut self, row: serde_json::Value, input: Option<Loose<u64>>) {
        self.rows.push(row);
        let source = match input {
            None => Some(0),
            Some(Loose::Is(i)) => Some(i),
            Some(Loose::Not(v)) => {
                self.note(format!("a row whose \"in\" is {v:.100}, not a row index"));
                None
            }
        };
        match source {
            Some(i) if i < self.rows_in => self.sources.push(i),
            Some(i) => {
                self.note(format!(
                    "a row whose \"in\" is {i}, beyond its {} input rows",
                    self.rows_in
                ));
                self.sources.push(0);
            }
            None => self.sources.push(0),
        }
    }

    /// An `error` line: `row` (required) and `rows` (default 1) within the input rows.
    fn error(&mut self, err: ErrorLine) {
        let rows_in = self.rows_in;
        let (row, rows) = match (&err.row, &err.rows) {
            (Some(Loose::Is(row)), Some(Loose::Is(rows))) => (*row, *rows),
            (Some(Loose::Is(row)), None) => (*row, 1),
            (None, _) => {
                self.note("an error line without \"row\"".to_string());
                (0, 1)
            }
            (Some(Loose::Not(v)), _) => {
                self.note(format!(
                    "an error line whose \"row\" is {v:.100}, not a row index"
                ));
                (0, 1)
            }
            (_, Some(Loose::Not(v))) => {
                self.note(format!(
                    "an error line whose \"rows\" is {v:.100}, not a row count"
                ));
                (0, 1)
            }
        };
        if row >= rows_in || rows == 0 || rows > rows_in - row.min(rows_in) {
            self.note(format!(
                "an error line for \"row\" {row} and \"rows\" {rows}, outside its {rows_in} input rows"
            ));
        }
        let text = |f: Option<Loose<String>>| match f {
            Some(Loose::Is(s)) => s,
            _ => String::new(),
        };
        self.row_errors.push(RowError {
            row: row.min(rows_in.saturating_sub(1)),
            rows: rows.clamp(1, rows_in.saturating_sub(row).max(1)),
            message: text(err.message),
            traceback: text(err.traceback),
        });
    }

    /// An `end` line (its chunk already checked): `rows_out` must count the rows received.
    fn end(&mut self, end: &EndLine) -> Ending {
        let received = self.rows.len() as u64 + self.arrow_rows;
        match &end.rows_out {
            Some(Loose::Is(n)) if *n == received => {}
            Some(Loose::Is(n)) => self.note(format!(
                "an end line saying rows_out {n}, but it sent {received} rows"
            )),
            None => self.note("an end line without rows_out".to_string()),
            Some(Loose::Not(v)) => self.note(format!(
                "an end line whose rows_out is {v:.100}, not a row count"
            )),
        }
        match &end.failed {
            None | Some(Loose::Is(false)) => Ending::Done,
            Some(Loose::Is(true)) => Ending::Failed(end.reason()),
            Some(Loose::Not(v)) => {
                self.note(format!(
                    "an end line whose failed is {v:.100}, not true or false"
                ));
                Ending::Done
            }
        }
    }
}

impl ProcessMapper {
    /// Reads one chunk's answer up to its `end` line, checking everything the mapper says
    /// against what the worker knows: the chunk id, the rows it sent (`rows_in`), the rows it
    /// received. A lie fails the chunk, naming the chunk and the field.
    pub(super) fn read_chunk(
        &mut self,
        task: &ChunkTask,
        deadline: Instant,
        rows_in: u64,
    ) -> Result<MapOutput, ChunkError> {
        let mut answer = Collected::new(self.label.clone(), task.chunk, rows_in);
        let ending = loop {
            if let Some(ending) = self.next_answer(task, deadline, &mut answer)? {
                break ending;
            }
        };
        self.conclude(task, answer, ending)
    }

    /// Reads the next message of a chunk's answer into `answer`; the ending once the `end` line
    /// came. An unreadable message, or one that is no part of the protocol, kills the mapper:
    /// the rest of its answer is still coming, and the next chunk starts afresh.
    fn next_answer(
        &mut self,
        task: &ChunkTask,
        deadline: Instant,
        answer: &mut Collected,
    ) -> Result<Option<Ending>, ChunkError> {
        let message = match self.next_message(deadline, Wait::Chunk) {
            Ok(Message::Arrow { data, rows }) => match read_ipc(data) {
                Ok(batches) => {
                    answer.arrow(batches, rows);
                    return Ok(None);
                }
                Err(e) => {
                    self.kill();
                    return Err(ChunkError::new(
                        FailureKind::InvalidOutput,
                        format!("mapper {} sent an unreadable Arrow stream: {e}", self.label),
                    ));
                }
            },
            other => other,
        };
        let line = match message.and_then(|m| self.json_of(m)) {
            Ok(v) => v,
            Err(e) => {
                // The writer thread must not outlive a dead pipe.
                self.kill();
                return Err(e);
            }
        };
        match Answer::of(line) {
            Answer::Row { row, input } => answer.row(row, input),
            Answer::Error(err) => answer.error(err),
            Answer::End(end) => {
                self.check_end_chunk(task, &end)?;
                return Ok(Some(answer.end(&end)));
            }
            Answer::Other(line) => {
                self.kill();
                let hint = if line.get("chunk").is_some() {
                    " (it echoes its input back?)"
                } else {
                    ""
                };
                return Err(ChunkError::new(
                    FailureKind::InvalidOutput,
                    format!(
                        "mapper {} answered {} with a message that is not part of the flywheel mapper protocol{hint} (see docs/protocol.md): {line:.200}",
                        self.label, task.chunk
                    ),
                ));
            }
        }
        Ok(None)
    }

    /// An answer to another chunk means the stream is out of step: never accept it.
    fn check_end_chunk(&mut self, task: &ChunkTask, end: &EndLine) -> Result<(), ChunkError> {
        let named = match &end.chunk {
            None => return Ok(()),
            Some(Loose::Is(c)) if *c == u64::from(task.chunk.0) => return Ok(()),
            Some(Loose::Is(n)) => format!("chunk {n}"),
            Some(Loose::Not(v)) => format!("chunk {v:.100}"),
        };
        self.kill();
        Err(ChunkError::new(
            FailureKind::InvalidOutput,
            format!(
                "mapper {} ended {named} while {} was running",
                self.label, task.chunk
            ),
        ))
    }

    /// The chunk's output from a complete answer, or why the chunk fails: a lie, the mapper's
    /// own `failed`, a raising row under `--on-row-error fail`, a row that does not fit.
    fn conclude(
        &self,
        task: &ChunkTask,
        answer: Collected,
        ending: Ending,
    ) -> Result<MapOutput, ChunkError> {
        if let Some(lie) = answer.lie {
            return Err(ChunkError::new(FailureKind::InvalidOutput, lie));
        }
        let raised = |e: &RowError| {
            ChunkError::new(
                FailureKind::Mapper,
                format!(
                    "mapper {} raised on {}: {}\n{}",
                    self.label,
                    input_row(task, e.row),
                    e.message,
                    e.traceback.trim_end()
                ),
            )
        };
        let mut row_errors = answer.row_errors;
        if let Ending::Failed(why) = ending {
            // The mapper itself says the chunk failed: believe it, with its reason.
            return Err(match (row_errors.first(), why) {
                (Some(e), _) => raised(e),
                (None, Some(why)) => ChunkError::new(
                    FailureKind::Mapper,
                    format!("mapper {} failed {}: {why}", self.label, task.chunk),
                ),
                (None, None) => ChunkError::new(
                    FailureKind::Mapper,
                    format!(
                        "mapper {} ended {} with \"failed\": true and gave no reason",
                        self.label, task.chunk
                    ),
                ),
            });
        }
        if self.policy == RowErrorPolicy::Fail {
            if let Some(e) = row_errors.first() {
                return Err(raised(e));
            }
        }
        let (mut batches, violations) =
            rows_to_output(answer.rows, &answer.sources, task, self.policy)?;
        row_errors.extend(violations);
        if !answer.arrow_batches.is_empty() {
            let (b, violations) = arrow_to_output(answer.arrow_batches, task, self.policy)?;
            batches.extend(b);
            row_errors.extend(violations);
        }
        Ok(MapOutput {
            batches,
            row_errors,
        })
    }
}
