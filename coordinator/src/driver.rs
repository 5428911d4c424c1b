//! The loop that runs the scheduling core against a real transport: receive with a deadline,
//! dispatch, check heartbeats, report progress; then stop the workers.

use crate::{Coordinator, CoordinatorError};
use flywheel_protocol::{ToCoordinator, ToWorker, Transport};
use std::time::{Duration, Instant};

/// Timing of the driver loop.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Longest wait for one message before housekeeping runs.
    pub poll: Duration,
    /// How long workers get to say goodbye after `Stop`.
    pub stop_grace: Duration,
    /// How long to wait for the first worker to register.
    pub ready_timeout: Duration,
    /// Asked once per loop: `Some(reason)` starts a checkpoint (no new chunks; the running
    /// ones may finish within `checkpoint_grace`; then the job ends as checkpointed).
    pub interrupted: Option<fn() -> Option<&'static str>>,
    /// How long running chunks get to finish at a checkpoint.
    pub checkpoint_grace: Duration,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            poll: Duration::from_millis(100),
            stop_grace: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(300),
            interrupted: None,
            checkpoint_grace: Duration::from_secs(60),
        }
    }
}

/// Runs the job to completion or failure, then stops every worker. `on_progress` is called
/// after every event and at least every `poll`.
pub fn drive(
    coord: &mut Coordinator,
    tx: &mut impl Transport,
    opts: &DriveOptions,
    on_progress: &mut dyn FnMut(&Coordinator),
    journal: Option<&mut crate::Journal>,
) -> Result<(), CoordinatorError> {
    let mut journal = journal;
    let started = Instant::now();
    let mut checkpoint: Option<(&'static str, Instant)> = None;
    // Messages handled and the time spent handling them (for the log line at the end).
    let mut handled = (0u64, Duration::ZERO);
    let result = loop {
        // A failure first: the last accepted chunk can both complete the job and fail it (its
        // schema conflicts with the others').
        if let Some(f) = coord.failure() {
            break Err(f.clone().into());
        }
        if coord.is_complete() {
            break Ok(());
        }
        if checkpoint.is_none() {
            if let Some(reason) = opts.interrupted.and_then(|f| f()) {
                tracing::warn!("{reason}: checkpointing (no new chunks; running ones may finish)");
                coord.stop_dispatch();
                checkpoint = Some((reason, Instant::now() + opts.checkpoint_grace));
            }
        }
        if let Some((reason, deadline)) = checkpoint {
            if coord.in_flight() == 0 || Instant::now() >= deadline {
                let p = coord.progress();
                break Err(CoordinatorError::Checkpointed {
                    reason: reason.to_string(),
                    done: p.chunks_done,
                    total: p.chunks_total,
                });
            }
        }
        if coord.live_workers().is_empty() && started.elapsed() > opts.ready_timeout {
            break Err(CoordinatorError::NoWorkerRegistered {
                waited: opts.ready_timeout,
            });
        }
        match tx.recv_timeout(opts.poll) {
            Ok(Some((from, msg))) => {
                let t0 = Instant::now();
                coord.on_message(tx, from, msg, t0)?;
                handled = (handled.0 + 1, handled.1 + t0.elapsed());
            }
            Ok(None) => {}
            Err(e) => break Err(e.into()),
        }
        // An accepted chunk counts once it is in the journal.
        if let Some(j) = journal.as_deref_mut() {
            if let Err(e) = coord
                .take_accepted_with_gpus()
                .into_iter()
                .try_for_each(|(o, gpu)| j.accept(o, gpu))
            {
                break Err(e.into());
            }
        }
        coord.on_tick(tx, Instant::now())?;
        on_progress(coord);
    };
    on_progress(coord);
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(
        "coordinator: {} chunk(s) in {wall:.2} s ({:.0}/s); {} message(s) handled, {:.1} us each",
        coord.progress().chunks_done,
        coord.progress().chunks_done as f64 / wall.max(1e-9),
        handled.0,
        handled.1.as_secs_f64() * 1e6 / handled.0.max(1) as f64
    );
    stop_workers(tx, opts.stop_grace);
    result
}

/// Sends `Stop` to every worker and waits (bounded) for their goodbyes. Also for a job that
/// fails before it starts, so that no worker rank is left waiting.
pub fn stop_workers(tx: &mut impl Transport, grace: Duration) {
    for rank in tx.workers() {
        if let Err(e) = tx.send(rank, ToWorker::Stop) {
            tracing::debug!("could not stop {rank}: {e}");
        }
    }
    let deadline = Instant::now() + grace;
    let mut waiting: Vec<_> = tx.workers();
    while !waiting.is_empty() && Instant::now() < deadline {
        match tx.recv_timeout(Duration::from_millis(50)) {
            Ok(Some((from, ToCoordinator::Bye))) => waiting.retain(|r| *r != from),
            Ok(Some(_)) | Ok(None) => {}
            Err(_) => break,
        }
    }
    if !waiting.is_empty() {
        tracing::warn!(
            "{} worker(s) did not confirm the stop within {}s",
            waiting.len(),
            grace.as_secs()
        );
    }
}
