//! The job report: printed at the end of a job and kept in the version's manifest.

use serde::{Deserialize, Serialize};

/// One worker's share of the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub rank: u32,
    pub host: String,
    pub chunks: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub failures: u64,
    pub busy_ms: u64,
    /// busy time / job wall time.
    pub busy_share: f64,
    pub lost: bool,
    /// The GPU this worker owned (name and index), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// Mean GPU utilisation over the job, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_utilization: Option<f64>,
    /// The GPU's UUID, its last utilisation reading (percent) and memory (used, total MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_last_utilization: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mb: Option<(u64, u64)>,
    /// Chunks whose accepted attempt was this worker's steal or speculative copy.
    #[serde(default)]
    pub speculative_wins: u64,
    /// Job wall time this worker spent without a chunk.
    #[serde(default)]
    pub idle_ms: u64,
    /// Why the worker was drained (a sick GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
}

/// The whole job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub rows_in: u64,
    /// Of `rows_in`, the rows of chunks accepted before this run (resumed from the journal, or
    /// reused by an incremental job); `rows_per_s` counts only the others.
    #[serde(default)]
    pub rows_carried: u64,
    pub rows_out: u64,
    pub chunks: u64,
    pub chunks_done: u64,
    pub retries: u64,
    pub failures: u64,
    /// Attempts issued by stealing or speculation.
    #[serde(default)]
    pub speculative_runs: u64,
    /// Input rows processed by attempts whose output was discarded (failed or cancelled).
    #[serde(default)]
    pub wasted_rows: u64,
    pub wall_s: f64,
    pub rows_per_s: f64,
    pub workers: Vec<WorkerReport>,
    /// GPU utilisation summary, or "no GPU".
    pub gpu: String,
    /// How the table schema was decided without `--schema`: columns widened to hold every
    /// chunk's values, chunks run again to be stored with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_notes: Vec<String>,
}

impl JobReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let carried = if self.rows_carried > 0 {
            format!(" ({} carried over)", self.rows_carried)
        } else {
            String::new()
        };
        let mut s = format!(
            "rows in {}{carried} · rows out {} · chunks {}/{} · retries {} · failures {} · speculative {} · wasted rows {} · wall {:.1}s · {:.0} rows/s · GPU: {}\n",
            self.rows_in, self.rows_out, self.chunks_done, self.chunks, self.retries, self.failures, self.speculative_runs, self.wasted_rows, self.wall_s, self.rows_per_s, self.gpu
        );
        for w in &self.workers {
            let gpu = match (&w.gpu, w.gpu_utilization) {
                (Some(g), Some(u)) => {
                    let uuid = w
                        .gpu_uuid
                        .as_deref()
                        .map(|u| format!(" {u}"))
                        .unwrap_or_default();
                    let last = w
                        .gpu_last_utilization
                        .map(|l| format!(" last {l}%"))
                        .unwrap_or_default();
                    let mem = w
                        .gpu_memory_mb
                        .map(|(used, total)| format!(" memory {used}/{total} MiB"))
                        .unwrap_or_default();
                    format!(" GPU {g}{uuid} mean {u:.0}%{last}{mem}")
                }
                _ => String::new(),
            };
            let state = match (&w.drained, w.lost) {
                (Some(why), _) => format!(" (drained: {why})"),
                (None, true) => " (lost)".to_string(),
                _ => String::new(),
            };
            s.push_str(&format!(
                "  worker {:>3} {:<16} chunks {:>5} rows {:>9} failures {:>3} busy {:>5.1}%{gpu}{state}\n",
                w.rank, w.host, w.chunks, w.rows_out, w.failures, w.busy_share * 100.0
            ));
        }
        for note in &self.schema_notes {
            s.push_str(&format!("  schema: {note}\n"));
        }
        s
    }
}
