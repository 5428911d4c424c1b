//! The allocation as Slurm describes it in a task's environment.

use crate::expand_hostlist;

/// What a task learns from `SLURM_*` variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlurmEnv {
    pub job_id: Option<String>,
    pub step_id: Option<String>,
    /// This task's global rank (`SLURM_PROCID`).
    pub proc_id: Option<u32>,
    /// This task's rank on its node (`SLURM_LOCALID`).
    pub local_id: Option<u32>,
    /// Tasks in the step (`SLURM_NTASKS`).
    pub ntasks: Option<u32>,
    /// Hosts of the allocation, expanded.
    pub nodes: Vec<String>,
    /// GPUs bound to this step (`SLURM_STEP_GPUS`, else `SLURM_JOB_GPUS`), as listed.
    pub gpus: Vec<String>,
    /// When the allocation ends (`SLURM_JOB_END_TIME`, seconds since the epoch).
    pub end_time: Option<u64>,
}

impl SlurmEnv {
    /// Reads the current process's environment.
    pub fn from_env() -> SlurmEnv {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads from any lookup (tests pass a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> SlurmEnv {
        let num = |k: &str| get(k).and_then(|v| v.trim().parse().ok());
        let nodes = get("SLURM_JOB_NODELIST")
            .or_else(|| get("SLURM_NODELIST"))
            .and_then(|l| expand_hostlist(&l).ok())
            .unwrap_or_default();
        let gpus = get("SLURM_STEP_GPUS")
            .or_else(|| get("SLURM_JOB_GPUS"))
            .map(|l| {
                l.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        SlurmEnv {
            job_id: get("SLURM_JOB_ID").or_else(|| get("SLURM_JOBID")),
            step_id: get("SLURM_STEP_ID"),
            proc_id: num("SLURM_PROCID"),
            local_id: num("SLURM_LOCALID"),
            ntasks: num("SLURM_NTASKS"),
            nodes,
            gpus,
            end_time: get("SLURM_JOB_END_TIME").and_then(|v| v.trim().parse().ok()),
        }
    }

    /// Whether this process runs inside a Slurm job.
    pub fn in_job(&self) -> bool {
        self.job_id.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_a_task_environment() {
        let vars: HashMap<&str, &str> = [
            ("SLURM_JOB_ID", "123"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_JOB_NODELIST", "gpu[01-02]"),
            ("SLURM_STEP_GPUS", "0,1"),
            ("SLURM_JOB_END_TIME", "1764130000"),
        ]
        .into_iter()
        .collect();
        let env = SlurmEnv::from_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(env.job_id.as_deref(), Some("123"));
        assert_eq!(
            (env.proc_id, env.local_id, env.ntasks),
            (Some(5), Some(1), Some(8))
        );
        assert_eq!(env.nodes, vec!["gpu01", "gpu02"]);
        assert_eq!(env.gpus, vec!["0", "1"]);
        assert_eq!(env.end_time, Some(1_764_130_000));
        assert!(!SlurmEnv::from_vars(|_| None).in_job());
    }
}
