//! Reading one chunk's answer from the mapper, and checking it: nothing a mapper says is taken
//! on trust. The chunk id it names, the rows it counts, the input rows its errors and rows point
//! at are checked against what the worker knows; a mismatch fails the chunk, naming the chunk and
//! the field.

use super::ProcessMapper;
use crate::child::{Message, Wait};
use crate::convert::{arrow_to_output, input_row, read_ipc, rows_to_output};
use crate::{ChunkError, MapOutput, RowError};
use flywheel_protocol::{ChunkTask, FailureKind, RowErrorPolicy};
use std::time::Instant;

/// Reads an optional non-negative integer field of a mapper message: `Ok(None)` when absent,
/// `Err(text)` when present but not such an integer.
fn count_field(obj: &serde_json::Value, field: &str) -> Result<Option<u64>, String> {
    match obj.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("{v:.100}")),
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
        let mut rows = Vec::new();
        let mut sources = Vec::new();
        let mut row_errors = Vec::new();
        let mut arrow_batches = Vec::new();
        let mut arrow_rows = 0u64;
        // The first thing the mapper said that is not true; the chunk fails at its end.
        let mut lie: Option<String> = None;
        let label = self.label.clone();
        let chunk = task.chunk;
        let note = |lie: &mut Option<String>, what: String| {
            if lie.is_none() {
                *lie = Some(format!("mapper {label} answered {chunk} with {what}"));
            }
        };
        let failed_end = loop {
            let message = match self.next_message(deadline, Wait::Chunk) {
                Ok(Message::Arrow {
                    data,
                    rows: announced,
                }) => {
                    match read_ipc(&data) {
                        Ok(b) => {
                            let n: u64 = b.iter().map(|b| b.num_rows() as u64).sum();
                            if announced.is_some_and(|a| a != n) {
                                note(&mut lie, format!("an arrow line announcing rows {} for an Arrow stream of {n} rows", announced.unwrap_or(0)));
                            }
                            arrow_rows += n;
                            arrow_batches.extend(b);
                        }
                        Err(e) => {
                            // The rest of this chunk's answer is still coming: start afresh.
                            self.kill();
                            return Err(ChunkError::new(
                                FailureKind::InvalidOutput,
                                format!(
                                    "mapper {} sent an unreadable Arrow stream: {e}",
                                    self.label
                                ),
                            ));
                        }
                    }
                    continue;
                }
                other => other,
            };
            let mut line = match message.and_then(|m| self.json_of(m)) {
                Ok(v) => v,
                Err(e) => {
                    // The writer thread must not outlive a dead pipe.
                    self.kill();
                    return Err(e);
                }
            };
            if let Some(row) = line.get_mut("row") {
                rows.push(row.take());
                match count_field(&line, "in") {
                    Ok(i) if i.unwrap_or(0) < rows_in => sources.push(i.unwrap_or(0)),
                    Ok(i) => {
                        note(
                            &mut lie,
                            format!(
                                "a row whose \"in\" is {}, beyond its {rows_in} input rows",
                                i.unwrap_or(0)
                            ),
                        );
                        sources.push(0);
                    }
                    Err(v) => {
                        note(
                            &mut lie,
                            format!("a row whose \"in\" is {v}, not a row index"),
                        );
                        sources.push(0);
                    }
                }
            } else if let Some(err) = line.get("error") {
                let (row, rows) = match (count_field(err, "row"), count_field(err, "rows")) {
                    (Ok(Some(row)), Ok(rows)) => (row, rows.unwrap_or(1)),
                    (Ok(None), _) => {
                        note(&mut lie, "an error line without \"row\"".to_string());
                        (0, 1)
                    }
                    (Err(v), _) => {
                        note(
                            &mut lie,
                            format!("an error line whose \"row\" is {v}, not a row index"),
                        );
                        (0, 1)
                    }
                    (_, Err(v)) => {
                        note(
                            &mut lie,
                            format!("an error line whose \"rows\" is {v}, not a row count"),
                        );
                        (0, 1)
                    }
                };
                if row >= rows_in || rows == 0 || rows > rows_in - row.min(rows_in) {
                    note(
                        &mut lie,
                        format!("an error line for \"row\" {row} and \"rows\" {rows}, outside its {rows_in} input rows"),
                    );
                }
                row_errors.push(RowError {
                    row: row.min(rows_in.saturating_sub(1)),
                    rows: rows.clamp(1, rows_in.saturating_sub(row).max(1)),
                    message: err
                        .get("message")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                    traceback: err
                        .get("traceback")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                });
            } else if let Some(end) = line.get("end") {
                // An answer to another chunk means the stream is out of step: never accept it.
                match end.get("chunk") {
                    None => {}
                    Some(c) if c.as_u64() == Some(u64::from(task.chunk.0)) => {}
                    Some(c) => {
                        self.kill();
                        let c = match c.as_u64() {
                            Some(n) => format!("chunk {n}"),
                            None => format!("chunk {c:.100}"),
                        };
                        return Err(ChunkError::new(
                            FailureKind::InvalidOutput,
                            format!(
                                "mapper {} ended {c} while {} was running",
                                self.label, task.chunk
                            ),
                        ));
                    }
                }
                let received = rows.len() as u64 + arrow_rows;
                match count_field(end, "rows_out") {
                    Ok(Some(n)) if n == received => {}
                    Ok(Some(n)) => note(
                        &mut lie,
                        format!("an end line saying rows_out {n}, but it sent {received} rows"),
                    ),
                    Ok(None) => note(&mut lie, "an end line without rows_out".to_string()),
                    Err(v) => note(
                        &mut lie,
                        format!("an end line whose rows_out is {v}, not a row count"),
                    ),
                }
                match end.get("failed") {
                    None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {
                        break None
                    }
                    Some(serde_json::Value::Bool(true)) => {
                        let why = ["message", "error"]
                            .iter()
                            .find_map(|k| end.get(*k).and_then(|v| v.as_str()))
                            .map(str::to_string);
                        break Some(why);
                    }
                    Some(v) => {
                        note(
                            &mut lie,
                            format!("an end line whose failed is {v:.100}, not true or false"),
                        );
                        break None;
                    }
                }
            } else {
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
        };
        if let Some(lie) = lie {
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
        if let Some(why) = failed_end {
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
        let (mut batches, violations) = rows_to_output(rows, &sources, task, self.policy)?;
        row_errors.extend(violations);
        if !arrow_batches.is_empty() {
            let (b, violations) = arrow_to_output(arrow_batches, task, self.policy)?;
            batches.extend(b);
            row_errors.extend(violations);
        }
        Ok(MapOutput {
            batches,
            row_errors,
        })
    }
}
