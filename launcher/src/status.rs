//! `flywheel status OUT`: the progress of a running or interrupted job, read from its journal.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use flywheel_coordinator::{latest_job, JournalEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub fn status(output: &Path, json: bool) -> Result<(), CliError> {
    let record = latest_job(output).map_err(bad_input)?;
    let entries = record
        .as_ref()
        .map(|r| r.entries.as_slice())
        .unwrap_or_default();
    let Some(JournalEntry::Start { chunks, rows, .. }) = entries
        .iter()
        .rev()
        .find(|e| matches!(e, JournalEntry::Start { .. }))
        .cloned()
    else {
        return Err(bad_input(anyhow!(
            "{}: no job has written here (no journal)",
            output.display()
        )));
    };
    let mut done = BTreeSet::new();
    let (mut rows_done, mut rows_out) = (0u64, 0u64);
    let mut per_worker: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
    let mut first_at = None;
    let mut last_at = 0;
    for e in entries {
        match e {
            JournalEntry::Start { at, .. } => {
                first_at.get_or_insert(*at);
            }
            JournalEntry::Accepted { at, output: o } => {
                if done.insert(o.chunk) {
                    rows_done += o.rows_in;
                    rows_out += o.rows_out;
                    let w = per_worker.entry((o.host.clone(), o.worker)).or_default();
                    w.0 += 1;
                    w.1 += o.rows_out;
                }
                last_at = last_at.max(*at);
            }
            JournalEntry::Published { .. } => {}
        }
    }
    let (job_id, mut published, slurm_jobs) = match &record {
        Some(r) => (
            r.start().and_then(|s| s.job_id.map(str::to_string)),
            r.published(),
            r.slurm_job_ids(),
        ),
        None => (None, None, Vec::new()),
    };
    let table = flywheel_formats::Table::new(output);
    // A job killed after its commit but before it journaled the publish has still published.
    if published.is_none() {
        if let Some(id) = &job_id {
            published = table
                .job_manifest(id, None)
                .ok()
                .flatten()
                .map(|m| m.version);
        }
    }
    let running = match &job_id {
        Some(id) => table.job_locked(id),
        None => !table.active_jobs().is_empty(),
    };
    let state = match (published, running) {
        (Some(v), _) => format!("finished: published version {v}"),
        (None, true) => "running".to_string(),
        (None, false) => "interrupted: continue it with --resume".to_string(),
    };
    let elapsed = first_at.map(|f| last_at.saturating_sub(f)).unwrap_or(0);
    let rate = if elapsed > 0 {
        rows_done as f64 / elapsed as f64
    } else {
        0.0
    };
    let eta =
        (rate > 0.0 && published.is_none()).then(|| rows.saturating_sub(rows_done) as f64 / rate);
    if json {
        let workers: Vec<_> = per_worker
            .iter()
            .map(|((host, rank), (c, r))| serde_json::json!({"host": host, "rank": rank, "chunks": c, "rows_out": r}))
            .collect();
        let v = serde_json::json!({
            "state": state, "job_id": job_id, "published_version": published, "chunks_done": done.len(), "chunks": chunks,
            "rows_done": rows_done, "rows": rows, "rows_out": rows_out, "rows_per_s": rate, "eta_s": eta,
            "slurm_job_ids": slurm_jobs, "workers": workers,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    match &job_id {
        Some(id) => println!("{}: {state} (job {id})", output.display()),
        None => println!("{}: {state}", output.display()),
    }
    println!(
        "chunks {}/{chunks} · rows {rows_done}/{rows} · rows out {rows_out} · {rate:.0} rows/s{}",
        done.len(),
        eta.map(|e| format!(" · ETA {e:.0}s")).unwrap_or_default()
    );
    if !slurm_jobs.is_empty() {
        println!("slurm jobs: {}", slurm_jobs.join(", "));
    }
    for ((host, rank), (c, r)) in per_worker {
        println!("  worker {rank:>3} {host:<16} chunks {c:>5} rows out {r:>9}");
    }
    Ok(())
}
