//! Random draws a mapper makes without seeding anything itself: numpy's global generator is
//! seeded by the runner from the chunk's seed before every attempt (and from the worker's seed
//! before `start()`), so the table is the same for any worker count, crash pattern and
//! fork-server setting, and no value repeats across chunks.

use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// A mapper class drawing from numpy's global generator in `start()` and for every row; with
/// `CRASH` set, the first attempt of every third chunk dies half-way (after drawing).
fn numpy_mapper(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("marks")).expect("the folder is made");
    let code = format!(
        r#"import os
import numpy as np

MARKS = {marks:?}

class Draw:
    def start(self):
        self.at_start = float(np.random.random())
        self.seen = 0

    def begin_chunk(self, seed):
        self.seen = 0

    def __call__(self, row):
        self.seen += 1
        chunk = int(os.environ["FLYWHEEL_CHUNK"])
        r = float(np.random.random())
        mark = os.path.join(MARKS, os.environ.get("CRASH_TAG", "") + "-" + str(chunk))
        if os.environ.get("CRASH") and chunk % 3 == 1 and self.seen == 5 and not os.path.exists(mark):
            open(mark, "w").close()
            os._exit(9)
        yield {{"id": row["id"], "r": r, "worker": int(os.environ["FLYWHEEL_WORKER"]), "at_start": self.at_start}}
"#,
        marks = dir.join("marks").display().to_string()
    );
    py_mapper(dir, "draw.py", &code, "Draw")
}

#[test]
fn unseeded_numpy_draws_are_the_same_for_any_workers_crashes_and_fork_server() {
    let Some((py, dir)) = setup() else {
        return;
    };
    if !available(python_has(&py, "numpy"), "numpy in the test Python") {
        return;
    }
    let input = ids_input(&py, dir.path(), 300);
    let mapper = numpy_mapper(dir.path());
    let mut tables: Vec<(String, Vec<Value>)> = Vec::new();
    for workers in [1, 3] {
        for fork_server in ["1", "0"] {
            for crash in [false, true] {
                let what =
                    format!("{workers} worker(s), fork server {fork_server}, crashes {crash}");
                let out = dir
                    .path()
                    .join(format!("t-{workers}-{fork_server}-{crash}"));
                let mut m = Map::new(&input, &out)
                    .mapper(&mapper)
                    .python(&py)
                    .workers(workers)
                    .chunk_rows(30)
                    .max_attempts(3)
                    .env("FLYWHEEL_FORK_SERVER", fork_server)
                    .env("CRASH_TAG", &what)
                    .within(Duration::from_secs(120));
                if crash {
                    m = m.env("CRASH", "1");
                }
                let o = m.run();
                o.assert_ok(&what);
                if crash {
                    assert!(
                        o.stderr_text().contains("failures 3"),
                        "{what}: {}",
                        o.stderr_text()
                    );
                }
                let rows = o.rows(&py);
                assert_eq!(rows.len(), 300, "{what}");
                // Each worker's processes drew the same value in start(), and different workers
                // different ones.
                let mut at_start: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
                for r in &rows {
                    at_start
                        .entry(r["worker"].as_u64().expect("a worker"))
                        .or_default()
                        .insert(r["at_start"].to_string());
                }
                assert!(
                    at_start.values().all(|s| s.len() == 1),
                    "{what}: start() draws {at_start:?}"
                );
                let starts: BTreeSet<&String> = at_start.values().flatten().collect();
                assert_eq!(
                    starts.len(),
                    at_start.len(),
                    "{what}: start() draws {at_start:?}"
                );
                let drawn: Vec<Value> = rows
                    .iter()
                    .map(|r| serde_json::json!({"id": r["id"], "r": r["r"]}))
                    .collect();
                let distinct: BTreeSet<String> = drawn.iter().map(|r| r["r"].to_string()).collect();
                assert_eq!(distinct.len(), 300, "{what}: a value repeats across chunks");
                tables.push((what, drawn));
            }
        }
    }
    for (what, t) in &tables[1..] {
        assert!(
            t == &tables[0].1,
            "{what} drew other values than {}",
            tables[0].0
        );
    }
}
