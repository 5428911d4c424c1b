//! A transport that records what the coordinator sends and delivers nothing: the simulator's
//! outbox and the unit tests' recorder (one fake, not two).

use flywheel_protocol::{
    Attempt, ChunkId, ChunkTask, Rank, ToCoordinator, ToWorker, Transport, TransportError,
};
use std::time::Duration;

/// Records every message sent; `recv_timeout` never returns one.
#[derive(Debug, Default)]
pub struct Recorder {
    sent: Vec<(Rank, ToWorker)>,
}

impl Transport for Recorder {
    fn workers(&self) -> Vec<Rank> {
        let mut ranks: Vec<Rank> = self.sent.iter().map(|(r, _)| *r).collect();
        ranks.sort_unstable();
        ranks.dedup();
        ranks
    }
    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        self.sent.push((to, msg));
        Ok(())
    }
    fn recv_timeout(
        &mut self,
        _: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        Ok(None)
    }
}

impl Recorder {
    /// Everything sent since the last take, in order.
    pub fn take(&mut self) -> Vec<(Rank, ToWorker)> {
        std::mem::take(&mut self.sent)
    }

    /// The assignments sent so far; other messages stay for [`Self::take_cancels`].
    pub fn take_tasks(&mut self) -> Vec<(Rank, ChunkTask)> {
        let mut tasks = Vec::new();
        self.sent.retain(|(r, m)| match m {
            ToWorker::Assign(t) => {
                tasks.push((*r, t.clone()));
                false
            }
            _ => true,
        });
        tasks
    }

    /// The cancellations sent so far; other messages stay.
    pub fn take_cancels(&mut self) -> Vec<(Rank, ChunkId, Attempt)> {
        let mut cancels = Vec::new();
        self.sent.retain(|(r, m)| match m {
            ToWorker::Cancel { chunk, attempt } => {
                cancels.push((*r, *chunk, *attempt));
                false
            }
            _ => true,
        });
        cancels
    }

    /// What is still unread.
    pub fn pending(&self) -> &[(Rank, ToWorker)] {
        &self.sent
    }
}
