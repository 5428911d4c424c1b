//! The MPI transport (feature `mpi`): rank 0 is the coordinator, and every rank, rank 0 included,
//! runs a worker. Rank 0's own worker talks to the coordinator over in-process channels
//! ([`MpiTransport::with_local_worker`]), so only the coordinator's thread ever calls MPI and N
//! tasks are N workers (one per GPU).
//!
//! Messages are JSON-encoded byte vectors sent point to point. Receives never block without a
//! deadline: they poll a non-blocking matched probe, because a blocking receive in Open MPI
//! busy-polls a core, which the coordinator would steal from a worker that shares its node. The
//! poll adapts: a message that is there is taken at once (a busy coordinator drains its queue
//! without sleeping), an empty probe is retried yielding the core for a few microseconds (the
//! next message of a burst), then with sleeps that double up to a cap (an idle rank costs next
//! to no CPU).

use crate::{
    channel_transport_ranked, ChannelTransport, ChannelWorkerLink, Rank, ToCoordinator, ToWorker,
    Transport, TransportError, WorkerLink,
};
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::StaticScope;
use mpi::topology::{Communicator, SimpleCommunicator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long an empty poll spins (yielding the core) before it sleeps.
const POLL_SPIN: Duration = Duration::from_micros(50);
/// The first sleep after the spin; each next one doubles, up to [`POLL_SLEEP_MAX`].
const POLL_SLEEP_MIN: Duration = Duration::from_micros(20);
const POLL_SLEEP_MAX: Duration = Duration::from_millis(2);

/// How long a send may stay incomplete before its peer counts as lost: a rank on a lost node
/// never takes its messages, and a blocking send would wait for it for ever. Small messages
/// complete at once (eager); a large one waits for the peer's link thread, which polls at least
/// every second, so this is far more than a live rank ever needs.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

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

/// The pause between empty polls: a spin yielding the core, then sleeps that double up to a cap,
/// until a deadline.
struct Backoff {
    start: Instant,
    deadline: Instant,
    sleep: Duration,
}

impl Backoff {
    fn new(timeout: Duration) -> Backoff {
        let start = Instant::now();
        Backoff {
            start,
            deadline: start + timeout,
            sleep: POLL_SLEEP_MIN,
        }
    }

    /// Pauses before the next poll; `false` once the deadline has passed.
    fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        if let Some(fixed) = fixed_poll() {
            std::thread::sleep(fixed.min(self.deadline - now));
        } else if now.duration_since(self.start) < POLL_SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep.min(self.deadline - now));
            self.sleep = (self.sleep * 2).min(POLL_SLEEP_MAX);
        }
        true
    }
}

/// Calls `probe` until it yields something or `timeout` passes.
fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, TransportError>,
) -> Result<Option<T>, TransportError> {
    let mut backoff = Backoff::new(timeout);
    loop {
        if let Some(found) = probe()? {
            return Ok(Some(found));
        }
        if !backoff.pause() {
            return Ok(None);
        }
    }
}

/// Sends `bytes` to `rank`, never blocking past [`SEND_DEADLINE`]: a non-blocking send, polled.
fn send_bytes(world: &SimpleCommunicator, rank: i32, bytes: Vec<u8>) -> Result<(), TransportError> {
    // The request needs a buffer that outlives it: leaked here, taken back once the send has
    // completed, and left leaked (with the request) when the peer never takes it.
    let buf: &'static mut [u8] = Box::leak(bytes.into_boxed_slice());
    let ptr: *mut [u8] = buf;
    // SAFETY: `ptr` is the leaked box's only pointer; the request only reads through it.
    let mut request = world
        .process_at_rank(rank)
        .immediate_send(StaticScope, unsafe { &*ptr });
    let mut backoff = Backoff::new(SEND_DEADLINE);
    loop {
        match request.test() {
            Ok(_) => {
                // SAFETY: the send has completed, so MPI no longer reads the buffer, and the
                // request that borrowed it is gone.
                drop(unsafe { Box::from_raw(ptr) });
                return Ok(());
            }
            Err(pending) => request = pending,
        }
        if !backoff.pause() {
            // SAFETY: forgets the request without completing it; the buffer it reads stays
            // leaked, so MPI may read it at any time.
            let _ = unsafe { request.into_raw() };
            return Err(TransportError::Mpi(format!(
                "rank {rank} has not taken a message in {} s: its node is likely lost",
                SEND_DEADLINE.as_secs()
            )));
        }
    }
}

/// One non-blocking probe: a message from any rank (`from_any`) or from rank 0, if one is there.
fn probe_once<T: DeserializeOwned>(
    world: &SimpleCommunicator,
    from_any: bool,
) -> Result<Option<(Rank, T)>, TransportError> {
    let probed = if from_any {
        world.any_process().immediate_matched_probe()
    } else {
        world.process_at_rank(0).immediate_matched_probe()
    };
    let Some(matched) = probed else {
        return Ok(None);
    };
    let (bytes, status) = matched.matched_receive_vec::<u8>();
    let from = Rank(u32::try_from(status.source_rank()).unwrap_or(u32::MAX));
    let msg = serde_json::from_slice(&bytes).map_err(|e| TransportError::Decode {
        from,
        reason: e.to_string(),
    })?;
    Ok(Some((from, msg)))
}

/// The coordinator's end, on rank 0: the worker ranks over MPI and, when it has one, rank 0's
/// own worker over channels.
pub struct MpiTransport {
    world: SimpleCommunicator,
    /// Rank 0's in-process worker; `None` once its link is gone (its thread ended: it is then
    /// silent, and the coordinator's heartbeat deadline treats it like a lost rank).
    local: Option<ChannelTransport>,
    /// Whether rank 0's worker said goodbye (then its going away is expected).
    local_done: bool,
    /// The worker ranks that said goodbye.
    byes: std::collections::BTreeSet<Rank>,
}

impl MpiTransport {
    /// Wraps the world communicator, with workers on ranks 1… only; call on rank 0 only.
    pub fn new(world: SimpleCommunicator) -> Self {
        MpiTransport {
            world,
            local: None,
            local_done: false,
            byes: Default::default(),
        }
    }

    /// Wraps the world communicator and makes rank 0's own worker (rank 0), whose link the
    /// caller runs on a thread that never calls MPI; call on rank 0 only.
    pub fn with_local_worker(world: SimpleCommunicator) -> (Self, ChannelWorkerLink) {
        let (local, mut links) = channel_transport_ranked([Rank::COORDINATOR]);
        let link = links.remove(0);
        (
            MpiTransport {
                world,
                local: Some(local),
                local_done: false,
                byes: Default::default(),
            },
            link,
        )
    }

    /// Whether every worker rank reached over MPI said goodbye: only then can this rank
    /// finalise MPI, which waits for every rank (one on a lost node would hold it for ever).
    pub fn every_rank_said_bye(&self) -> bool {
        (1..self.world.size()).all(|r| self.byes.contains(&Rank(r as u32)))
    }

    /// A message from the in-process worker, if one is waiting.
    fn local_message(&mut self) -> Option<(Rank, ToCoordinator)> {
        let local = self.local.as_mut()?;
        match local.recv_timeout(Duration::ZERO) {
            Ok(found) => {
                self.local_done |= matches!(found, Some((_, ToCoordinator::Bye)));
                found
            }
            Err(_) => {
                if !self.local_done {
                    tracing::warn!("rank 0's own worker has gone; the other ranks go on");
                }
                self.local = None;
                None
            }
        }
    }
}

impl Transport for MpiTransport {
    fn workers(&self) -> Vec<Rank> {
        let local = self.local.as_ref().map(|l| l.workers()).unwrap_or_default();
        local
            .into_iter()
            .chain((1..self.world.size()).map(|r| Rank(r as u32)))
            .collect()
    }

    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        if to == Rank::COORDINATOR {
            // A message to a worker that has gone is lost, as one to a dead rank would be; the
            // coordinator's heartbeat deadline notices the silence.
            if let Some(local) = self.local.as_mut() {
                if local.send(to, msg).is_err() {
                    tracing::warn!("rank 0's own worker has gone; the other ranks go on");
                    self.local = None;
                }
            }
            return Ok(());
        }
        let bytes = encode(&msg)?;
        let rank = i32::try_from(to.0).map_err(|_| TransportError::Disconnected(to))?;
        if rank <= 0 || rank >= self.world.size() {
            return Err(TransportError::Disconnected(to));
        }
        send_bytes(&self.world, rank, bytes)
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        let found = poll_until(timeout, || match self.local_message() {
            Some(found) => Ok(Some(found)),
            None => probe_once(&self.world, true),
        })?;
        if let Some((from, ToCoordinator::Bye)) = &found {
            self.byes.insert(*from);
        }
        Ok(found)
    }
}

/// A worker's end, on ranks 1…N-1 (rank 0's worker has a channel link instead).
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
        send_bytes(&self.world, 0, encode(&msg)?)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<ToWorker>, TransportError> {
        Ok(poll_until(timeout, || probe_once(&self.world, false))?.map(|(_, m)| m))
    }
}
