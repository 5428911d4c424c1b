//! A deterministic simulator that runs the real [`Coordinator`] against simulated workers in
//! virtual time: worker speeds, crashes, hangs (reported at the chunk timeout), lost workers and
//! sick GPUs, all drawn from a seeded RNG. The property tests and the scheduling benchmark use it;
//! it does no I/O and reads no clock.

use crate::{Coordinator, CoordinatorConfig};
use flywheel_protocol::{
    ChunkId, ChunkOutput, ChunkTask, FailureKind, GpuSample, InputFormat, InputSlice, Rank,
    ToCoordinator, ToWorker, Transport, TransportError,
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
}

impl SimWorkerSpec {
    pub fn healthy(speed: f64) -> SimWorkerSpec {
        SimWorkerSpec {
            speed,
            crash: 0.0,
            hang: 0.0,
            lost_at: None,
            sick_at: None,
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
    pub failure: Option<String>,
    /// Accepted outputs in chunk order.
    pub outputs: Vec<ChunkOutput>,
    /// Attempts that really finished on a worker: (chunk, attempt, rank).
    pub finished: HashSet<(u32, u32, u32)>,
    /// Work units spent on attempts whose result was not accepted.
    pub wasted_units: f64,
    pub crashes: u64,
    pub report: crate::JobReport,
}

#[derive(Default)]
struct Outbox(Vec<(Rank, ToWorker)>);

impl Transport for Outbox {
    fn workers(&self) -> Vec<Rank> {
        Vec::new()
    }
    fn send(&mut self, to: Rank, msg: ToWorker) -> Result<(), TransportError> {
        self.0.push((to, msg));
        Ok(())
    }
    fn recv_timeout(
        &mut self,
        _: Duration,
    ) -> Result<Option<(Rank, ToCoordinator)>, TransportError> {
        Ok(None)
    }
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
}

impl SimWorker {
    fn silent(&self, t: f64) -> bool {
        self.spec.lost_at.is_some_and(|l| t >= l)
    }
}

/// Runs one simulation to its end.
pub fn simulate(spec: &SimSpec) -> SimOutcome {
    let base = Instant::now();
    let at = |t: f64| base + Duration::from_secs_f64(t);
    let slices: Vec<InputSlice> = spec
        .costs
        .iter()
        .enumerate()
        .map(|(i, _)| InputSlice {
            path: "/sim/input.parquet".into(),
            format: InputFormat::Parquet,
            group: None,
            row_start: i as u64 * 100,
            row_count: 100,
            bytes: None,
            schema: None,
        })
        .collect();
    let mut coord = Coordinator::new(spec.config.clone(), slices);
    let mut out = Outbox::default();
    let mut rng = Rng::new(spec.seed);
    let mut workers: Vec<SimWorker> = spec
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
        })
        .collect();
    let mut finished = HashSet::new();
    let (mut wasted, mut crashes) = (0.0, 0u64);
    let mut t = 0.0;
    for w in &workers {
        let _ = coord.on_message(
            &mut out,
            w.rank,
            ToCoordinator::Ready {
                host: format!("sim{}", w.rank.0),
            },
            at(t),
        );
    }
    loop {
        if coord.is_complete() || coord.failure().is_some() || t > spec.time_limit {
            break;
        }
        // Deliver the coordinator's messages.
        for (to, msg) in std::mem::take(&mut out.0) {
            let Some(w) = workers.iter_mut().find(|w| w.rank == to) else {
                continue;
            };
            match msg {
                ToWorker::Assign(task) => w.queue.push_back(task),
                ToWorker::Cancel { chunk, attempt } => {
                    let before = w.queue.len();
                    w.queue
                        .retain(|q| !(q.chunk == chunk && q.attempt == attempt));
                    if w.queue.len() == before {
                        w.cancelled.insert((chunk, attempt.0));
                    }
                }
                ToWorker::Stop => {}
            }
        }
        // Idle workers start their next chunk.
        let mut inbox: Vec<(f64, Rank, ToCoordinator)> = Vec::new();
        for w in workers.iter_mut() {
            if w.current.is_none() && !w.silent(t) {
                if let Some(task) = w.queue.pop_front() {
                    let units = spec.costs[task.chunk.0 as usize];
                    let r = rng.unit();
                    let (fate, until) = if r < w.spec.crash {
                        (Fate::Crash, t + units / w.spec.speed * rng.unit())
                    } else if r < w.spec.crash + w.spec.hang {
                        (Fate::Hang, t + spec.chunk_timeout)
                    } else {
                        (Fate::Done, t + units / w.spec.speed)
                    };
                    inbox.push((
                        t,
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
            }
        }
        if !inbox.is_empty() {
            for (_, from, msg) in inbox {
                let _ = coord.on_message(&mut out, from, msg, at(t));
            }
            continue;
        }
        // The next event: a chunk ending, or a heartbeat.
        let next_end = workers
            .iter()
            .filter(|w| !w.silent(t))
            .filter_map(|w| w.current.as_ref().map(|c| c.until))
            .fold(f64::INFINITY, f64::min);
        let next_beat = workers
            .iter()
            .filter(|w| !w.silent(t))
            .map(|w| w.next_heartbeat)
            .fold(f64::INFINITY, f64::min);
        let next_loss = workers
            .iter()
            .filter_map(|w| w.spec.lost_at)
            .filter(|l| *l > t)
            .fold(f64::INFINITY, f64::min);
        let tick = (t.floor() + 1.0).max(t + 1e-9);
        let next = next_end.min(next_beat).min(next_loss).min(tick);
        if !next.is_finite() {
            break;
        }
        t = next;
        for w in workers.iter_mut() {
            if w.silent(t) {
                continue;
            }
            if w.current.as_ref().is_some_and(|c| c.until <= t) {
                let Some(c) = w.current.take() else { continue };
                let (chunk, attempt) = (c.task.chunk, c.task.attempt);
                let was_cancelled = w.cancelled.remove(&(chunk, attempt.0));
                let msg = match c.fate {
                    Fate::Done => {
                        finished.insert((chunk.0, attempt.0, w.rank.0));
                        ToCoordinator::Done(ChunkOutput {
                            chunk,
                            attempt,
                            file: Some(format!(
                                "data/c{:06}-a{}-r{}.parquet",
                                chunk.0, attempt.0, w.rank.0
                            )),
                            rows_in: 100,
                            rows_out: 100,
                            bytes: 1000,
                            schema: Some("{}".into()),
                            wall_ms: (c.units / w.spec.speed * 1000.0) as u64,
                            errors_file: None,
                            error_rows: 0,
                            stats: None,
                            worker: w.rank.0,
                            host: format!("sim{}", w.rank.0),
                        })
                    }
                    Fate::Crash => {
                        crashes += 1;
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
                    // Work done before the crash or the timeout; completed attempts that lost
                    // are counted at the end.
                    wasted += c.units.min((c.until - c.start) * w.spec.speed);
                }
                let _ = was_cancelled;
                let _ = coord.on_message(&mut out, w.rank, msg, at(t));
            }
            if w.next_heartbeat <= t {
                w.next_heartbeat = t + 1.0;
                let gpu = w.spec.sick_at.filter(|s| t >= *s).map(|_| GpuSample {
                    index: 0,
                    name: "sim".into(),
                    utilization: 0,
                    memory_used_mb: 0,
                    memory_total_mb: 0,
                    power_w: None,
                    temperature_c: None,
                    ecc_uncorrected: Some(1),
                    problem: Some("1 uncorrected ECC error(s)".into()),
                });
                let _ = coord.on_message(&mut out, w.rank, ToCoordinator::Heartbeat { gpu }, at(t));
            }
        }
        let _ = coord.on_tick(&mut out, at(t));
    }
    let accepted: HashSet<(u32, u32)> = coord
        .outputs()
        .iter()
        .map(|o| (o.chunk.0, o.attempt.0))
        .collect();
    // Completed attempts that were not accepted are wasted too.
    for (c, a, _) in &finished {
        if !accepted.contains(&(*c, *a)) {
            wasted += spec.costs[*c as usize];
        }
    }
    SimOutcome {
        makespan: t,
        completed: coord.is_complete(),
        failure: coord.failure().map(|f| f.message.clone()),
        outputs: coord.outputs().into_iter().cloned().collect(),
        finished,
        wasted_units: wasted,
        crashes,
        report: coord.report(Duration::from_secs_f64(t.max(1e-9))),
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
