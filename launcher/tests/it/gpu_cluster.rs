//! The multi-node local cluster (`slurm/local-cluster.sh start --nodes 4 --gpus-per-node 2`):
//! 4 slurmd nodes in their own network namespaces, 2 fake GPUs each (gres on mknod'ed device
//! nodes, NVML from slurm/fake-nvml). The tests start it when it is not running (as root, with
//! the tools it needs), skip loudly otherwise, and take turns on it: one test at a time, in this
//! process and across processes (a lock file), since each rewrites the fake GPUs' state.
#![cfg(feature = "mpi")]

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const CONF: &str = "/etc/slurm-flywheel-multi/slurm.conf";
const NVML_STATE: &str = "/var/tmp/flywheel-fake-nvml";
const NODES: usize = 4;
const GPUS: usize = 2;

/// The turn on the cluster: an exclusive `flock` on a file beside its config, held until
/// dropped (the lock goes with the file descriptor). Under nextest .config/nextest.toml also
/// runs these tests one at a time; under `cargo test` they are threads that wait here.
struct Turn {
    _lock: std::fs::File,
}

impl Turn {
    fn take() -> Turn {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/flywheel-multi-tests.lock")
            .expect("the lock file opens (the tests run as root)");
        // SAFETY: a plain system call on a descriptor this struct owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        Turn { _lock: file }
    }
}

/// A Slurm command on the multi-node cluster.
fn slurm(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.arg("120").arg(program).env("SLURM_CONF", CONF);
    c
}

/// `nodeK STATE GRES` lines of `sinfo -N`.
fn nodes() -> Vec<(String, String, String)> {
    let Ok(o) = slurm("sinfo").args(["-h", "-N", "-o", "%N %T %G"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(str::to_string);
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect()
}

fn cluster_up() -> bool {
    let n = nodes();
    n.len() == NODES
        && n.iter().all(|(_, state, gres)| {
            gres == "gpu:2" && !state.contains("down") && !state.contains("drain")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The fake NVML library, built next to the test binaries (a dev-dependency).
fn fake_nvml_lib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    [
        deps.join("libflywheel_fake_nvml.so"),
        deps.join("deps/libflywheel_fake_nvml.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The cluster, started if need be, with every fake GPU idle and healthy; `None` after a
/// counted skip. Holds the turn until dropped.
fn gpu_cluster() -> Option<Turn> {
    if !is_root() {
        available(false, "the multi-node local Slurm cluster (it needs root)");
        return None;
    }
    let turn = Turn::take();
    if !cluster_up() && Command::new("nsenter").arg("--version").output().is_ok() {
        let mut start = Command::new(root().join("slurm/local-cluster.sh"));
        start.args(["start", "--nodes", "4", "--gpus-per-node", "2"]);
        if let Some(lib) = fake_nvml_lib() {
            start.env("FLYWHEEL_FAKE_NVML_LIB", lib);
        }
        let o = run(&mut start);
        assert!(
            o.status.success(),
            "slurm/local-cluster.sh start --nodes 4 failed"
        );
    }
    if !available(
        cluster_up(),
        "the multi-node local Slurm cluster (slurm/local-cluster.sh start --nodes 4 --gpus-per-node 2, as root)",
    ) {
        return None;
    }
    for k in 1..=NODES {
        for g in 0..GPUS {
            set_gpu(
                k,
                g,
                &[
                    ("util", "0"),
                    ("mem_used_mb", "0"),
                    ("ecc_uncorrected", "0"),
                    ("lost", "0"),
                ],
            );
        }
    }
    Some(turn)
}

fn gpu_file(node: usize, gpu: usize) -> PathBuf {
    Path::new(NVML_STATE).join(format!("node{node}-gpu{gpu}"))
}

/// Sets keys of a fake GPU's state file, keeping the others.
fn set_gpu(node: usize, gpu: usize, kv: &[(&str, &str)]) {
    let path = gpu_file(node, gpu);
    let text = std::fs::read_to_string(&path).expect("the fake GPU's file exists");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !kv.iter().any(|(k, _)| l.starts_with(&format!("{k}="))))
        .map(str::to_string)
        .collect();
    lines.extend(kv.iter().map(|(k, v)| format!("{k}={v}")));
    // Written whole and renamed, so NVML never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").expect("the test writes its file");
    std::fs::rename(&tmp, &path).expect("the file is renamed");
}

/// The (node, GPU) whose file holds `uuid`.
fn gpu_with_uuid(uuid: &str) -> (usize, usize) {
    for k in 1..=NODES {
        for g in 0..GPUS {
            let text = std::fs::read_to_string(gpu_file(k, g)).unwrap_or_default();
            if text.lines().any(|l| l == format!("uuid={uuid}")) {
                return (k, g);
            }
        }
    }
    panic!("no fake GPU has UUID {uuid}");
}

/// Waits until every node is idle again (the last test's job has left).
fn wait_idle(limit: Duration) {
    let start = Instant::now();
    while !nodes().iter().all(|(_, s, _)| s == "idle") {
        assert!(
            start.elapsed() < limit,
            "nodes not idle after {limit:?}: {:?}",
            nodes()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn four_nodes_with_two_gpus_each_bind_one_gpu_per_task() {
    let Some(_turn) = gpu_cluster() else { return };
    wait_idle(Duration::from_secs(300));
    let n = nodes();
    assert_eq!(
        n.iter()
            .map(|(name, _, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["node1", "node2", "node3", "node4"]
    );
    assert!(
        n.iter().all(|(_, s, g)| s == "idle" && g == "gpu:2"),
        "{n:?}"
    );

    let o = run(slurm("srun").args(["-l", "--gpus-per-task=1", "-n", "8", "env"]));
    assert!(o.status.success(), "srun failed");
    // `-l` prefixes every line with its task: gather each task's node and GPUs.
    let mut tasks = std::collections::BTreeMap::<u32, (String, String, String)>::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let Some((task, var)) = line.split_once(": ") else {
            continue;
        };
        let Ok(task) = task.trim().parse::<u32>() else {
            continue;
        };
        let t = tasks.entry(task).or_default();
        if let Some(v) = var.strip_prefix("SLURMD_NODENAME=") {
            t.0 = v.to_string();
        } else if let Some(v) = var.strip_prefix("SLURM_STEP_GPUS=") {
            t.1 = v.to_string();
        } else if let Some(v) = var.strip_prefix("CUDA_VISIBLE_DEVICES=") {
            t.2 = v.to_string();
        }
    }
    assert_eq!(tasks.len(), 8, "{tasks:?}");
    let bindings: BTreeSet<(String, String)> = tasks
        .values()
        .map(|(node, step_gpu, cvd)| {
            assert!(
                !cvd.is_empty() && !step_gpu.is_empty(),
                "every task has one GPU: {tasks:?}"
            );
            (node.clone(), step_gpu.clone())
        })
        .collect();
    assert_eq!(
        bindings.len(),
        8,
        "8 distinct (node, GPU) bindings: {tasks:?}"
    );
    // And the tasks' NVML is the fake one, naming the node's GPUs by UUID.
    let o = run(slurm("srun")
        .args(["-w", "node3", "-n", "1", "--gpus-per-task=1"])
        .arg(env!("CARGO_BIN_EXE_flywheel"))
        .arg("gpus"));
    let text = assert_prints(
        &o,
        "flywheel gpus on node3",
        &["GPU 0: Fake NVML GPU GPU-fa4e0003-", "GPU 1: "],
    );
    assert!(text.contains("utilisation 0%"), "{text}");
}

/// A job file on the multi-node cluster: `rows` ids through a Python mapper that sleeps
/// `delay` seconds a row, 10 rows a chunk.
fn gpu_job(dir: &Path, rows: u64, delay: f64, slurm_table: &str) -> (PathBuf, PathBuf, PathBuf) {
    let py = pyarrow_python().expect("checked by setup");
    let input = ids_input(&py, dir, rows);
    let mapper = write_file(
        dir,
        "slow.py",
        &format!(
            "import time\ndef f(row):\n    time.sleep({delay})\n    yield {{'id': row['id']}}\n"
        ),
    );
    let out = dir.join("ids");
    let job = write_file(
        dir,
        "job.toml",
        &format!(
            "input = {:?}\noutput = {:?}\nmapper = \"{}:f\"\nchunk_rows = 10\npython = {:?}\n[slurm]\ntime = \"00:10:00\"\n{slurm_table}",
            input.display().to_string(),
            out.display().to_string(),
            mapper.display(),
            py.display().to_string(),
        ),
    );
    (job, out, py)
}

/// `flywheel submit` on the multi-node cluster; the Slurm job id.
fn submit(job: &Path) -> String {
    let o = run(flywheel().arg("submit").arg(job).env("SLURM_CONF", CONF));
    assert!(o.status.success(), "flywheel submit failed");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Waits for the job to leave the queue; its log.
fn wait_for_job(id: &str, out: &Path, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let o = slurm("squeue")
            .args(["-h", "-j", id, "-o", "%T"])
            .output()
            .expect("squeue runs");
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state.is_empty()
            || !["PENDING", "RUNNING", "CONFIGURING", "COMPLETING"]
                .iter()
                .any(|s| state.contains(s))
        {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still {state} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(out.join("_logs").join(format!("slurm-{id}.out")))
        .unwrap_or_default();
    eprintln!("--- job log\n{log}");
    log
}

/// `flywheel gpus OUT --json`: (host, rank, gpu) of each worker that reported a GPU.
fn worker_gpus(out: &Path) -> Vec<Value> {
    let o = run(flywheel().args(["gpus", "--json"]).arg(out));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap_or_default()
}

/// Seconds since the epoch of a log line's RFC 3339 UTC timestamp (tracing's format).
fn log_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<f64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2])
}

#[test]
fn a_gpu_with_an_uncorrectable_ecc_error_drains_its_worker_and_the_job_completes() {
    let Some(_turn) = gpu_cluster() else { return };
    let Some((_, dir)) = setup() else { return };
    wait_idle(Duration::from_secs(300));
    set_utilisations();
    let (job, out, py) = gpu_job(
        dir.path(),
        600,
        0.1,
        "nodes = 4\nntasks_per_node = 2\ngpus_per_task = 1\n",
    );
    let id = submit(&job);
    // Mid-job: once a few chunks are in, one working worker's GPU gets an uncorrectable error.
    let start = Instant::now();
    let (host, uuid) = loop {
        let gpus = worker_gpus(&out);
        let picked = (accepted_chunks(&out) >= 5)
            .then(|| gpus.iter().find(|w| w["gpu"]["uuid"].is_string()))
            .flatten();
        if let Some(w) = picked {
            break (
                w["host"].as_str().unwrap_or_default().to_string(),
                w["gpu"]["uuid"].as_str().unwrap_or_default().to_string(),
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no worker reported a GPU: {gpus:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (node, gpu) = gpu_with_uuid(&uuid);
    assert_eq!(
        host,
        format!("node{node}"),
        "the worker runs on the node that has its GPU"
    );
    let flipped = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    set_gpu(node, gpu, &[("ecc_uncorrected", "1")]);
    let log = wait_for_job(&id, &out, Duration::from_secs(420));
    set_gpu(node, gpu, &[("ecc_uncorrected", "0")]);

    let why = format!("node{node} GPU {uuid}: 1 uncorrected ECC error(s)");
    let warned = log
        .lines()
        .find(|l| l.contains(&why) && l.contains("no more chunks"))
        .unwrap_or_else(|| panic!("the coordinator logs the drain naming {why}: {log}"));
    let after = log_time(warned).expect("a timestamped log line") - flipped;
    eprintln!("drained {after:.2} s after the GPU fell sick");
    assert!(
        after < 2.0,
        "drained {after:.2} s after the GPU fell sick: more than 2 heartbeats (1 s each)"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("worker") && l.contains(&format!("(drained: {why})"))),
        "the report names the node and the GPU: {log}"
    );
    // Nothing lost, nothing twice: the table is every row, in order.
    assert_eq!(ids(&py, &out, None), (0..600).collect::<Vec<_>>());
    let status = status_of(&out);
    assert!(
        status.contains("finished: published version 1") && status.contains("chunks 60/60"),
        "{status}"
    );
    // Every worker owned its own GPU and reported what that fake GPU said.
    let workers = assert_gpus_reported(&out, &status);
    assert_eq!(
        workers, 8,
        "8 tasks are 8 workers (rank 0's too), each reported its GPU"
    );
}

/// Every fake GPU reports its own utilisation: 10·node + 5·gpu percent, and memory in use
/// 1000·node + gpu MiB.
fn util(node: usize, gpu: usize) -> usize {
    10 * node + 5 * gpu
}

fn set_utilisations() {
    for k in 1..=NODES {
        for g in 0..GPUS {
            set_gpu(
                k,
                g,
                &[
                    ("util", &util(k, g).to_string()),
                    ("mem_used_mb", &(1000 * k + g).to_string()),
                ],
            );
        }
    }
}

/// The report in the manifest shows, per worker, a GPU of its own node that no other worker
/// owned, with that GPU's utilisation and memory, and `flywheel status` shows it for each worker
/// that finished a chunk; returns how many workers.
fn assert_gpus_reported(out: &Path, status: &str) -> usize {
    let report = &info(out)["report"];
    let workers = report["workers"]
        .as_array()
        .expect("the report lists workers");
    let mut owned = BTreeSet::new();
    let mut in_status = 0;
    for w in workers {
        let uuid = w["gpu_uuid"]
            .as_str()
            .unwrap_or_else(|| panic!("worker owns a GPU: {w}"));
        let (k, g) = gpu_with_uuid(uuid);
        assert_eq!(w["host"].as_str(), Some(format!("node{k}").as_str()), "{w}");
        assert_eq!(
            w["gpu_utilization"].as_f64(),
            Some(util(k, g) as f64),
            "{w}"
        );
        assert_eq!(
            w["gpu_last_utilization"].as_u64(),
            Some(util(k, g) as u64),
            "{w}"
        );
        assert_eq!(
            w["gpu_memory_mb"][0].as_u64(),
            Some((1000 * k + g) as u64),
            "{w}"
        );
        assert!(owned.insert(uuid.to_string()), "two workers own {uuid}");
        // Status reads the journal, where a worker's GPU comes with each chunk it finished: a
        // worker whose every chunk was taken by faster ones (work stealing on a loaded
        // machine; rank 0 also coordinates) has no line there, only in the report.
        if w["chunks"].as_u64() == Some(0) {
            continue;
        }
        let line = format!(
            "GPU {uuid} (Fake NVML GPU, NVML index {g}) utilisation last {u}% mean {u}%",
            u = util(k, g)
        );
        assert!(
            status
                .lines()
                .any(|l| l.contains(&format!("node{k}")) && l.contains(&line)),
            "status shows {line}: {status}"
        );
        in_status += 1;
    }
    assert!(
        in_status * 2 >= workers.len(),
        "most workers finished a chunk and show their GPU in status: {status}"
    );
    let n = workers.len();
    assert!(
        report["gpu"]
            .as_str()
            .is_some_and(|g| g.contains(&format!("over {n} GPU(s)"))),
        "{report}"
    );
    n
}

#[test]
fn eight_workers_on_four_nodes_each_own_one_gpu_and_report_its_utilisation() {
    let Some(_turn) = gpu_cluster() else { return };
    let Some((_, dir)) = setup() else { return };
    wait_idle(Duration::from_secs(300));
    set_utilisations();
    let (job, out, py) = gpu_job(dir.path(), 400, 0.02, "nodes = 4\ngpus_per_node = 2\n");
    let id = submit(&job);
    let log = wait_for_job(&id, &out, Duration::from_secs(420));
    assert_eq!(ids(&py, &out, None), (0..400).collect::<Vec<_>>(), "{log}");
    let report = &info(&out)["report"];
    assert!(
        report["workers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["rank"] == 0)),
        "rank 0 runs a worker too: {report}"
    );
    let status = status_of(&out);
    assert_eq!(
        assert_gpus_reported(&out, &status),
        8,
        "8 tasks are 8 workers, each with its GPU"
    );
}

/// A node taken away by the test, brought back when the test ends, however it ends.
struct LostNode(Option<usize>);

impl LostNode {
    fn restore(&mut self) {
        if let Some(k) = self.0.take() {
            let o = run(Command::new(root().join("slurm/local-multi-cluster.sh"))
                .args(["restore-node", &k.to_string()])
                .env("SLURM_CONF", CONF));
            assert!(o.status.success(), "node{k} did not come back");
        }
    }
}

impl Drop for LostNode {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.restore();
        } else if let Some(k) = self.0.take() {
            let _ = Command::new(root().join("slurm/local-multi-cluster.sh"))
                .args(["restore-node", &k.to_string()])
                .status();
        }
    }
}

/// A field of `scontrol show job -o ID`.
fn job_field(id: &str, key: &str) -> String {
    let o = slurm("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .expect("scontrol runs");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_default()
}

/// Chunks per worker line of the report that follows `after` in `log`: (host, chunks).
fn report_after(log: &str, after: &str) -> Vec<(String, usize)> {
    let from = log.find(after).unwrap_or(log.len());
    log[from..]
        .lines()
        .filter(|l| l.trim_start().starts_with("worker "))
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip(2);
            let host = f.next()?.to_string();
            let chunks = l
                .split("chunks")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((host, chunks))
        })
        .collect()
}

#[test]
fn a_node_lost_mid_job_the_job_completes_in_the_same_allocation_on_the_nodes_left() {
    let Some(_turn) = gpu_cluster() else { return };
    let Some((_, dir)) = setup() else { return };
    wait_idle(Duration::from_secs(300));
    // 500 rows at 0.4 s over 8 workers: about 25 s of work. The job has its nodes to itself,
    // so taking one away touches no other job.
    let (job, out, py) = gpu_job(
        dir.path(),
        500,
        0.4,
        "nodes = 4\ngpus_per_node = 2\nextra = [\"--exclusive\"]\n",
    );
    let id = submit(&job);
    let start = Instant::now();
    while accepted_chunks(&out) < 8 {
        assert!(start.elapsed() < Duration::from_secs(240), "no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Mid-job, a node other than the one running the batch script crashes: its slurmd, its
    // slurmstepd and its two worker ranks are killed at once.
    let batch_host = job_field(&id, "BatchHost");
    let victim = (1..=NODES)
        .rev()
        .find(|k| format!("node{k}") != batch_host)
        .expect("a node besides the batch host");
    let mut lost = LostNode(Some(victim));
    let o = run(Command::new(root().join("slurm/local-multi-cluster.sh"))
        .args(["lose-node", &victim.to_string()]));
    assert!(o.status.success(), "lose-node {victim}");
    let taken_at = accepted_chunks(&out);
    assert!(
        taken_at < 50,
        "the node went while the job ran ({taken_at} chunks done)"
    );

    // The job completes in the same allocation: no continuation, one Slurm job.
    let start = Instant::now();
    while !has_version(&out) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no version 5 min after node{victim} went: {:?}",
            std::fs::read_to_string(out.join("_logs").join(format!("slurm-{id}.out")))
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    lost.restore();
    let log = wait_for_job(&id, &out, Duration::from_secs(300));
    assert_eq!(
        ids(&py, &out, None),
        (0..500).collect::<Vec<_>>(),
        "every row once, in order"
    );
    let v = info(&out);
    assert_eq!(v["version"], 1, "published once");
    assert_eq!(
        v["lineage"]["slurm_job_ids"],
        serde_json::json!([id]),
        "no continuation: {log}"
    );
    let steps: Vec<&str> = v["lineage"]["slurm_steps"]
        .as_array()
        .expect("the lineage lists the steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        steps.len() >= 2
            && steps[0] == format!("{id}.0")
            && steps.iter().all(|s| s.starts_with(&format!("{id}."))),
        "the lineage lists the first step and the one(s) after the loss: {steps:?}"
    );
    assert!(
        status_of(&out).contains(&format!("slurm steps: {}", steps.join(", "))),
        "status lists the steps"
    );
    // The script saw the node go and started the next step on the three left, resuming.
    let left: Vec<String> = (1..=NODES)
        .filter(|k| *k != victim)
        .map(|k| format!("node{k}"))
        .collect();
    assert!(
        log.contains("with 1 of 4 node(s) lost")
            && log.contains(&format!(
                "starting a new step on {}, resuming",
                left.join(",")
            )),
        "{log}"
    );
    // Accepted chunks were never redone: the new step ran exactly the ones the journal lacked,
    // on the nodes left, and the journal accepted each chunk once.
    let resumed = log
        .lines()
        .find_map(|l| l.strip_prefix("resuming: "))
        .and_then(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("the new step resumed: {log}"));
    assert!(resumed >= taken_at, "{resumed} < {taken_at}");
    let second = report_after(&log, "resuming: ");
    assert_eq!(
        second.iter().map(|(_, c)| c).sum::<usize>(),
        50 - resumed,
        "{log}"
    );
    assert_eq!(second.len(), 6, "6 workers on the 3 nodes left: {second:?}");
    assert!(
        second
            .iter()
            .all(|(host, _)| host != &format!("node{victim}")),
        "{second:?}"
    );
    assert_eq!(accepted_chunks(&out), 50, "each chunk accepted once");
}
