//! The `scale` case: the real coordinator at cluster scale in an event-driven simulator (a heap
//! of attempt ends and a 1 Hz round of heartbeats, each carrying a GPU reading), so that the
//! simulator's own cost per event is flat and what grows with workers or chunks is the
//! coordinator's. As the driver does, the coordinator ticks after every message (and once a
//! round). Workers: one in ten at half speed, 1 % of attempts crashing part-way, 4 lost and 2
//! turning sick mid-job.
//! Measured: the coordinator's own handling time of each message and tick (around `on_message`
//! and `on_tick`), the wall time, the peak RSS and the makespan against the ideal (all the work
//! spread over the capacity the workers offer while they are up).

use flywheel_coordinator::sim::{sick_gpu, Recorder, Rng};
use flywheel_coordinator::{Coordinator, CoordinatorConfig};
use flywheel_protocol::{
    Attempt, ChunkId, ChunkOutput, ChunkTask, FailureKind, GpuSample, Rank, ToCoordinator, ToWorker,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// Per-event handling times, in a log-linear histogram (1/64 octave) of nanoseconds.
#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < 128 {
            return ns as usize;
        }
        let e = 63 - u64::from(ns.leading_zeros());
        128 + (e as usize - 7) * 64 + ((ns >> (e - 6)) & 63) as usize
    }
    fn lower(b: usize) -> u64 {
        if b < 128 {
            return b as u64;
        }
        let (e, sub) = ((b - 128) / 64 + 7, (b - 128) % 64);
        (64 + sub as u64) << (e - 6)
    }
    fn record(&mut self, d: Duration) {
        let b = Self::bucket(d.as_nanos() as u64);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.total += 1;
    }
    /// The `q` quantile in microseconds.
    fn quantile_us(&self, q: f64) -> f64 {
        let want = (q * self.total as f64).ceil() as u64;
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= want.max(1) {
                return Self::lower(b) as f64 / 1000.0;
            }
        }
        0.0
    }
}

struct Current {
    chunk: ChunkId,
    attempt: Attempt,
    crash: bool,
    seq: u64,
    units: f64,
}

struct Worker {
    speed: f64,
    lost_at: f64,
    sick_at: f64,
    queue: VecDeque<ChunkTask>,
    current: Option<Current>,
    seq: u64,
}

/// What one run measured.
pub struct ScaleOutcome {
    pub wall: Duration,
    pub p50_us: f64,
    pub p99_us: f64,
    pub makespan: f64,
    pub ideal: f64,
    pub completed: bool,
    pub accepted_once: bool,
    pub events: u64,
    pub problem: Option<String>,
    /// Per kind of event: (name, count, p50 µs, p99 µs).
    pub by_kind: Vec<(&'static str, u64, f64, f64)>,
}

struct Sim {
    coord: Coordinator,
    out: Recorder,
    rng: Rng,
    workers: Vec<Worker>,
    costs: Vec<f64>,
    /// Attempt ends: (virtual ns, worker index, the attempt's sequence number).
    ends: BinaryHeap<Reverse<(u64, usize, u64)>>,
    base: Instant,
    t: f64,
    hist: Histogram,
    /// The same times by kind: Ready, Started, Done, Failed, Heartbeat, Bye, the tick.
    by_kind: [Histogram; 7],
    accepted: Vec<u8>,
    events: u64,
    sanity_every: u64,
    problem: Option<String>,
    /// What every attempt reports as its output schema.
    schema: String,
}

/// A healthy GPU's reading, as NVML gives it.
fn healthy_gpu(i: usize) -> GpuSample {
    GpuSample {
        index: (i % 8) as u32,
        uuid: Some(format!("GPU-{i:08x}-0000-0000-0000-000000000000")),
        name: "NVIDIA H100 80GB HBM3".into(),
        utilization: 97,
        memory_used_mb: 71_000,
        memory_total_mb: 81_559,
        power_w: Some(650.0),
        temperature_c: Some(61),
        ecc_uncorrected: Some(0),
        problem: None,
    }
}

/// The output schema a worker reports for a typical table (Arrow JSON, as workers send it): an
/// id, a text, a score and a list of tags.
fn typical_schema() -> String {
    use arrow::datatypes::{DataType, Field, Schema};
    let tag = Field::new("item", DataType::Utf8, true);
    flywheel_formats::schema_to_json(&Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("tags", DataType::List(std::sync::Arc::new(tag)), true),
    ]))
}

/// The fluid optimum: when the work would be done if it flowed to every worker while it is up.
fn ideal_makespan(total: f64, workers: &[Worker]) -> f64 {
    let mut drops: Vec<(f64, f64)> = workers
        .iter()
        .map(|w| (w.lost_at.min(w.sick_at), w.speed))
        .collect();
    drops.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut speed, mut t, mut left) = (workers.iter().map(|w| w.speed).sum::<f64>(), 0.0, total);
    for (at, s) in drops {
        if at.is_finite() && (at - t) * speed < left {
            left -= (at - t) * speed;
            t = at;
            speed -= s;
            continue;
        }
        break;
    }
    t + left / speed
}

/// Runs one job of `chunks` chunks on `n` workers; checks the coordinator's invariants every
/// `sanity_every` events (0: only at the end).
pub fn run(n: usize, chunks: usize, seed: u64, sanity_every: u64) -> ScaleOutcome {
    let mut rng = Rng::new(seed);
    let costs: Vec<f64> = (0..chunks).map(|_| 60.0 + 30.0 * rng.unit()).collect();
    let mut workers: Vec<Worker> = (0..n)
        .map(|i| Worker {
            speed: if i % 10 == 9 { 0.5 } else { 1.0 },
            lost_at: f64::INFINITY,
            sick_at: f64::INFINITY,
            queue: VecDeque::new(),
            current: None,
            seq: 0,
        })
        .collect();
    let rough = ideal_makespan(costs.iter().sum(), &workers);
    for k in 0..4 {
        workers[(2 * k + 1) * n / 8].lost_at = rough * (0.2 + 0.15 * k as f64);
    }
    for k in 0..2 {
        workers[(2 * k + 1) * n / 4].sick_at = rough * (0.3 + 0.3 * k as f64);
    }
    let ideal = ideal_makespan(costs.iter().sum(), &workers);
    let slices = flywheel_coordinator::sim::synthetic_slices(chunks, 10);
    // A crash costs an attempt: with 1 % crashing, 3 attempts would fail one chunk in a million.
    let cfg = CoordinatorConfig {
        max_attempts: 10,
        ..CoordinatorConfig::default()
    };
    let mut sim = Sim {
        coord: Coordinator::new(cfg, slices),
        out: Recorder::default(),
        rng,
        workers,
        costs,
        ends: BinaryHeap::new(),
        base: Instant::now(),
        t: 0.0,
        hist: Histogram::default(),
        by_kind: Default::default(),
        accepted: vec![0; chunks],
        events: 0,
        sanity_every,
        problem: None,
        schema: typical_schema(),
    };
    let wall = Instant::now();
    sim.go(ideal * 10.0 + 1000.0);
    let wall = wall.elapsed();
    if let Err(e) = sim.coord.sanity_check() {
        sim.problem.get_or_insert(e.to_string());
    }
    if let Some(f) = sim.coord.failure() {
        sim.problem.get_or_insert(format!("the job failed: {f}"));
    }
    ScaleOutcome {
        wall,
        p50_us: sim.hist.quantile_us(0.50),
        p99_us: sim.hist.quantile_us(0.99),
        makespan: sim.t,
        ideal,
        completed: sim.coord.is_complete(),
        accepted_once: sim.accepted.iter().all(|a| *a == 1),
        events: sim.events,
        problem: sim.problem,
        by_kind: [
            "Ready",
            "Started",
            "Done",
            "Failed",
            "Heartbeat",
            "Bye",
            "tick",
        ]
        .iter()
        .zip(&sim.by_kind)
        .filter(|(_, h)| h.total > 0)
        .map(|(k, h)| (*k, h.total, h.quantile_us(0.5), h.quantile_us(0.99)))
        .collect(),
    }
}

impl Sim {
    fn now(&self) -> Instant {
        self.base + Duration::from_secs_f64(self.t)
    }

    fn go(&mut self, limit: f64) {
        for i in 0..self.workers.len() {
            let host = format!("sim{}", i + 1);
            self.deliver(i, ToCoordinator::Ready { host });
        }
        let mut second = 1.0;
        while !self.coord.is_complete() && self.problem.is_none() && self.t < limit {
            match self.ends.peek() {
                Some(Reverse((ns, _, _))) if (*ns as f64) / 1e9 < second => {
                    let Some(Reverse((ns, i, seq))) = self.ends.pop() else {
                        break;
                    };
                    self.t = ns as f64 / 1e9;
                    self.end(i, seq);
                }
                _ => {
                    self.t = second;
                    self.round();
                    second += 1.0;
                }
            }
        }
    }

    /// The 1 Hz round: a heartbeat from every answering worker, then a tick as after a poll.
    fn round(&mut self) {
        for i in 0..self.workers.len() {
            let w = &self.workers[i];
            if self.t >= w.lost_at {
                continue;
            }
            // Every worker owns a GPU and reports it with each heartbeat.
            let gpu = Some(if self.t >= w.sick_at {
                sick_gpu()
            } else {
                healthy_gpu(i)
            });
            self.deliver(i, ToCoordinator::Heartbeat { gpu });
        }
        self.tick();
    }

    /// Worker `i`'s attempt `seq` ends now (unless it was cancelled or the worker fell silent).
    fn end(&mut self, i: usize, seq: u64) {
        let w = &mut self.workers[i];
        if self.t >= w.lost_at || w.current.as_ref().is_none_or(|c| c.seq != seq) {
            return;
        }
        let Some(c) = w.current.take() else {
            return;
        };
        let rank = i as u32 + 1;
        let msg = if c.crash {
            ToCoordinator::Failed {
                chunk: c.chunk,
                attempt: c.attempt,
                kind: FailureKind::Mapper,
                error: "simulated crash".into(),
            }
        } else {
            ToCoordinator::Done(ChunkOutput {
                chunk: c.chunk,
                attempt: c.attempt,
                file: Some(format!("data/c{:07}-a{}.parquet", c.chunk.0, c.attempt.0)),
                rows_in: 10,
                rows_out: 10,
                bytes: 1000,
                // A copy of its own, as a message decoded from MPI brings.
                schema: Some(self.schema.as_str().into()),
                wall_ms: (c.units / w.speed * 1000.0) as u64,
                errors_file: None,
                error_rows: 0,
                stats: None,
                worker: rank,
                host: format!("sim{rank}"),
                dependencies: Vec::new(),
            })
        };
        self.deliver(i, msg);
        self.start(i);
    }

    /// Hands worker `i`'s message to the coordinator, timing its handling, and delivers what
    /// the coordinator sent back.
    fn deliver(&mut self, i: usize, msg: ToCoordinator) {
        let now = self.now();
        let kind = match msg {
            ToCoordinator::Ready { .. } => 0,
            ToCoordinator::Started { .. } => 1,
            ToCoordinator::Done(_) => 2,
            ToCoordinator::Failed { .. } => 3,
            ToCoordinator::Heartbeat { .. } => 4,
            ToCoordinator::Bye => 5,
        };
        let t0 = Instant::now();
        let _ = self
            .coord
            .on_message(&mut self.out, Rank(i as u32 + 1), msg, now);
        self.record(kind, t0.elapsed());
        self.after_event();
        self.tick();
    }

    /// The coordinator's tick, which the driver runs after every message it receives (and
    /// after every poll that brought none: the 1 Hz round here).
    fn tick(&mut self) {
        let now = self.now();
        let t0 = Instant::now();
        let _ = self.coord.on_tick(&mut self.out, now);
        self.record(6, t0.elapsed());
        self.after_event();
    }

    fn record(&mut self, kind: usize, d: Duration) {
        self.hist.record(d);
        self.by_kind[kind].record(d);
    }

    fn after_event(&mut self) {
        self.events += 1;
        for o in self.coord.take_accepted() {
            if let Some(a) = self.accepted.get_mut(o.chunk.0 as usize) {
                *a = a.saturating_add(1);
            }
        }
        if self.sanity_every > 0 && self.events % self.sanity_every == 0 {
            if let Err(e) = self.coord.sanity_check() {
                self.problem
                    .get_or_insert(format!("at t={:.1}: {e}", self.t));
            }
        }
        let mut touched = Vec::new();
        for (to, msg) in self.out.take() {
            let Some(i) = (to.0 as usize).checked_sub(1) else {
                continue;
            };
            let Some(w) = self.workers.get_mut(i) else {
                continue;
            };
            match msg {
                ToWorker::Assign(task) => w.queue.push_back(task),
                ToWorker::Cancel { chunk, attempt } => {
                    w.queue
                        .retain(|q| !(q.chunk == chunk && q.attempt == attempt));
                    // A real worker stops the attempt it runs.
                    if w.current
                        .as_ref()
                        .is_some_and(|c| c.chunk == chunk && c.attempt == attempt)
                    {
                        w.current = None;
                    }
                }
                ToWorker::Stop => {}
            }
            touched.push(i);
        }
        for i in touched {
            self.start(i);
        }
    }

    /// Worker `i`, when idle and answering, starts its next queued attempt.
    fn start(&mut self, i: usize) {
        let t = self.t;
        let w = &mut self.workers[i];
        if w.current.is_some() || t >= w.lost_at {
            return;
        }
        let Some(task) = w.queue.pop_front() else {
            return;
        };
        let units = self.costs[task.chunk.0 as usize];
        let crash = self.rng.unit() < 0.01;
        let run = units / w.speed * if crash { self.rng.unit() } else { 1.0 };
        w.seq += 1;
        let seq = w.seq;
        w.current = Some(Current {
            chunk: task.chunk,
            attempt: task.attempt,
            crash,
            seq,
            units,
        });
        self.ends.push(Reverse((((t + run) * 1e9) as u64, i, seq)));
        let msg = ToCoordinator::Started {
            chunk: task.chunk,
            attempt: task.attempt,
        };
        self.deliver(i, msg);
    }
}

/// Peak RSS of this process in MB (`VmHWM`), 0 where /proc is not there.
fn max_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `flywheel-bench scale`: one run, one line.
pub fn scale_case(workers: usize, chunks: usize, sanity_every: u64) -> anyhow::Result<()> {
    if workers < 8 || chunks == 0 {
        anyhow::bail!(
            "the scale case needs 8 workers or more (4 are lost, 2 turn sick) and a chunk"
        );
    }
    let o = run(workers, chunks, 16, sanity_every);
    println!(
        "workers {workers} chunks {chunks} wall {:.1} s per_event_p50 {:.2} us per_event_p99 {:.2} us max_rss {:.0} MB makespan_over_ideal {:.3}",
        o.wall.as_secs_f64(),
        o.p50_us,
        o.p99_us,
        max_rss_mb(),
        o.makespan / o.ideal
    );
    eprintln!(
        "  {} events, makespan {:.0} s virtual (ideal {:.0} s), every chunk accepted once: {}",
        o.events, o.makespan, o.ideal, o.accepted_once
    );
    for (kind, n, p50, p99) in &o.by_kind {
        eprintln!("  {kind:<9} {n:>10} events  p50 {p50:.2} us  p99 {p99:.2} us");
    }
    if let Some(p) = o.problem {
        anyhow::bail!("{p}");
    }
    if !o.completed || !o.accepted_once {
        anyhow::bail!("the job did not complete with every chunk accepted exactly once");
    }
    Ok(())
}
