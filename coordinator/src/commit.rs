//! A job's commit: its accepted outputs, with their provenance and (incremental jobs) their
//! fingerprints, the report, the lineage and the error files, published as ONE version.

use crate::lifecycle::table_err;
use crate::{
    publish_once, BadJob, Coordinator, CoordinatorError, IncrementalPlan, JobError, JobReport,
    PublishRequest, Reuse,
};
use flywheel_formats::{FormatError, Table};
use flywheel_protocol::JobOptions;

/// The lineage with the job's end: when, its id, and the Slurm jobs and steps that worked on it
/// (those of its earlier runs, and this one).
pub(crate) fn finished_lineage(
    mut lineage: serde_json::Value,
    job_id: &str,
    record: Option<&crate::JobRecord>,
) -> serde_json::Value {
    let mut slurm_job_ids = record.map(|r| r.slurm_job_ids()).unwrap_or_default();
    let mut slurm_steps = record.map(|r| r.slurm_steps()).unwrap_or_default();
    if let Ok(id) = std::env::var("SLURM_JOB_ID") {
        if let Ok(step) = std::env::var("SLURM_STEP_ID") {
            let step = format!("{id}.{step}");
            if !slurm_steps.contains(&step) {
                slurm_steps.push(step);
            }
        }
        if !slurm_job_ids.contains(&id) {
            slurm_job_ids.push(id);
        }
    }
    if let serde_json::Value::Object(map) = &mut lineage {
        map.insert(
            "finished_at".into(),
            serde_json::json!(
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            ),
        );
        map.insert("job_id".into(), serde_json::json!(job_id));
        map.insert("slurm_job_ids".into(), serde_json::json!(slurm_job_ids));
        map.insert("slurm_steps".into(), serde_json::json!(slurm_steps));
    }
    lineage
}

/// Commits the job's one version: its accepted outputs with their provenance (a reused file
/// keeps the provenance it was published with), the report and the lineage, and the error
/// files. `incremental`: an incremental job's fingerprints and the chunks it reused.
pub(crate) fn publish_job(
    table: &Table,
    job: &JobOptions,
    coord: &Coordinator,
    report: &JobReport,
    mut lineage: serde_json::Value,
    job_id: &str,
    incremental: Option<(&IncrementalPlan, &Reuse)>,
) -> Result<crate::Published, JobError> {
    let outputs = coord.outputs();
    // A text chunk's rows as it held them, not as planned.
    let held = coord.held_slices();
    let provenance = outputs
        .iter()
        .map(|o| {
            if let Some(p) = incremental.and_then(|(_, r)| r.provenance_of(o)) {
                return p;
            }
            // Enough to tell later which chunks a changed input or mapper would affect.
            serde_json::json!({
                "chunk": o.chunk.0,
                "attempt": o.attempt.0,
                "worker": o.worker,
                "host": o.host,
                "input": held.get(o.chunk.0 as usize),
                "rows_in": o.rows_in,
                "rows_out": o.rows_out,
                "bytes": o.bytes,
                "wall_ms": o.wall_ms,
            })
        })
        .collect();
    let plan = incremental.map(|(p, _)| p);
    let fingerprints = outputs
        .iter()
        .map(|o| crate::incremental::fingerprint_of(plan, o).cloned())
        .collect();
    if let serde_json::Value::Object(map) = &mut lineage {
        // What this run's mappers reported, the --depends-on files, and for reused chunks what
        // their version recorded.
        let mut deps = coord.dependencies().clone();
        deps.extend(job.depends_on.iter().cloned());
        if let Some((_, reuse)) = incremental {
            deps.extend(reuse.base_dependencies.iter().cloned());
        }
        if !deps.is_empty() {
            map.insert(
                "dependencies".into(),
                crate::dependencies::lineage_entry(&deps),
            );
        }
        if let Some((plan, reuse)) = incremental {
            map.insert("incremental".into(), reuse.lineage(plan, &outputs));
        }
    }
    let errors = crate::errors_table::error_files(&job.output, (coord, &outputs), plan, &held)
        .map_err(table_err)?;
    crate::crash_point("before-publish");
    publish_once(PublishRequest {
        table,
        mode: job.mode,
        outputs,
        schema: coord.schema().map(str::to_string),
        provenance,
        fingerprints,
        lineage,
        report: serde_json::to_value(report).ok(),
        job_id: Some(job_id.to_string()),
        errors,
    })
    .map_err(|e| match e {
        CoordinatorError::Publish(e @ FormatError::DamagedVersion { .. }) => {
            BadJob::Target(e).into()
        }
        source => JobError::PublishFailed {
            table: job.output.clone(),
            source: Box::new(source),
        },
    })
}
