//! In-process transport over crossbeam channels: the embedded runner's wire.

use crate::{Rank, ToCoordinator, ToWorker, Transport, TransportError, WorkerLink};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// The coordinator's end.
pub struct ChannelTransport {
    to_workers: Vec<(Rank, Sender<ToWorker>)>,
    from_workers: Receiver<(Rank, ToCoordinator)>,
}

/// One worker's end.
pub struct ChannelWorkerLink {
    rank: Rank,
    to_coordinator: Sender<(Rank, ToCoordinator)>,
    from_coordinator: Receiver<ToWorker>,
}

/// A connected coordinator end and `workers` worker ends, ranked 1..=workers.
pub fn channel_transport(workers: u32) -> (ChannelTransport, Vec<ChannelWorkerLink>) {
    channel_transport_ranked((1..=workers).map(Rank))
}

/// A connected coordinator end and one worker end per rank in `ranks` (the MPI coordinator's
/// own worker is rank 0, beside the worker ranks that MPI reaches).
pub fn channel_transport_ranked(
    ranks: impl IntoIterator<Item = Rank>,
) -> (ChannelTransport, Vec<ChannelWorkerLink>) {
    let (up_tx, up_rx) = unbounded();
    let mut to_workers = Vec::new();
    let mut links = Vec::new();
    for rank in ranks {
        let (down_tx, down_rx) = unbounded();
        to_workers.push((rank, down_tx));
        links.push(ChannelWorkerLink {
            rank,
            to_coordinator: up_tx.clone(),
            from_coordinator: down_rx,
        });
    }
    (
        ChannelTransport {
            to_workers,
            from_workers: up_rx,
        },
        links,
    )
}

impl Transport for ChannelTransport {
    fn workers(&self) -> Vec<Rank> {
        self.to_workers.iter().map(|(r, _)| *r).collect()
    }

    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        let (_, tx) = self
            .to_workers
            .iter()
            .find(|(r, _)| *r == to)
            .ok_or(TransportError::Disconnected(to))?;
        tx.send(msg).map_err(|_| TransportError::Disconnected(to))
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        match self.from_workers.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            // Every worker has dropped its link: nothing will ever arrive.
            Err(RecvTimeoutError::Disconnected) => {
                Err(TransportError::Disconnected(Rank(u32::MAX)))
            }
        }
    }
}

impl WorkerLink for ChannelWorkerLink {
    fn rank(&self) -> Rank {
        self.rank
    }

    fn send(&mut self, msg: ToCoordinator) -> Result<(), TransportError> {
        self.to_coordinator
            .send((self.rank, msg))
            .map_err(|_| TransportError::Disconnected(Rank::COORDINATOR))
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<ToWorker>, TransportError> {
        match self.from_coordinator.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(TransportError::Disconnected(Rank::COORDINATOR))
            }
        }
    }
}
