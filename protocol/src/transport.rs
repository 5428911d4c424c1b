//! The seam between scheduling logic and the wire.
//!
//! The coordinator talks to workers only through [`Transport`]; a worker talks to the
//! coordinator only through [`WorkerLink`]. Implementations serialise (if they need to) inside
//! themselves. Contract for both: `send` never blocks for long (messages are small and buffered),
//! `recv_timeout` returns `Ok(None)` when nothing arrived in time, and every error is fatal for
//! the job: a transport error means a rank is gone, and MPI cannot recover from that.

use crate::{Rank, ToCoordinator, ToWorker};
use std::time::Duration;

/// A transport failure. None is retryable: the peer is gone or the wire is broken.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The other side of an in-process channel has gone away.
    #[error("{0} has disconnected")]
    Disconnected(Rank),
    /// A message could not be decoded.
    #[error("undecodable message from {from}: {reason}")]
    Decode { from: Rank, reason: String },
    /// MPI itself reported a problem.
    #[error("MPI: {0}")]
    Mpi(String),
}

/// The coordinator's side of the transport.
pub trait Transport {
    /// The worker ranks, in order.
    fn workers(&self) -> Vec<Rank>;
    /// Sends a message to one worker.
    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError>;
    /// Waits up to `timeout` for a message from any worker.
    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError>;
}

/// A worker's side of the transport.
pub trait WorkerLink {
    /// This worker's rank.
    fn rank(&self) -> Rank;
    /// Sends a message to the coordinator.
    fn send(&mut self, msg: ToCoordinator) -> Result<(), TransportError>;
    /// Waits up to `timeout` for a message from the coordinator.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<ToWorker>, TransportError>;
}
