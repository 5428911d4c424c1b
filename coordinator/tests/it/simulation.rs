//! Every input row is published exactly once, in order; no accepted chunk is lost; the job ends.
//! Each case prints its seed on failure (proptest shrinks and reports the failing input).

use flywheel_coordinator::sim::{simulate, static_split_makespan, SimSpec, SimWorkerSpec};
use flywheel_coordinator::{CoordinatorConfig, JobFailure};
use proptest::prelude::*;
use std::time::Duration;

fn spec(seed: u64, chunks: usize, workers: Vec<SimWorkerSpec>) -> SimSpec {
    SimSpec {
        costs: (0..chunks).map(|i| 1.0 + (i % 7) as f64 * 0.3).collect(),
        workers,
        config: CoordinatorConfig {
            max_attempts: 60,
            heartbeat_timeout: Duration::from_secs(10),
            drain_after_failures: 8,
            ..Default::default()
        },
        chunk_timeout: 20.0,
        seed,
        time_limit: 1.0e6,
    }
}

fn check(spec: &SimSpec) {
    let o = simulate(spec);
    assert_eq!(
        o.violation, None,
        "seed {}: the coordinator's state broke an invariant",
        spec.seed
    );
    assert!(
        o.completed,
        "seed {}: the job must complete, failed with '{}' at t={}",
        spec.seed,
        o.failure
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        o.makespan
    );
    let ids: Vec<u32> = o.outputs.iter().map(|x| x.chunk.0).collect();
    assert_eq!(
        ids,
        (0..spec.costs.len() as u32).collect::<Vec<_>>(),
        "seed {}: every chunk exactly once, in order",
        spec.seed
    );
    for x in &o.outputs {
        assert!(
            o.finished.contains(&(x.chunk.0, x.attempt.0, x.worker)),
            "seed {}: accepted {} attempt {} was never finished by worker {}",
            spec.seed,
            x.chunk,
            x.attempt,
            x.worker
        );
    }
    let files: std::collections::HashSet<_> = o.outputs.iter().map(|x| x.file.clone()).collect();
    assert_eq!(
        files.len(),
        o.outputs.len(),
        "seed {}: one accepted file per chunk",
        spec.seed
    );
}

fn worker_strategy() -> impl Strategy<Value = SimWorkerSpec> {
    (0.2f64..4.0, 0.0f64..0.25, 0.0f64..0.05).prop_map(|(speed, crash, hang)| SimWorkerSpec {
        speed,
        crash,
        hang,
        lost_at: None,
        sick_at: None,
        restart_at: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn every_chunk_is_published_once_in_order(
        seed in any::<u64>(),
        chunks in 1usize..60,
        mut workers in prop::collection::vec(worker_strategy(), 1..9),
        losses in prop::collection::vec((0usize..8, 0.0f64..30.0), 0..3),
        sick in prop::collection::vec((0usize..8, 0.0f64..30.0), 0..3),
        restarts in prop::collection::vec((0usize..8, 0.0f64..30.0), 0..3),
        prefetch in 1usize..4,
        speculate in any::<bool>(),
    ) {
        // Some workers go silent or get sick GPUs, but the first always stays answering.
        for (i, t) in losses {
            if i > 0 && i < workers.len() { workers[i].lost_at = Some(t); }
        }
        for (i, t) in sick {
            if i > 0 && i < workers.len() { workers[i].sick_at = Some(t); }
        }
        // Any worker's process may start again (a second Ready from a registered rank).
        for (i, t) in restarts {
            if i < workers.len() { workers[i].restart_at = Some(t); }
        }
        let mut s = spec(seed, chunks, workers);
        s.config.prefetch = prefetch;
        s.config.speculate = speculate;
        check(&s);
    }
}

#[test]
fn a_job_whose_chunk_always_fails_fails_and_terminates() {
    let mut s = spec(
        7,
        10,
        vec![
            SimWorkerSpec {
                crash: 1.0,
                ..SimWorkerSpec::healthy(1.0)
            };
            3
        ],
    );
    s.config.max_attempts = 3;
    let o = simulate(&s);
    assert_eq!(o.violation, None, "seed {}", s.seed);
    assert!(!o.completed);
    let failure = o.failure.expect("the job fails");
    assert!(
        matches!(failure, JobFailure::AttemptsExhausted { failures: 3, .. }),
        "{failure}"
    );
    assert!(failure.to_string().contains("failed 3 times"), "{failure}");
}

#[test]
fn stragglers_do_not_hold_the_job_back() {
    // 8 workers, 2 of them 4x slower; many chunks.
    let mut workers = vec![SimWorkerSpec::healthy(1.0); 8];
    workers[6].speed = 0.25;
    workers[7].speed = 0.25;
    let s = spec(1, 400, workers.clone());
    let o = simulate(&s);
    assert_eq!(o.violation, None, "seed {}", s.seed);
    let total: f64 = s.costs.iter().sum();
    let ideal = total / workers.iter().map(|w| w.speed).sum::<f64>();
    let static_split = static_split_makespan(
        &s.costs,
        &workers.iter().map(|w| w.speed).collect::<Vec<_>>(),
    );
    eprintln!(
        "makespan {:.1} ideal {ideal:.1} static {static_split:.1}",
        o.makespan
    );
    assert!(o.completed);
    assert!(
        o.makespan < static_split,
        "work stealing beats a static split"
    );
}
