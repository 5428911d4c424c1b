//! Warm restarts: a Python mapper's processes are forked by a fork server per worker that has
//! imported the mapper's module once (docs/protocol.md, "Warm restarts"), with real processes.

use crate::support::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A mapper module that notes every import of itself (`imports/PID`) and every `start()`
/// (`starts/PID-PPID`), and dies half-way through the first attempt of every 5th chunk.
fn crashing_mapper(dir: &Path, preamble: &str) -> String {
    for sub in ["imports", "starts", "marks"] {
        std::fs::create_dir_all(dir.join(sub)).expect("the folder is made");
    }
    let code = format!(
        r#"import os
{preamble}
DIR = {dir:?}
open(os.path.join(DIR, "imports", str(os.getpid())), "w").close()

class Crashy:
    def start(self):
        open(os.path.join(DIR, "starts", f"{{os.getpid()}}-{{os.getppid()}}"), "w").close()
        self.chunk, self.seen = None, 0

    def __call__(self, row):
        chunk = int(os.environ["FLYWHEEL_CHUNK"])
        if chunk != self.chunk:
            self.chunk, self.seen = chunk, 0
        self.seen += 1
        mark = os.path.join(DIR, "marks", str(chunk))
        if chunk % 5 == 0 and self.seen == 10 and not os.path.exists(mark):
            open(mark, "w").close()
            os._exit(17)
        yield {{"id": row["id"]}}
"#,
        dir = dir.display().to_string(),
    );
    format!("{}:Crashy", write_file(dir, "crashy.py", &code).display())
}

/// The names of the files in `dir/sub`.
fn names(dir: &Path, sub: &str) -> Vec<String> {
    std::fs::read_dir(dir.join(sub))
        .expect("the folder is listed")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Runs the crashing mapper over the dialogues (2 workers, 25 chunks, 5 of them crashing once);
/// returns (pids that imported the module, (pid, parent pid) of every start()).
fn crash_and_restart(
    dir: &Path,
    preamble: &str,
    env: &[(&str, &str)],
) -> (BTreeSet<u32>, Vec<(u32, u32)>) {
    let py = pyarrow_or_skip().expect("checked by the caller");
    let mapper = crashing_mapper(dir, preamble);
    let map = env.iter().fold(
        Map::dialogues(dir.join("t"))
            .workers(2)
            .chunk_rows(20)
            .max_attempts(3)
            .mapper(mapper)
            .within(Duration::from_secs(120)),
        |m, (k, v)| m.env(k, v),
    );
    let o = map.run();
    o.assert_ok("a job whose mapper crashes 5 times");
    assert_eq!(
        o.ids(&py),
        (0..500).collect::<Vec<_>>(),
        "every row, once, in order"
    );
    assert!(
        o.stderr_text().contains("exited with status 17"),
        "each crash is reported with its exit status"
    );
    assert_eq!(names(dir, "marks").len(), 5, "5 chunks crashed once");
    let imports = names(dir, "imports")
        .iter()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    let starts = names(dir, "starts")
        .iter()
        .map(|s| {
            let (pid, ppid) = s.split_once('-').expect("PID-PPID");
            (pid.parse().expect("a pid"), ppid.parse().expect("a pid"))
        })
        .collect();
    (imports, starts)
}

#[test]
fn a_crashed_mapper_restarts_from_the_fork_server_without_importing_again() {
    let Some((_, dir)) = setup() else { return };
    let (imports, starts) = crash_and_restart(dir.path(), "", &[]);
    // Each worker's fork server imported the module once; every mapper process — the first and
    // each replacement after a crash — is a child of one of them and ran start() itself.
    assert!(
        (1..=2).contains(&imports.len()),
        "the module was imported once per worker, not per process: {imports:?}"
    );
    assert!(
        starts.len() >= 6,
        "start() ran in each new process (at least one first start and 5 restarts): {starts:?}"
    );
    assert!(
        starts.iter().all(|(_, parent)| imports.contains(parent)),
        "every mapper process was forked by a process that had imported the module: imports {imports:?}, starts {starts:?}"
    );
    let pids: BTreeSet<u32> = starts.iter().map(|(pid, _)| *pid).collect();
    assert_eq!(
        pids.len(),
        starts.len(),
        "each start() in a process of its own"
    );
}

#[test]
fn without_a_usable_fork_server_every_process_starts_fresh() {
    let Some((_, dir)) = setup() else { return };
    // Turned off, and refused by the server itself: a module whose import leaves a thread
    // running cannot be forked from safely.
    let thread = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()";
    for (case, preamble, env) in [
        ("off", "", &[("FLYWHEEL_FORK_SERVER", "0")][..]),
        ("threads", thread, &[][..]),
    ] {
        let sub = dir.path().join(case);
        std::fs::create_dir_all(&sub).expect("the folder is made");
        let (imports, starts) = crash_and_restart(&sub, preamble, env);
        let pids: BTreeSet<u32> = starts.iter().map(|(pid, _)| *pid).collect();
        assert!(starts.len() >= 6, "{case}: a process per start: {starts:?}");
        assert!(
            pids.is_subset(&imports),
            "{case}: every mapper process imported the module itself: imports {imports:?}, starts {starts:?}"
        );
    }
}

/// Whether the process `pid` is gone (or a zombie waiting for whoever inherited it).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn killing_flywheel_kills_its_fork_servers_and_their_mappers() {
    let Some((_, dir)) = setup() else { return };
    let starts = dir.path().join("starts");
    std::fs::create_dir(&starts).expect("the folder is made");
    let m = write_file(
        dir.path(),
        "hang.py",
        &format!(
            "import os, time\nclass Hang:\n    def start(self):\n        open(os.path.join({:?}, f'{{os.getpid()}}-{{os.getppid()}}'), 'w').close()\n    def __call__(self, row):\n        time.sleep(3600)\n        yield row\n",
            starts.display().to_string()
        ),
    );
    let mut child = Map::dialogues(dir.path().join("t"))
        .workers(2)
        .chunk_rows(20)
        .mapper(format!("{}:Hang", m.display()))
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flywheel starts");
    let started = Instant::now();
    let procs = loop {
        let found = names(dir.path(), "starts");
        if found.len() == 2 {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "both mappers started within a minute: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut pids = BTreeSet::new();
    for p in &procs {
        let (pid, server): (u32, u32) = p
            .split_once('-')
            .map(|(a, b)| (a.parse().expect("a pid"), b.parse().expect("a pid")))
            .expect("PID-PPID");
        assert_ne!(server, child.id(), "the mapper was forked by a fork server");
        pids.extend([pid, server]);
    }
    // However flywheel dies, its fork servers and their mapper processes die with it.
    child.kill().expect("flywheel is killed");
    child.wait().expect("flywheel is reaped");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !pids.iter().all(|p| gone(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|p| !gone(*p)).collect();
    assert!(
        left.is_empty(),
        "fork servers and mappers left running: {left:?}"
    );
}
