//! The MPI transport (feature `mpi`): rank 0 is the coordinator, every other rank a worker.
//!
//! Messages are JSON-encoded byte vectors sent point to point. Receives never block without a
//! deadline: they poll a non-blocking matched probe, because a blocking receive in Open MPI
//! busy-polls a core, which the coordinator would steal from a worker that shares its node. The
//! poll adapts: a message that is there is taken at once (a busy coordinator drains its queue
//! without sleeping), an empty probe is retried yielding the core for a few microseconds (the
//! next message of a burst), then with sleeps that double up to a cap (an idle rank costs next
//! to no CPU).

use crate::{Rank, ToCoordinator, ToWorker, Transport, TransportError, WorkerLink};
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long an empty poll spins (yielding the core) before it sleeps.
const POLL_SPIN: Duration = Duration::from_micros(50);
/// The first sleep after the spin; each next one doubles, up to [`POLL_SLEEP_MAX`].
const POLL_SLEEP_MIN: Duration = Duration::from_micros(20);
const POLL_SLEEP_MAX: Duration = Duration::from_millis(2);

/// `FLYWHEEL_MPI_POLL_FIXED_US=N`: sleep a fixed N µs after every empty probe instead (the poll
/// before it adapted was N = 500), for benchmarks that measure the two side by side.
fn fixed_poll() -> Option<Duration> {
    static FIXED: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *FIXED.get_or_init(|| {
        std::env::var("FLYWHEEL_MPI_POLL_FIXED_US")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_micros)
    })
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, TransportError> {
    serde_json::to_vec(msg).map_err(|e| TransportError::Mpi(format!("cannot encode message: {e}")))
}

fn poll<T: DeserializeOwned>(
    world: &SimpleCommunicator,
    from_any: bool,
    timeout: Duration,
) -> Result<Option<(Rank, T)>, TransportError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut sleep = POLL_SLEEP_MIN;
    loop {
        let probed = if from_any {
            world.any_process().immediate_matched_probe()
        } else {
            world.process_at_rank(0).immediate_matched_probe()
        };
        if let Some(matched) = probed {
            let (bytes, status) = matched.matched_receive_vec::<u8>();
            let from = Rank(u32::try_from(status.source_rank()).unwrap_or(u32::MAX));
            let msg = serde_json::from_slice(&bytes).map_err(|e| TransportError::Decode {
                from,
                reason: e.to_string(),
            })?;
            return Ok(Some((from, msg)));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if let Some(fixed) = fixed_poll() {
            std::thread::sleep(fixed.min(deadline - now));
            continue;
        }
        if now.duration_since(start) < POLL_SPIN {
            std::thread::yield_now();
            continue;
        }
        std::thread::sleep(sleep.min(deadline - now));
        sleep = (sleep * 2).min(POLL_SLEEP_MAX);
    }
}

/// The coordinator's end, on rank 0.
pub struct MpiTransport {
    world: SimpleCommunicator,
}

impl MpiTransport {
    /// Wraps the world communicator; call on rank 0 only.
    pub fn new(world: SimpleCommunicator) -> Self {
        MpiTransport { world }
    }
}

impl Transport for MpiTransport {
    fn workers(&self) -> Vec<Rank> {
        (1..self.world.size()).map(|r| Rank(r as u32)).collect()
    }

    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        let bytes = encode(&msg)?;
        let rank = i32::try_from(to.0).map_err(|_| TransportError::Disconnected(to))?;
        if rank <= 0 || rank >= self.world.size() {
            return Err(TransportError::Disconnected(to));
        }
        self.world.process_at_rank(rank).send(&bytes[..]);
        Ok(())
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        poll(&self.world, true, timeout)
    }
}

/// A worker's end, on ranks 1…N.
pub struct MpiWorkerLink {
    world: SimpleCommunicator,
    rank: Rank,
}

impl MpiWorkerLink {
    /// Wraps the world communicator; call on worker ranks only.
    pub fn new(world: SimpleCommunicator) -> Self {
        let rank = Rank(world.rank() as u32);
        MpiWorkerLink { world, rank }
    }
}

impl WorkerLink for MpiWorkerLink {
    fn rank(&self) -> Rank {
        self.rank
    }

    fn send(&mut self, msg: ToCoordinator) -> Result<(), TransportError> {
        let bytes = encode(&msg)?;
        self.world.process_at_rank(0).send(&bytes[..]);
        Ok(())
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<ToWorker>, TransportError> {
        Ok(poll(&self.world, false, timeout)?.map(|(_, m)| m))
    }
}
