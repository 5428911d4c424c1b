//! The unit tests' harness: a coordinator, the recording transport and a fixed clock, with
//! helpers to register workers and start, finish and fail chunks. Every event is followed by
//! [`Coordinator::sanity_check`], and so is the end of every test (in `Drop`): no test can
//! forget it.

use super::{Coordinator, CoordinatorConfig};
use crate::recorder::Recorder;
use crate::report::JobReport;
use flywheel_protocol::{
    Attempt, ChunkId, ChunkOutput, ChunkTask, FailureKind, InputFormat, InputSlice, Rank,
    ToCoordinator,
};
use std::time::{Duration, Instant};

pub(super) struct TestEnv {
    pub c: Coordinator,
    pub tx: Recorder,
    /// The fixed clock: every event happens at `now`.
    pub now: Instant,
    t0: Instant,
}

impl TestEnv {
    /// A coordinator over `chunks` chunks of 10 rows.
    pub fn new(cfg: CoordinatorConfig, chunks: u64) -> TestEnv {
        TestEnv::of(Coordinator::new(cfg, slices(chunks)))
    }

    /// The default settings with `prefetch` attempts a worker.
    pub fn prefetch(prefetch: usize, chunks: u64) -> TestEnv {
        TestEnv::new(
            CoordinatorConfig {
                prefetch,
                ..Default::default()
            },
            chunks,
        )
    }

    /// A harness around a coordinator made elsewhere (a resumed one).
    pub fn of(c: Coordinator) -> TestEnv {
        let t0 = Instant::now();
        TestEnv {
            c,
            tx: Recorder::default(),
            now: t0,
            t0,
        }
    }

    /// Sets the clock to `secs` after the start.
    pub fn at(&mut self, secs: u64) -> &mut TestEnv {
        self.now = self.t0 + Duration::from_secs(secs);
        self
    }

    /// Delivers one message at the clock's time, then checks the state.
    pub fn send(&mut self, from: Rank, msg: ToCoordinator) {
        self.c
            .on_message(&mut self.tx, from, msg, self.now)
            .expect("the recorder never fails");
        self.check("a message");
    }

    /// Registers workers 1..=n (on hosts "a", "b", ...).
    pub fn ready(&mut self, n: u32) {
        for r in 1..=n {
            let host = char::from(b'a' + (r - 1) as u8).to_string();
            self.send(Rank(r), ToCoordinator::Ready { host });
        }
    }

    /// The worker of `task` reports it started.
    pub fn start(&mut self, (rank, t): &(Rank, ChunkTask)) {
        self.send(*rank, started(t));
    }

    /// The worker of `task` finishes it.
    pub fn finish(&mut self, (rank, t): &(Rank, ChunkTask)) {
        self.send(*rank, done(t));
    }

    /// The worker of `task` reports that its mapper failed it.
    pub fn fail(&mut self, (rank, t): &(Rank, ChunkTask)) {
        self.send(*rank, failed(t));
    }

    /// A heartbeat check at the clock's time.
    pub fn tick(&mut self) {
        self.c
            .on_tick(&mut self.tx, self.now)
            .expect("the recorder never fails");
        self.check("a tick");
    }

    /// The assignments sent since the last call.
    pub fn tasks(&mut self) -> Vec<(Rank, ChunkTask)> {
        self.tx.take_tasks()
    }

    /// The cancellations sent since the last call.
    /// The next assignment sent to `rank` (the others sent since are dropped).
    pub fn task_for(&mut self, rank: Rank) -> (Rank, ChunkTask) {
        self.tasks()
            .into_iter()
            .find(|(r, _)| *r == rank)
            .unwrap_or_else(|| panic!("a task for {rank}"))
    }

    pub fn cancels(&mut self) -> Vec<(Rank, ChunkId, Attempt)> {
        self.tx.take_cancels()
    }

    /// The report after one second.
    pub fn report(&self) -> JobReport {
        self.c.report(Duration::from_secs(1))
    }

    /// Asserts that everything sent was read.
    pub fn nothing_else_sent(&self) {
        assert!(
            self.tx.pending().is_empty(),
            "unexpected messages: {:?}",
            self.tx.pending()
        );
    }

    fn check(&self, after: &str) {
        if let Err(e) = self.c.sanity_check() {
            panic!("after {after}: {e}");
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check("the test");
        }
    }
}

/// `n` chunks of 10 rows of one Parquet file.
pub fn slices(n: u64) -> Vec<InputSlice> {
    (0..n)
        .map(|i| InputSlice {
            path: "/in.parquet".into(),
            format: InputFormat::Parquet,
            group: None,
            row_start: i * 10,
            row_count: 10,
            bytes: None,
            schema: None,
        })
        .collect()
}

/// The output of finishing `t`: 10 rows, schema "s".
pub fn output(t: &ChunkTask) -> ChunkOutput {
    ChunkOutput {
        chunk: t.chunk,
        attempt: t.attempt,
        file: Some(format!("data/{}.parquet", t.chunk.0)),
        rows_in: 10,
        rows_out: 10,
        bytes: 100,
        schema: Some("s".into()),
        wall_ms: 5,
        errors_file: None,
        error_rows: 0,
        stats: None,
        worker: 0,
        host: String::new(),
        dependencies: Vec::new(),
    }
}

pub fn done(t: &ChunkTask) -> ToCoordinator {
    ToCoordinator::Done(output(t))
}

pub fn started(t: &ChunkTask) -> ToCoordinator {
    ToCoordinator::Started {
        chunk: t.chunk,
        attempt: t.attempt,
    }
}

pub fn failed(t: &ChunkTask) -> ToCoordinator {
    ToCoordinator::Failed {
        chunk: t.chunk,
        attempt: t.attempt,
        kind: FailureKind::Mapper,
        error: "boom".into(),
    }
}
