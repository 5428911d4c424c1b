//! Progress counters and the job report, read off the state.

use super::{Coordinator, Progress};
use crate::failure::WorkerState;
use crate::report::{JobReport, WorkerReport};
use std::time::Duration;

impl Coordinator {
    /// Counters for progress displays.
    pub fn progress(&self) -> Progress {
        Progress {
            chunks_total: self.chunks.len(),
            chunks_done: self.done,
            rows_total: self.rows.0,
            rows_done: self.rows.1,
            rows_out: self.rows.2,
            workers_live: self.workers.len() - self.index.lost,
            rows_carried: self.rows_carried,
        }
    }

    /// The job report so far.
    pub fn report(&self, wall: Duration) -> JobReport {
        let p = self.progress();
        let wall_ms = wall.as_millis() as u64;
        let workers: Vec<WorkerReport> = self
            .workers
            .iter()
            .map(|(r, w)| {
                let mut rep = w.report.clone();
                rep.rank = r.0;
                rep.host.clone_from(&w.host);
                rep.busy_share = if wall_ms > 0 {
                    rep.busy_ms as f64 / wall_ms as f64
                } else {
                    0.0
                };
                rep.idle_ms = wall_ms.saturating_sub(rep.busy_ms);
                rep.lost = w.state.is_lost();
                rep.drained = match &w.state {
                    WorkerState::Drained(why) => Some(why.to_string()),
                    WorkerState::Lost(lost) => lost.drained().map(ToString::to_string),
                    _ => None,
                };
                rep.gpu_utilization =
                    (w.gpu_samples > 0).then(|| w.gpu_util_sum as f64 / w.gpu_samples as f64);
                rep
            })
            .collect();
        let with_gpu: Vec<f64> = workers.iter().filter_map(|w| w.gpu_utilization).collect();
        let gpu = if with_gpu.is_empty() {
            "no GPU".to_string()
        } else {
            let mean = with_gpu.iter().sum::<f64>() / with_gpu.len() as f64;
            format!("mean utilisation {mean:.0}% over {} GPU(s)", with_gpu.len())
        };
        JobReport {
            rows_in: p.rows_done,
            rows_carried: p.rows_carried,
            rows_out: p.rows_out,
            chunks: p.chunks_total as u64,
            chunks_done: p.chunks_done as u64,
            retries: self.retries,
            failures: self.failures,
            speculative_runs: self.speculative_runs,
            wasted_rows: self.wasted_rows,
            wall_s: wall.as_secs_f64(),
            rows_per_s: if wall.as_secs_f64() > 0.0 {
                (p.rows_done - p.rows_carried) as f64 / wall.as_secs_f64()
            } else {
                0.0
            },
            workers,
            gpu,
            schema_notes: self.schema_notes.clone(),
        }
    }
}
