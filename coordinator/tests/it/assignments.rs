//! No assignment ever goes to a drained or lost worker, and the journal records accepted chunks
//! in the order the coordinator accepted them.

use flywheel_coordinator::sim::{simulate, SimSpec, SimWorkerSpec};
use flywheel_coordinator::CoordinatorConfig;
use proptest::prelude::*;
use std::time::Duration;

fn worker_strategy() -> impl Strategy<Value = SimWorkerSpec> {
    (
        0.2f64..4.0,
        0.0f64..0.3,
        0.0f64..0.05,
        prop::option::of(0.0f64..30.0),
        prop::option::of(0.0f64..30.0),
        prop::option::of(0.0f64..30.0),
    )
        .prop_map(
            |(speed, crash, hang, lost_at, sick_at, restart_at)| SimWorkerSpec {
                speed,
                crash,
                hang,
                lost_at,
                sick_at,
                restart_at,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn no_assignment_to_a_gone_worker_and_the_journal_keeps_acceptance_order(
        seed in any::<u64>(),
        chunks in 1usize..60,
        workers in prop::collection::vec(worker_strategy(), 1..10),
        prefetch in 1usize..4,
        speculate in any::<bool>(),
        drain_after_failures in 0u32..4,
    ) {
        let spec = SimSpec {
            costs: (0..chunks).map(|i| 1.0 + (i % 5) as f64 * 0.4).collect(),
            workers,
            config: CoordinatorConfig {
                max_attempts: 20,
                prefetch,
                speculate,
                heartbeat_timeout: Duration::from_secs(5),
                drain_after_failures,
                ..Default::default()
            },
            chunk_timeout: 15.0,
            seed,
            time_limit: 1.0e5,
        };
        // Workers may all be lost here: the job may fail, but never by a wrong dispatch.
        let o = simulate(&spec);
        prop_assert_eq!(o.violation, None, "seed {}", seed);
        prop_assert!(o.misassigned.is_empty(), "seed {}: {:?}", seed, o.misassigned);
        prop_assert_eq!(&o.journaled, &o.accepted, "seed {}: journal order", seed);
        let mut ids: Vec<u32> = o.journaled.iter().map(|(c, _)| *c).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), o.journaled.len(), "seed {}: a chunk journaled twice", seed);
        if o.completed {
            prop_assert_eq!(o.journaled.len(), chunks, "seed {}: every chunk journaled", seed);
        }
    }
}
