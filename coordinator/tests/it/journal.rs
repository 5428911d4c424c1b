//! What a job's journal says about the Slurm jobs and steps that ran it.

use flywheel_coordinator::{JobRecord, JournalEntry};
use std::path::PathBuf;

#[test]
fn lists_each_slurm_job_and_step_once_in_order() {
    let start = |job: Option<&str>, step: Option<&str>| JournalEntry::Start {
        plan: "p".into(),
        job_id: None,
        inputs: Vec::new(),
        chunks: 1,
        rows: 1,
        at: 0,
        host: "h".into(),
        slurm_job_id: job.map(str::to_string),
        slurm_step_id: step.map(str::to_string),
        resumed: false,
        reused_chunks: 0,
        reused_rows: 0,
    };
    let record = JobRecord {
        path: PathBuf::from("j"),
        entries: vec![
            start(Some("7"), Some("0")),
            start(Some("7"), Some("4")),
            start(None, None),
            start(Some("9"), None),
            start(Some("7"), Some("0")),
            start(Some("9"), Some("0")),
        ],
    };
    assert_eq!(record.slurm_job_ids(), ["7", "9"]);
    assert_eq!(record.slurm_steps(), ["7.0", "7.4", "9.0"]);
}
