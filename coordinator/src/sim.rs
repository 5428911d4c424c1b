//! A deterministic simulator that runs the real [`Coordinator`] against simulated workers in
//! virtual time: worker speeds, crashes, hangs (reported at the chunk timeout), lost workers and
//! sick GPUs, all drawn from a seeded RNG. The property tests and the scheduling benchmark use it;
//! it does no I/O and reads no clock. After every event it checks the coordinator's invariants
//! ([`Coordinator::sanity_check`]) and stops at the first one broken.

pub use crate::recorder::Recorder;
use crate::{Coordinator, CoordinatorConfig, JobFailure};
use flywheel_protocol::{
    Attempt, ChunkId, ChunkOutput, ChunkTask, FailureKind, GpuSample, InputFormat, InputSlice,
    Rank, ToCoordinator, ToWorker,
};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// A small, fast, seeded RNG (xorshift64*), so runs replay exactly from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How one simulated worker behaves.
#[derive(Debug, Clone)]
pub struct SimWorkerSpec {
    /// Work units per second.
    pub speed: f64,
    /// Probability that an attempt crashes part-way.
    pub crash: f64,
    /// Probability that an attempt hangs until the chunk timeout.
    pub hang: f64,
    /// Virtual time at which the worker goes silent for good.
    pub lost_at: Option<f64>,
    /// Virtual time from which its GPU reports uncorrected ECC errors.
    pub sick_at: Option<f64>,
    /// Virtual time at which its process starts again: it forgets every chunk it held (the
    /// running one too) and registers again.
    pub restart_at: Option<f64>,
}

impl SimWorkerSpec {
    pub fn healthy(speed: f64) -> SimWorkerSpec {
        SimWorkerSpec {
            speed,
            crash: 0.0,
            hang: 0.0,
            lost_at: None,
            sick_at: None,
            restart_at: None,
        }
    }
}

/// A simulation to run.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Work units of each chunk (its cost); chunk i has `costs[i]`.
    pub costs: Vec<f64>,
    pub workers: Vec<SimWorkerSpec>,
    pub config: CoordinatorConfig,
    /// Seconds after which a hanging attempt is reported as timed out.
    pub chunk_timeout: f64,
    pub seed: u64,
    /// Give up (a scheduling bug) after this much virtual time.
    pub time_limit: f64,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// Virtual seconds until the job completed or failed.
    pub makespan: f64,
    pub completed: bool,
    pub failure: Option<JobFailure>,
    /// The first invariant the coordinator broke ([`Coordinator::sanity_check`], run after
    /// every event), with when and after which event; the simulation stops there.
    pub violation: Option<String>,
    /// Accepted outputs in chunk order.
    pub outputs: Vec<ChunkOutput>,
    /// Attempts that really finished on a worker: (chunk, attempt, rank).
    pub finished: HashSet<(u32, u32, u32)>,
    /// Work units spent on attempts whose result was not accepted.
    pub wasted_units: f64,
    pub crashes: u64,
    pub report: crate::JobReport,
    /// (chunk, attempt) in the order the coordinator accepted them (the `Done` whose delivery
    /// made the chunk done), and in the order [`Coordinator::take_accepted`] gave them to the
    /// journal (read after every event): the two must be the same.
    pub accepted: Vec<(u32, u32)>,
    pub journaled: Vec<(u32, u32)>,
    /// Assignments sent to a worker that was lost or drained when it was sent.
    pub misassigned: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Done,
    Crash,
    Hang,
}

struct Running {
    task: ChunkTask,
    start: f64,
    until: f64,
    fate: Fate,
    units: f64,
}

struct SimWorker {
    rank: Rank,
    spec: SimWorkerSpec,
    queue: VecDeque<ChunkTask>,
    current: Option<Running>,
    cancelled: HashSet<(ChunkId, u32)>,
    next_heartbeat: f64,
    restarted: bool,
}

impl SimWorker {
    fn silent(&self, t: f64) -> bool {
        self.spec.lost_at.is_some_and(|l| t >= l)
    }

    /// Takes what the coordinator sent it.
    fn receive(&mut self, msg: ToWorker) {
        match msg {
            ToWorker::Assign(task) => self.queue.push_back(task),
            ToWorker::Cancel { chunk, attempt } => {
                let before = self.queue.len();
                self.queue
                    .retain(|q| !(q.chunk == chunk && q.attempt == attempt));
                if self.queue.len() == before {
                    self.cancelled.insert((chunk, attempt.0));
                }
            }
            ToWorker::Stop => {}
        }
    }
}

/// What a message is, in a word, and the attempt it is about.
fn summary(msg: &ToCoordinator) -> (&'static str, Option<(ChunkId, Attempt)>) {
    match msg {
        ToCoordinator::Ready { .. } => ("Ready", None),
        ToCoordinator::Started { chunk, attempt } => ("Started", Some((*chunk, *attempt))),
        ToCoordinator::Done(o) => ("Done", Some((o.chunk, o.attempt))),
        ToCoordinator::Failed { chunk, attempt, .. } => ("Failed", Some((*chunk, *attempt))),
        ToCoordinator::Heartbeat { .. } => ("Heartbeat", None),
        ToCoordinator::Bye => ("Bye", None),
    }
}

/// A simulation under way: the real coordinator, the simulated workers and virtual time.
struct Sim<'a> {
    spec: &'a SimSpec,
    base: Instant,
    coord: Coordinator,
    out: Recorder,
    rng: Rng,
    workers: Vec<SimWorker>,
    /// Attempts that really finished: (chunk, attempt, rank).
    finished: HashSet<(u32, u32, u32)>,
    wasted: f64,
    crashes: u64,
    /// Virtual seconds since the start.
    t: f64,
    /// The first broken invariant, with when and after what.
    violation: Option<String>,
    accepted: Vec<(u32, u32)>,
    journaled: Vec<(u32, u32)>,
    misassigned: Vec<String>,
    /// Messages in the outbox already looked at by [`Sim::note_assignments`].
    looked_at: usize,
}

/// Runs one simulation to its end.
pub fn simulate(spec: &SimSpec) -> SimOutcome {
    let mut sim = Sim::new(spec);
    sim.register();
    while !sim.over() {
        sim.deliver_outbox();
        if sim.start_idle_workers() {
            continue;
        }
        // The next event: a chunk ending, a heartbeat, a loss or the next second's tick.
        let Some(next) = sim.next_event() else {
            break;
        };
        sim.t = next;
        sim.advance();
        sim.tick();
    }
    sim.outcome()
}

/// A plan of `n` chunks of `rows` rows each over one (imaginary) Parquet file: the input of
/// simulated and benchmarked jobs, where only the chunks' count and sizes matter.
pub fn synthetic_slices(n: usize, rows: u64) -> Vec<InputSlice> {
    (0..n as u64)
        .map(|i| InputSlice {
            path: "/sim/input.parquet".into(),
            format: InputFormat::Parquet,
            group: None,
            row_start: i * rows,
            row_count: rows,
            bytes: None,
            schema: None,
        })
        .collect()
}

impl<'a> Sim<'a> {
    fn new(spec: &'a SimSpec) -> Sim<'a> {
        let slices = synthetic_slices(spec.costs.len(), 100);
        let workers = spec
            .workers
            .iter()
            .enumerate()
            .map(|(i, s)| SimWorker {
                rank: Rank(i as u32 + 1),
                spec: s.clone(),
                queue: VecDeque::new(),
                current: None,
                cancelled: HashSet::new(),
                next_heartbeat: 1.0,
                restarted: false,
            })
            .collect();
        Sim {
            spec,
            base: Instant::now(),
            coord: Coordinator::new(spec.config.clone(), slices),
            out: Recorder::default(),
            rng: Rng::new(spec.seed),
            workers,
            finished: HashSet::new(),
            wasted: 0.0,
            crashes: 0,
            t: 0.0,
            violation: None,
            accepted: Vec::new(),
            journaled: Vec::new(),
            misassigned: Vec::new(),
            looked_at: 0,
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_secs_f64(self.t)
    }

    fn over(&self) -> bool {
        self.coord.is_complete()
            || self.coord.failure().is_some()
            || self.t > self.spec.time_limit
            || self.violation.is_some()
    }

    /// Checks the coordinator's invariants after `event`; keeps the first violation.
    fn check(&mut self, event: &dyn Fn() -> String) {
        if self.violation.is_none() {
            if let Err(e) = self.coord.sanity_check() {
                self.violation = Some(format!("at t={:.3}, after {}: {e}", self.t, event()));
            }
        }
    }

    /// Hands one worker message to the coordinator.
    fn deliver(&mut self, from: Rank, msg: ToCoordinator) {
        // Words for the event, put together only if an invariant breaks.
        let (kind, attempt) = summary(&msg);
        let now = self.now();
        let was_done = attempt.is_some_and(|(c, _)| self.is_done(c));
        // The recorder never fails.
        let _ = self.coord.on_message(&mut self.out, from, msg, now);
        if let Some((c, a)) =
            attempt.filter(|(c, _)| kind == "Done" && !was_done && self.is_done(*c))
        {
            self.accepted.push((c.0, a.0));
        }
        self.note_journal();
        self.note_assignments();
        self.check(&|| match attempt {
            Some((chunk, a)) => format!("{kind} of {chunk} {a} from {from}"),
            None => format!("{kind} from {from}"),
        });
    }

    fn is_done(&self, c: ChunkId) -> bool {
        matches!(self.coord.chunk_state(c), Some(crate::ChunkState::Done(_)))
    }

    /// What the journal would record now.
    fn note_journal(&mut self) {
        let taken = self.coord.take_accepted();
        self.journaled
            .extend(taken.iter().map(|o| (o.chunk.0, o.attempt.0)));
    }

    /// Notes assignments just sent to a lost or drained worker.
    fn note_assignments(&mut self) {
        let sent = self.out.pending();
        for (to, msg) in &sent[self.looked_at.min(sent.len())..] {
            let state = self.coord.worker_state(*to);
            if let (ToWorker::Assign(t), Some(s)) = (msg, state) {
                if s.is_gone() {
                    let what = format!(
                        "{} {} went to {to}, {s}, at t={:.3}",
                        t.chunk, t.attempt, self.t
                    );
                    self.misassigned.push(what);
                }
            }
        }
        self.looked_at = sent.len();
    }

    fn register(&mut self) {
        for i in 0..self.workers.len() {
            let rank = self.workers[i].rank;
            let host = format!("sim{}", rank.0);
            self.deliver(rank, ToCoordinator::Ready { host });
        }
    }

    /// Delivers the coordinator's messages to the workers.
    fn deliver_outbox(&mut self) {
        self.looked_at = 0;
        for (to, msg) in self.out.take() {
            if let Some(w) = self.workers.iter_mut().find(|w| w.rank == to) {
                w.receive(msg);
            }
        }
    }

    /// Idle workers start their next chunk, its fate drawn now; whether any started.
    fn start_idle_workers(&mut self) -> bool {
        let t = self.t;
        let mut started = Vec::new();
        for w in self.workers.iter_mut() {
            if w.current.is_some() || w.silent(t) {
                continue;
            }
            let Some(task) = w.queue.pop_front() else {
                continue;
            };
            let units = self.spec.costs[task.chunk.0 as usize];
            let r = self.rng.unit();
            let (fate, until) = if r < w.spec.crash {
                (Fate::Crash, t + units / w.spec.speed * self.rng.unit())
            } else if r < w.spec.crash + w.spec.hang {
                (Fate::Hang, t + self.spec.chunk_timeout)
            } else {
                (Fate::Done, t + units / w.spec.speed)
            };
            started.push((
                w.rank,
                ToCoordinator::Started {
                    chunk: task.chunk,
                    attempt: task.attempt,
                },
            ));
            w.current = Some(Running {
                task,
                start: t,
                until,
                fate,
                units,
            });
        }
        let any = !started.is_empty();
        for (from, msg) in started {
            self.deliver(from, msg);
        }
        any
    }

    /// When the next thing happens, if anything ever does.
    fn next_event(&self) -> Option<f64> {
        let t = self.t;
        let answering = || self.workers.iter().filter(move |w| !w.silent(t));
        let next_end = answering()
            .filter_map(|w| w.current.as_ref().map(|c| c.until))
            .fold(f64::INFINITY, f64::min);
        let next_beat = answering()
            .map(|w| w.next_heartbeat)
            .fold(f64::INFINITY, f64::min);
        let next_loss = self
            .workers
            .iter()
            .filter_map(|w| w.spec.lost_at)
            .filter(|l| *l > t)
            .fold(f64::INFINITY, f64::min);
        let tick = (t.floor() + 1.0).max(t + 1e-9);
        let next = next_end.min(next_beat).min(next_loss).min(tick);
        next.is_finite().then_some(next)
    }

    /// At the current time: attempts that end report, and heartbeats that are due are sent.
    fn advance(&mut self) {
        let t = self.t;
        for i in 0..self.workers.len() {
            if self.workers[i].silent(t) {
                continue;
            }
            if self.workers[i].spec.restart_at.is_some_and(|r| r <= t) && !self.workers[i].restarted
            {
                self.restart(i);
            }
            if let Some(msg) = self.end_attempt(i) {
                let rank = self.workers[i].rank;
                self.deliver(rank, msg);
            }
            if self.workers[i].next_heartbeat <= t {
                self.heartbeat(i);
            }
        }
    }

    /// Worker `i`'s process starts again: what it held is gone (the work done on its running
    /// chunk is wasted) and it says `Ready` once more.
    fn restart(&mut self, i: usize) {
        let t = self.t;
        let w = &mut self.workers[i];
        w.restarted = true;
        w.queue.clear();
        w.cancelled.clear();
        if let Some(c) = w.current.take() {
            self.wasted += c.units.min((t - c.start) * w.spec.speed);
        }
        let (rank, host) = (w.rank, format!("sim{}-again", w.rank.0));
        self.deliver(rank, ToCoordinator::Ready { host });
    }

    /// Worker `i`'s current attempt, if it ends now: what it reports.
    fn end_attempt(&mut self, i: usize) -> Option<ToCoordinator> {
        let t = self.t;
        let w = &mut self.workers[i];
        if !w.current.as_ref().is_some_and(|c| c.until <= t) {
            return None;
        }
        let c = w.current.take()?;
        let (chunk, attempt) = (c.task.chunk, c.task.attempt);
        w.cancelled.remove(&(chunk, attempt.0));
        let rank = w.rank;
        let msg = match c.fate {
            Fate::Done => {
                self.finished.insert((chunk.0, attempt.0, rank.0));
                ToCoordinator::Done(ChunkOutput {
                    chunk,
                    attempt,
                    file: Some(format!(
                        "data/c{:06}-a{}-r{}.parquet",
                        chunk.0, attempt.0, rank.0
                    )),
                    rows_in: 100,
                    rows_out: 100,
                    bytes: 1000,
                    schema: Some("{}".into()),
                    wall_ms: (c.units / w.spec.speed * 1000.0) as u64,
                    errors_file: None,
                    error_rows: 0,
                    stats: None,
                    worker: rank.0,
                    host: format!("sim{}", rank.0),
                    dependencies: Vec::new(),
                })
            }
            Fate::Crash => {
                self.crashes += 1;
                ToCoordinator::Failed {
                    chunk,
                    attempt,
                    kind: FailureKind::Mapper,
                    error: "simulated crash".into(),
                }
            }
            Fate::Hang => ToCoordinator::Failed {
                chunk,
                attempt,
                kind: FailureKind::Timeout,
                error: "simulated hang".into(),
            },
        };
        if c.fate != Fate::Done {
            // Work done before the crash or the timeout; completed attempts that lost are
            // counted at the end.
            self.wasted += c.units.min((c.until - c.start) * w.spec.speed);
        }
        Some(msg)
    }

    /// Worker `i` sends a heartbeat (with a sick GPU's reading once it is sick).
    fn heartbeat(&mut self, i: usize) {
        let t = self.t;
        let w = &mut self.workers[i];
        w.next_heartbeat = t + 1.0;
        let gpu = w.spec.sick_at.filter(|s| t >= *s).map(|_| sick_gpu());
        let rank = w.rank;
        self.deliver(rank, ToCoordinator::Heartbeat { gpu });
    }

    /// The coordinator's heartbeat check.
    fn tick(&mut self) {
        let now = self.now();
        let _ = self.coord.on_tick(&mut self.out, now);
        self.note_journal();
        self.note_assignments();
        self.check(&|| "a tick".to_string());
    }

    fn outcome(mut self) -> SimOutcome {
        let accepted: HashSet<(u32, u32)> = self
            .coord
            .outputs()
            .iter()
            .map(|o| (o.chunk.0, o.attempt.0))
            .collect();
        // Completed attempts that were not accepted are wasted too.
        for (c, a, _) in &self.finished {
            if !accepted.contains(&(*c, *a)) {
                self.wasted += self.spec.costs[*c as usize];
            }
        }
        SimOutcome {
            makespan: self.t,
            completed: self.coord.is_complete(),
            failure: self.coord.failure().cloned(),
            violation: self.violation,
            outputs: self.coord.outputs().into_iter().cloned().collect(),
            finished: self.finished,
            wasted_units: self.wasted,
            crashes: self.crashes,
            report: self.coord.report(Duration::from_secs_f64(self.t.max(1e-9))),
            accepted: self.accepted,
            journaled: self.journaled,
            misassigned: self.misassigned,
        }
    }
}

/// The reading of a simulated GPU once it is sick (an uncorrected ECC error).
pub fn sick_gpu() -> GpuSample {
    GpuSample {
        index: 0,
        uuid: None,
        name: "sim".into(),
        utilization: 0,
        memory_used_mb: 0,
        memory_total_mb: 0,
        power_w: None,
        temperature_c: None,
        ecc_uncorrected: Some(1),
        problem: Some("1 uncorrected ECC error(s)".into()),
    }
}

/// The makespan of a static split into equal contiguous parts (what an sbatch array does).
pub fn static_split_makespan(costs: &[f64], speeds: &[f64]) -> f64 {
    let n = speeds.len();
    let per = costs.len().div_ceil(n);
    speeds
        .iter()
        .enumerate()
        .map(|(i, s)| costs.iter().skip(i * per).take(per).sum::<f64>() / s)
        .fold(0.0, f64::max)
}
