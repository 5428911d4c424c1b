//! A chunk attempt's end: accepted (the other attempts cancelled), failed (retried, or the job
//! fails), and the table schema decided from the accepted outputs.

use super::{Chunk, ChunkState, Coordinator, Run, Runs};
use crate::failure::{AttemptError, JobFailure};
use flywheel_protocol::{
    Attempt, ChunkId, ChunkOutput, FailureKind, Rank, ToWorker, Transport, TransportError,
};

/// Words for a failure kind in a log line.
fn kind_text(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Mapper => "mapper",
        FailureKind::MapperStart => "mapper start",
        FailureKind::Timeout => "timeout",
        FailureKind::InvalidOutput => "invalid output",
        FailureKind::Io => "I/O",
        FailureKind::WorkerLost => "worker lost",
        FailureKind::BadInput => "bad input",
    }
}

impl Coordinator {
    pub(super) fn on_done(
        &mut self,
        tx: &mut impl Transport,
        from: Rank,
        out: ChunkOutput,
    ) -> Result<(), TransportError> {
        self.forget(from, out.chunk, out.attempt);
        let Some(runs) = self.runs_accepting(from, &out) else {
            return Ok(());
        };
        if let (Some(fixed), Some(got)) = (&self.schema, &out.schema) {
            if !crate::schema_merge::same_schema(fixed, got) {
                let msg = format!("output schema {got} differs from the table's {fixed}");
                self.on_failed(
                    from,
                    out.chunk,
                    out.attempt,
                    FailureKind::InvalidOutput,
                    &msg,
                );
                return Ok(());
            }
        }
        let winner = runs
            .iter()
            .find(|r| r.worker == from && r.attempt == out.attempt)
            .cloned();
        self.cancel_others(tx, from, &out, &runs)?;
        if let Some(w) = self.workers.get_mut(&from) {
            w.failures_in_a_row = 0;
            w.report.chunks += 1;
            w.report.rows_in += out.rows_in;
            w.report.rows_out += out.rows_out;
            w.report.busy_ms += out.wall_ms;
            if winner.is_some_and(|r| r.speculative) {
                w.report.speculative_wins += 1;
            }
        }
        self.accept(from, out);
        Ok(())
    }

    /// The chunk's runs, when `out` is of one of them; else (a cancelled copy, a late result,
    /// an unknown chunk) `None`, and its output is never published.
    fn runs_accepting(&mut self, from: Rank, out: &ChunkOutput) -> Option<Runs> {
        let Some(chunk) = self.chunks.get(out.chunk.0 as usize) else {
            tracing::warn!("{from} reported unknown {}", out.chunk);
            return None;
        };
        match &chunk.state {
            ChunkState::Running(runs)
                if runs
                    .iter()
                    .any(|r| r.worker == from && r.attempt == out.attempt) =>
            {
                Some(runs.clone())
            }
            _ => {
                tracing::debug!(
                    "discarding the result of {} {} from {from}",
                    out.chunk,
                    out.attempt
                );
                self.wasted_rows += out.rows_in;
                None
            }
        }
    }

    /// Cancels the chunk's attempts other than the accepted one.
    fn cancel_others(
        &mut self,
        tx: &mut impl Transport,
        from: Rank,
        out: &ChunkOutput,
        runs: &[Run],
    ) -> Result<(), TransportError> {
        for r in runs
            .iter()
            .filter(|r| !(r.worker == from && r.attempt == out.attempt))
        {
            self.forget(r.worker, out.chunk, r.attempt);
            if self
                .workers
                .get(&r.worker)
                .is_some_and(|w| !w.state.is_lost())
            {
                tx.send(
                    r.worker,
                    ToWorker::Cancel {
                        chunk: out.chunk,
                        attempt: r.attempt,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Records an accepted output; the schema is settled once every chunk is done (or the
    /// accepted ones already conflict).
    fn accept(&mut self, from: Rank, mut out: ChunkOutput) {
        let id = out.chunk;
        let mut conflict = false;
        match (&self.schema_probed, &out.schema) {
            // The text probed last: unifying it again would change nothing; keep one copy.
            (Some(last), Some(got)) if last == got => out.schema = Some(last.clone()),
            (_, Some(got)) => {
                if self.schema.is_none() {
                    conflict = crate::schema_merge::probe(&mut self.schema_probe, got);
                }
                self.schema_probed = Some(got.clone());
            }
            (_, None) => {}
        }
        self.rows.1 += out.rows_in;
        self.rows.2 += out.rows_out;
        self.chunks[id.0 as usize].state = ChunkState::Done(Box::new(out));
        self.reindex_chunk(id);
        self.done += 1;
        self.accepted.push((id, from));
        if conflict || self.is_complete() {
            self.settle_schema();
        }
    }

    /// Without `--schema`, once every chunk is done (or the accepted ones already disagree):
    /// unifies the chunks' output schemas in chunk order into the table schema, fails the job
    /// on a conflict, and sends back to the queue each chunk whose file has another schema, to
    /// be written again with the table's (which its tasks now carry).
    pub(super) fn settle_schema(&mut self) {
        if self.schema.is_some() || self.failure.is_some() {
            return;
        }
        let schemas: Vec<(ChunkId, &str)> = self
            .chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.state {
                ChunkState::Done(o) => o.schema.as_deref().map(|s| (ChunkId(i as u32), s)),
                _ => None,
            })
            .collect();
        let unified = match crate::schema_merge::unify_chunks(&schemas) {
            Ok(u) => u,
            Err(why) => {
                self.failure = Some(JobFailure::SchemaConflict(why.to_string()));
                return;
            }
        };
        if !self.is_complete() {
            return;
        }
        let Some(unified) = unified else {
            return;
        };
        let mut again = Vec::new();
        for (i, c) in self.chunks.iter_mut().enumerate() {
            if let ChunkState::Done(o) = &c.state {
                if o.schema
                    .as_deref()
                    .is_some_and(|s| !crate::schema_merge::same_schema(s, &unified.schema))
                {
                    self.wasted_rows += o.rows_in;
                    self.rows.1 -= o.rows_in;
                    self.rows.2 -= o.rows_out;
                    c.state = ChunkState::Pending;
                    again.push(ChunkId(i as u32));
                }
            }
        }
        for note in &unified.widened {
            tracing::warn!("{note}");
        }
        self.schema_notes.extend(unified.widened);
        if !again.is_empty() {
            let note = format!(
                "{} chunk(s) run again to store them with the table schema: {}",
                again.len(),
                again
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tracing::warn!("{note}");
            self.schema_notes.push(note);
            self.done -= again.len();
            self.queue.extend(again);
        }
        self.schema = Some(unified.schema.into());
    }

    /// An attempt failed (or was released from a lost, drained or restarted worker): the
    /// chunk is retried, or the job fails (bad input, attempts exhausted).
    pub(super) fn on_failed(
        &mut self,
        from: Rank,
        id: ChunkId,
        attempt: Attempt,
        kind: FailureKind,
        error: &str,
    ) {
        self.forget(from, id, attempt);
        let failed = AttemptError {
            chunk: id,
            attempt,
            worker: from,
            error: error.to_string(),
        };
        let Some(others_running) = self.record_failure(&failed, kind) else {
            return;
        };
        if let Some(w) = self.workers.get_mut(&from) {
            w.report.failures += 1;
            if kind != FailureKind::WorkerLost {
                w.failures_in_a_row += 1;
            }
        }
        let chunk = &self.chunks[id.0 as usize];
        if kind != FailureKind::WorkerLost {
            self.last_error = Some(failed.clone());
        }
        if kind == FailureKind::BadInput {
            self.failure.get_or_insert_with(|| JobFailure::BadInput {
                chunk: id,
                path: chunk.slice.path.clone(),
                error: failed.error,
            });
            return;
        }
        let exhausted = (chunk.failures >= self.cfg.max_attempts)
            .then(|| exhausted(chunk, self.held_start(id), failed));
        self.maybe_drain(from);
        // The attempt budget counts every failed attempt, copies included.
        if let Some(f) = exhausted {
            self.failure.get_or_insert(f);
            return;
        }
        if others_running {
            return;
        }
        self.retries += 1;
        self.queue.push_front(id);
    }

    /// Takes a failed attempt off its chunk and counts it; whether other attempts of the chunk
    /// still run (`None`: the attempt was not running, nothing changed).
    fn record_failure(&mut self, failed: &AttemptError, kind: FailureKind) -> Option<bool> {
        let (id, attempt, from) = (failed.chunk, failed.attempt, failed.worker);
        let chunk = self.chunks.get_mut(id.0 as usize)?;
        let ChunkState::Running(runs) = &mut chunk.state else {
            return None;
        };
        let pos = runs
            .iter()
            .position(|r| r.worker == from && r.attempt == attempt)?;
        let run = runs.remove(pos);
        let others_running = !runs.is_empty();
        if run.started.is_some() {
            self.wasted_rows += chunk.slice.row_count;
        }
        self.failures += 1;
        chunk.failures += 1;
        tracing::warn!(
            "{id} {attempt} failed on {from} ({}): {}",
            kind_text(kind),
            failed.error
        );
        chunk.errors.push(failed.clone());
        if !others_running {
            chunk.state = ChunkState::Pending;
        }
        self.reindex_chunk(id);
        Some(others_running)
    }
}

/// The failure of a chunk that used all its attempts, the last being `last`.
fn exhausted(chunk: &Chunk, start: Option<u64>, last: AttemptError) -> JobFailure {
    let mut workers: Vec<Rank> = Vec::new();
    for e in &chunk.errors {
        if !workers.contains(&e.worker) {
            workers.push(e.worker);
        }
    }
    let first = chunk.slice.row_start;
    JobFailure::AttemptsExhausted {
        chunk: last.chunk,
        path: chunk.slice.path.clone(),
        at: crate::failure::where_rows(
            &chunk.slice.path,
            &(first..first + chunk.slice.row_count),
            &chunk.slice.bytes,
            &start,
        ),
        failures: chunk.failures,
        workers,
        last,
    }
}
