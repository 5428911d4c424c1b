//! The scheduling core's unit tests, each over a [`TestEnv`] (which checks the state's
//! invariants after every event and at the end).

use super::testenv::{output, slices, TestEnv};
use super::*;
use crate::failure::{DrainReason, LostReason, WorkerState};
use flywheel_protocol::{chunk_seed, ChunkTask, FailureKind};

#[test]
fn hands_out_chunks_in_order_and_completes() {
    let mut env = TestEnv::new(CoordinatorConfig::default(), 5);
    env.ready(2);
    let tasks = env.tasks();
    let ids: Vec<u32> = tasks.iter().map(|(_, t)| t.chunk.0).collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert_eq!(tasks[0].1.seed, chunk_seed(0, ChunkId(0)));
    for t in &tasks {
        env.finish(t);
    }
    let last = env.tasks();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].1.chunk, ChunkId(4));
    assert_eq!(
        last[0].1.schema, None,
        "without --schema, no chunk's output fixes the schema for the others"
    );
    env.finish(&last[0]);
    assert!(env.c.is_complete());
    assert_eq!(
        env.c.schema(),
        Some("s"),
        "decided once every chunk is done"
    );
    let files: Vec<_> = env.c.outputs().iter().map(|o| o.chunk.0).collect();
    assert_eq!(files, vec![0, 1, 2, 3, 4]);
    env.nothing_else_sent();
}

#[test]
fn retries_a_failed_chunk_then_fails_the_job_at_max_attempts() {
    let cfg = CoordinatorConfig {
        max_attempts: 2,
        prefetch: 1,
        ..Default::default()
    };
    let mut env = TestEnv::new(cfg, 2);
    env.ready(1);
    let t = env.tasks().remove(0);
    env.fail(&t);
    let again = env.tasks().remove(0);
    assert_eq!(
        (again.1.chunk, again.1.attempt),
        (ChunkId(0), Attempt(2)),
        "retried first"
    );
    env.fail(&again);
    let f = env.c.failure().expect("job failed");
    let JobFailure::AttemptsExhausted {
        chunk,
        failures,
        workers,
        last,
        ..
    } = f
    else {
        panic!("attempts exhausted, not {f}");
    };
    assert_eq!((*chunk, *failures), (ChunkId(0), 2));
    assert_eq!(workers, &vec![Rank(1)]);
    assert_eq!((last.attempt, last.error.as_str()), (Attempt(2), "boom"));
    let f = f.to_string();
    assert!(
        f.contains("chunk 0") && f.contains("failed 2 times") && f.contains("boom"),
        "{f}"
    );
    env.nothing_else_sent();
    assert!(!env.c.is_complete());
}

#[test]
fn bad_input_fails_the_job_at_once() {
    let mut env = TestEnv::prefetch(1, 3);
    env.ready(1);
    let (rank, t) = env.tasks().remove(0);
    let msg = ToCoordinator::Failed {
        chunk: t.chunk,
        attempt: t.attempt,
        kind: FailureKind::BadInput,
        error: "x.jsonl: line 7: not JSON".into(),
    };
    env.send(rank, msg);
    assert_eq!(
        env.c.failure(),
        Some(&JobFailure::BadInput {
            chunk: ChunkId(0),
            path: "/in.parquet".into(),
            error: "x.jsonl: line 7: not JSON".into(),
        })
    );
    assert_eq!(
        env.c.failure().map(ToString::to_string).as_deref(),
        Some("/in.parquet: x.jsonl: line 7: not JSON"),
        "the message names the chunk's input file when the worker's words do not"
    );
    env.nothing_else_sent();
}

fn sample(util: u32, problem: Option<&str>) -> flywheel_protocol::GpuSample {
    flywheel_protocol::GpuSample {
        index: 0,
        uuid: Some("GPU-test-0".into()),
        name: "Fake H100".into(),
        utilization: util,
        memory_used_mb: 1,
        memory_total_mb: 80_000,
        power_w: None,
        temperature_c: None,
        ecc_uncorrected: Some(0),
        problem: problem.map(str::to_string),
    }
}

#[test]
fn gpu_readings_reach_the_report_and_a_sick_gpu_is_drained() {
    let mut env = TestEnv::prefetch(1, 3);
    env.ready(2);
    let tasks = env.tasks();
    for u in [90, 100] {
        let beat = ToCoordinator::Heartbeat {
            gpu: Some(sample(u, None)),
        };
        env.send(Rank(1), beat);
    }
    let r = env.report();
    assert_eq!(r.workers[0].gpu_utilization, Some(95.0));
    assert_eq!(r.workers[0].gpu_uuid.as_deref(), Some("GPU-test-0"));
    assert_eq!(r.workers[0].gpu_last_utilization, Some(100));
    assert_eq!(r.workers[0].gpu_memory_mb, Some((1, 80_000)));
    assert_eq!(r.gpu, "mean utilisation 95% over 1 GPU(s)");
    assert!(
        r.render()
            .contains("GPU Fake H100 (GPU 0) GPU-test-0 mean 95% last 100% memory 1/80000 MiB"),
        "{}",
        r.render()
    );
    // Worker 2's GPU reports uncorrected ECC errors: its chunk moves to worker 1.
    let sick = ToCoordinator::Heartbeat {
        gpu: Some(sample(0, Some("3 uncorrected ECC error(s)"))),
    };
    env.send(Rank(2), sick);
    env.finish(&tasks[0]);
    let next = env.tasks();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(
        (next[0].0, next[0].1.chunk),
        (Rank(1), tasks[1].1.chunk),
        "the drained worker's chunk is retried first"
    );
    // The drain names the node and the GPU.
    let why = "b GPU GPU-test-0: 3 uncorrected ECC error(s)";
    assert_eq!(
        env.c.worker_state(Rank(2)),
        Some(&WorkerState::Drained(DrainReason::SickGpu(why.into())))
    );
    let r = env.report();
    assert_eq!(r.workers[1].drained.as_deref(), Some(why));
    assert!(r.render().contains(&format!("drained: {why}")));
    // The accepted chunk carries its worker's GPU, for `flywheel status`.
    let gpu = env
        .c
        .take_accepted_with_gpus()
        .into_iter()
        .find_map(|(_, gpu)| gpu)
        .expect("the accepted chunk names worker 1's GPU");
    assert_eq!(
        (
            gpu.uuid.as_deref(),
            gpu.last_utilization,
            gpu.mean_utilization
        ),
        (Some("GPU-test-0"), 100, 95)
    );
    env.nothing_else_sent();
}

#[test]
fn without_gpus_the_report_says_no_gpu() {
    let env = TestEnv::new(CoordinatorConfig::default(), 1);
    assert_eq!(env.report().gpu, "no GPU");
}

#[test]
fn an_idle_worker_steals_a_queued_chunk() {
    let mut env = TestEnv::new(CoordinatorConfig::default(), 3);
    env.ready(2);
    let tasks = env.tasks();
    assert_eq!(
        tasks
            .iter()
            .map(|(r, t)| (r.0, t.chunk.0))
            .collect::<Vec<_>>(),
        vec![(1, 0), (1, 1), (2, 2)]
    );
    env.start(&tasks[0]);
    env.start(&tasks[2]);
    env.finish(&tasks[2]);
    // Worker 2 is idle; worker 1 holds chunk 1 without having started it: stolen.
    assert_eq!(env.cancels(), vec![(Rank(1), ChunkId(1), Attempt(1))]);
    let stolen = env.tasks();
    assert_eq!(stolen.len(), 1);
    assert_eq!(
        (stolen[0].0, stolen[0].1.chunk, stolen[0].1.attempt),
        (Rank(2), ChunkId(1), Attempt(2))
    );
    env.finish(&stolen[0]);
    // Idle again, worker 2 runs a copy of the started chunk 0; worker 1's original wins.
    let copy = env.tasks();
    assert_eq!(
        (copy[0].0, copy[0].1.chunk, copy[0].1.attempt),
        (Rank(2), ChunkId(0), Attempt(2))
    );
    env.finish(&tasks[0]);
    assert_eq!(env.cancels(), vec![(Rank(2), ChunkId(0), Attempt(2))]);
    assert!(env.c.is_complete());
    let r = env.report();
    assert_eq!((r.speculative_runs, r.workers[1].speculative_wins), (2, 1));
    env.nothing_else_sent();
}

#[test]
fn the_tail_runs_twice_and_the_first_result_wins() {
    let mut env = TestEnv::prefetch(1, 2);
    env.ready(2);
    let tasks = env.tasks();
    env.start(&tasks[0]);
    env.start(&tasks[1]);
    env.finish(&tasks[1]);
    let copy = env.tasks();
    assert_eq!(
        copy.len(),
        1,
        "the idle worker runs a copy of the late chunk"
    );
    assert_eq!(
        (copy[0].0, copy[0].1.chunk, copy[0].1.attempt),
        (Rank(2), ChunkId(0), Attempt(2))
    );
    env.start(&copy[0]);
    env.finish(&copy[0]);
    assert_eq!(
        env.cancels(),
        vec![(Rank(1), ChunkId(0), Attempt(1))],
        "the slower attempt is cancelled"
    );
    assert!(env.c.is_complete());
    // The late original finishes anyway: discarded, counted as waste.
    env.finish(&tasks[0]);
    let accepted: Vec<Attempt> = env.c.outputs().iter().map(|o| o.attempt).collect();
    assert_eq!(accepted, vec![Attempt(2), Attempt(1)]);
    let r = env.report();
    assert_eq!((r.wasted_rows, r.workers[1].speculative_wins), (10, 1));
    env.nothing_else_sent();
}

#[test]
fn a_worker_failing_again_and_again_is_drained() {
    let cfg = CoordinatorConfig {
        prefetch: 1,
        drain_after_failures: 2,
        max_attempts: 10,
        ..Default::default()
    };
    let mut env = TestEnv::new(cfg, 4);
    env.ready(2);
    for _ in 0..2 {
        let t = env.task_for(Rank(1));
        env.fail(&t);
    }
    assert_eq!(
        env.c.worker_state(Rank(1)),
        Some(&WorkerState::Drained(DrainReason::FailedInARow(2)))
    );
    let r = env.report();
    assert_eq!(
        r.workers[0].drained.as_deref(),
        Some("failed 2 chunks in a row")
    );
    assert!(
        env.tasks().iter().all(|(r, _)| *r == Rank(2)),
        "no more chunks for the drained worker"
    );
}

#[test]
fn a_drained_worker_that_goes_silent_is_lost_and_keeps_why_it_was_drained() {
    let cfg = CoordinatorConfig {
        prefetch: 1,
        drain_after_failures: 1,
        max_attempts: 10,
        heartbeat_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut env = TestEnv::new(cfg, 4);
    env.ready(2);
    let t = env.task_for(Rank(1));
    env.fail(&t);
    assert!(matches!(
        env.c.worker_state(Rank(1)),
        Some(WorkerState::Drained(_))
    ));
    env.at(8)
        .send(Rank(2), ToCoordinator::Heartbeat { gpu: None });
    env.at(11).tick();
    assert_eq!(
        env.c.worker_state(Rank(1)),
        Some(&WorkerState::Lost(LostReason::SilentAfterDrain {
            timeout: Duration::from_secs(10),
            drained: DrainReason::FailedInARow(1),
        }))
    );
    assert_eq!(
        env.c.live_workers(),
        vec![Rank(2)],
        "shutdown does not wait for it"
    );
    let r = env.report();
    assert!(r.workers[0].lost);
    assert_eq!(
        r.workers[0].drained.as_deref(),
        Some("failed 1 chunk in a row")
    );
}

#[test]
fn a_worker_that_exits_holding_chunks_gives_them_to_the_others() {
    let mut env = TestEnv::prefetch(1, 2);
    env.ready(2);
    let tasks = env.tasks();
    assert_eq!(tasks.len(), 2);
    env.start(&tasks[0]);
    env.send(Rank(1), ToCoordinator::Bye);
    assert_eq!(env.c.worker_state(Rank(1)), Some(&WorkerState::Stopped));
    env.finish(&tasks[1]);
    let moved = env.tasks();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].0, moved[0].1.chunk, moved[0].1.attempt),
        (Rank(2), ChunkId(0), Attempt(2)),
        "worker 1's chunk runs again on worker 2"
    );
    env.finish(&moved[0]);
    assert!(env.c.is_complete());
}

#[test]
fn a_resumed_job_schedules_only_what_is_missing() {
    let earlier = |i: u32| {
        output(&ChunkTask {
            chunk: ChunkId(i),
            attempt: Attempt(1),
            seed: 0,
            input: slices(1).remove(0),
            schema: None,
        })
    };
    let mut env = TestEnv::of(Coordinator::resumed(
        CoordinatorConfig::default(),
        slices(4),
        vec![earlier(0), earlier(2)],
    ));
    assert_eq!(env.c.progress().chunks_done, 2);
    env.ready(1);
    let tasks = env.tasks();
    assert_eq!(
        tasks.iter().map(|(_, t)| t.chunk.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(
        tasks[0].1.schema, None,
        "the schema is decided from every chunk, the earlier run's included"
    );
    for t in &tasks {
        env.finish(t);
    }
    assert!(env.c.is_complete());
    assert_eq!(env.c.schema(), Some("s"));
    assert_eq!(
        env.c.take_accepted().len(),
        2,
        "only the new chunks go to the journal"
    );
}

fn schema_json(dsl: &str) -> String {
    let schema = flywheel_formats::Schema::parse(dsl).expect("a valid schema");
    flywheel_formats::schema_to_json(&schema.to_arrow())
}

fn done_with(t: &ChunkTask, schema: &str) -> ToCoordinator {
    ToCoordinator::Done(ChunkOutput {
        schema: Some(schema.into()),
        ..output(t)
    })
}

/// Runs three chunks whose outputs have the given schemas, finishing in `order`; returns
/// the harness and the tasks it issued after the three.
fn three_chunks(schemas: [&str; 3], order: [usize; 3]) -> (TestEnv, Vec<(Rank, ChunkTask)>) {
    let cfg = CoordinatorConfig {
        prefetch: 3,
        speculate: false,
        ..CoordinatorConfig::default()
    };
    let mut env = TestEnv::new(cfg, 3);
    env.ready(1);
    let tasks = env.tasks();
    assert_eq!(tasks.len(), 3);
    for i in order {
        let (r, t) = &tasks[i];
        env.send(*r, done_with(t, schemas[i]));
    }
    let again = env.tasks();
    (env, again)
}

#[test]
fn the_inferred_schema_is_unified_in_chunk_order_whatever_finishes_first() {
    let a = schema_json("x: int?");
    let b = schema_json("x: int?, y: str?");
    let want = schema_json("x: int?, y: str?");
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
        let (env, again) = three_chunks([&a, &b, &a], order);
        assert_eq!(env.c.schema(), Some(want.as_str()), "{order:?}");
        assert!(env.c.failure().is_none());
        // The chunks written without `y` are written again, with the table schema.
        let ids: Vec<u32> = again.iter().map(|(_, t)| t.chunk.0).collect();
        assert_eq!(ids, vec![0, 2], "{order:?}");
        assert!(again
            .iter()
            .all(|(_, t)| t.schema.as_deref() == Some(want.as_str())));
        assert!(!env.c.is_complete());
        assert_eq!(
            env.report().schema_notes,
            vec!["2 chunk(s) run again to store them with the table schema: chunk 0, chunk 2"]
        );
    }
}

#[test]
fn conflicting_chunk_schemas_fail_the_job_the_same_whatever_finishes_first() {
    let a = schema_json("x: int?");
    let b = schema_json("x: str?");
    let n = schema_json("z: bool?");
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let (env, _) = three_chunks([&a, &n, &b], order);
        let f = env.c.failure().expect("the job fails");
        assert!(matches!(f, JobFailure::SchemaConflict(_)), "{order:?}: {f}");
        let f = f.to_string();
        assert!(
            f.contains(
                "column 'x' has int values (first at chunk 0) and str values (first at chunk 2)"
            ),
            "{order:?}: {f}"
        );
    }
}

/// Two workers holding one chunk each, lost after 10 s of silence.
fn two_workers_silent_after_10s() -> (TestEnv, Vec<(Rank, ChunkTask)>) {
    let cfg = CoordinatorConfig {
        heartbeat_timeout: Duration::from_secs(10),
        prefetch: 1,
        ..Default::default()
    };
    let mut env = TestEnv::new(cfg, 2);
    env.ready(2);
    let tasks = env.tasks();
    assert_eq!(tasks.len(), 2);
    (env, tasks)
}

#[test]
fn a_silent_worker_is_lost_and_its_chunks_move() {
    let (mut env, tasks) = two_workers_silent_after_10s();
    env.at(8)
        .send(Rank(2), ToCoordinator::Heartbeat { gpu: None });
    env.at(11).tick();
    assert_eq!(env.c.live_workers(), vec![Rank(2)]);
    assert_eq!(
        env.c.worker_state(Rank(1)),
        Some(&WorkerState::Lost(LostReason::Silent {
            timeout: Duration::from_secs(10)
        }))
    );
    // Worker 2 finishes its own chunk and then gets worker 1's.
    env.at(12).finish(&tasks[1]);
    let moved = env.tasks();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].0, moved[0].1.chunk, moved[0].1.attempt),
        (Rank(2), ChunkId(0), Attempt(2))
    );
    // A late result from the lost worker is ignored.
    env.at(13).finish(&tasks[0]);
    assert!(!env.c.is_complete());
    env.at(14).finish(&moved[0]);
    assert!(env.c.is_complete());
    env.nothing_else_sent();
}

#[test]
fn every_worker_lost_fails_the_job_naming_each_and_the_last_error() {
    let (mut env, tasks) = two_workers_silent_after_10s();
    env.fail(&tasks[0]);
    env.at(11).tick();
    let f = env.c.failure().expect("the job fails");
    let JobFailure::NoWorkersLeft { workers, last } = f else {
        panic!("no workers left, not {f}");
    };
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|(_, s)| s.is_lost()));
    assert_eq!(last.as_ref().map(|l| l.error.as_str()), Some("boom"));
    assert_eq!(
        f.to_string(),
        "every worker was lost or drained (worker 1 lost (sent nothing for 10s), worker 2 lost (sent nothing for 10s)); last error: chunk 0 attempt 1 on worker 1: boom"
    );
}

#[test]
fn a_second_ready_from_a_registered_rank_gives_its_chunks_to_others() {
    let mut env = TestEnv::prefetch(1, 3);
    env.ready(2);
    let tasks = env.tasks();
    assert_eq!(tasks.len(), 2);
    // Worker 1's process started again: it holds nothing now, so its chunk runs again, on
    // whoever has room (worker 1 itself, first in line).
    env.send(Rank(1), ToCoordinator::Ready { host: "a2".into() });
    assert_eq!(env.c.worker_host(Rank(1)), Some("a2"));
    let again = env.tasks();
    assert_eq!(
        again
            .iter()
            .map(|(r, t)| (*r, t.chunk, t.attempt))
            .collect::<Vec<_>>(),
        vec![(Rank(1), ChunkId(0), Attempt(2))]
    );
    // Its old attempt's late result is discarded; the new one counts.
    env.finish(&tasks[0]);
    assert!(matches!(
        env.c.chunk_state(ChunkId(0)),
        Some(ChunkState::Running(_))
    ));
    env.finish(&again[0]);
    env.finish(&tasks[1]);
    let last = env.tasks();
    env.finish(&last[0]);
    assert!(env.c.is_complete());
    assert_eq!(env.report().workers[0].chunks, 2, "its report is kept");
    env.nothing_else_sent();
}

#[test]
fn a_broken_state_is_reported_not_panicked() {
    let mut env = TestEnv::prefetch(1, 2);
    env.ready(1);
    let _ = env.tasks();
    // Lose the worker's holding behind the coordinator's back.
    if let Some(w) = env.c.workers.get_mut(&Rank(1)) {
        w.holding.clear();
    }
    env.c.done = 5;
    let e = env.c.sanity_check().expect_err("the state is broken");
    assert!(
        e.0.iter()
            .any(|v| v == "chunk 0 attempt 1 runs on worker 1, which does not hold it"),
        "{e}"
    );
    assert!(
        e.0.iter()
            .any(|v| v == "0 chunk(s) are done but the count says 5"),
        "{e}"
    );
    // Mend it so the harness's own check at the end passes.
    env.c.done = 0;
    if let Some(w) = env.c.workers.get_mut(&Rank(1)) {
        w.holding.push_back((ChunkId(0), Attempt(1)));
    }
}
