//! `flywheel view`: the real server over real HTTP (a raw socket: exactly the bytes sent), its
//! token, its refusals (traversal, symlinks out of a table, writing SQL, bad names) and its
//! saved queries. The browser test is view_browser.rs.

use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Tests' flywheel view, killed when dropped.
pub struct Viewer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: String,
    /// The whole first line's address.
    pub url: String,
}

impl Viewer {
    pub fn start(paths: &[&Path]) -> Viewer {
        let mut child = flywheel()
            .arg("view")
            .args(paths)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("flywheel view starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("flywheel view printed no address within 30 s");
            }
        };
        let url = line
            .trim_end()
            .strip_prefix("flywheel view: ")
            .unwrap_or_else(|| panic!("first line is the address: {line:?}"))
            .to_string();
        let (base, token) = url.split_once("/?token=").expect("URL with a token");
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "binds loopback: {url}"
        );
        Viewer {
            child,
            base: base.to_string(),
            token: token.to_string(),
            url: url.clone(),
        }
    }

    fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// One request with `headers`; the status, the response's headers and body.
    pub fn request(&self, method: &str, target: &str, headers: &[String], body: &str) -> Reply {
        let mut s = TcpStream::connect(self.address()).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address()
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).expect("request sent");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("response read");
        Reply::parse(&raw)
    }

    /// A request with the token's cookie.
    pub fn get(&self, target: &str) -> Reply {
        self.request("GET", target, &[self.cookie()], "")
    }

    pub fn post(&self, target: &str, body: &serde_json::Value) -> Reply {
        self.request("POST", target, &[self.cookie()], &body.to_string())
    }

    fn cookie(&self) -> String {
        format!("Cookie: {}={}", self.cookie_name(), self.token)
    }

    /// The token's cookie is named after the viewer's port (one browser, several viewers).
    pub fn cookie_name(&self) -> String {
        let port = self.address().rsplit(':').next().unwrap_or_default();
        format!("flywheel_view_token_{port}")
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head}"));
        // Bodies here are small: axum sends them whole (or chunked, which JSON never is here).
        Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON ({e}): {}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn view_mapper() -> String {
    format!(
        "{}:ViewMedia",
        root().join("launcher/tests/it/view_media.py").display()
    )
}

pub const VIEW_SCHEMA: &str = "id: int, image: image, audio: audio, video: video, meta: json, scenes: list<from_sec: int, to_sec: int>, emb: list<vector<1536, fp16>>, caption: str";

/// `DIR/media`: version 1 holds ids 0..500, version 2 (an overwrite) ids 1000..1500.
pub fn media_table(py: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("media");
    for (mode, offset) in [("create", "0"), ("overwrite", "1000")] {
        Map::dialogues(&out)
            .python(py)
            .workers(2)
            .chunk_rows(100)
            .schema(VIEW_SCHEMA)
            .mapper(view_mapper())
            .mapper_arg(format!("offset={offset}"))
            .mode(mode)
            .run()
            .assert_ok("the media table");
    }
    out
}

#[test]
fn the_token_is_needed_and_a_first_visit_sets_its_cookie() {
    let Some((py, dir)) = setup() else { return };
    let served = dir.path().join("served");
    media_table(&py, &served);
    let v = Viewer::start(&[&served]);
    let none = v.request("GET", "/api/tables", &[], "");
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.body.contains("error: this viewer needs its token"),
        "{}",
        none.body
    );
    assert!(!none.body.contains("panicked") && !none.body.contains("backtrace"));
    let wrong = v.request("GET", "/api/tables?token=0123", &[], "");
    assert_eq!(wrong.status, 401);
    let bad_cookie = v.request(
        "GET",
        "/api/tables",
        &[format!("Cookie: {}=abc", v.cookie_name())],
        "",
    );
    assert_eq!(bad_cookie.status, 401);
    // The right token under another viewer's cookie name is not this viewer's.
    let other = v.request(
        "GET",
        "/api/tables",
        &[format!("Cookie: flywheel_view_token_1={}", v.token)],
        "",
    );
    assert_eq!(other.status, 401);
    let first = v.request("GET", &format!("/?token={}", v.token), &[], "");
    assert_eq!(
        first.status, 303,
        "the token leaves the address bar: {}",
        first.head
    );
    assert!(
        first
            .head
            .contains(&format!("{}={}", v.cookie_name(), v.token))
            && first.head.contains("HttpOnly"),
        "{}",
        first.head
    );
    let tables = v.get("/api/tables").json();
    assert_eq!(tables["tables"][0]["name"], "media");
    assert_eq!(tables["tables"][0]["rows"], 500);
    assert_eq!(tables["tables"][0]["versions"], 2);
    let page = v.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("content-security-policy"),
        "{}",
        page.head
    );
    let missing = v.get("/nothing/here");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .contains("error: nothing is served at /nothing/here"),
        "{}",
        missing.body
    );
}

#[test]
fn traversal_symlinks_out_and_writing_sql_are_refused() {
    let Some((py, dir)) = setup() else { return };
    let served = dir.path().join("served");
    let media = media_table(&py, &served);
    // A table whose first data file is a symlink to a copy outside the served tables (the
    // copy is sound Parquet: only where it lies is wrong).
    let leaky = served.join("leaky");
    Map::new(ids_input(&py, dir.path(), 30), &leaky)
        .identity()
        .chunk_rows(10)
        .run()
        .assert_ok("leaky");
    let first = info(&leaky)["files"][0]["path"]
        .as_str()
        .expect("a file")
        .to_string();
    let outside = dir.path().join("outside.parquet");
    std::fs::copy(leaky.join(&first), &outside).expect("copied out");
    std::fs::remove_file(leaky.join(&first)).expect("removed");
    std::os::unix::fs::symlink(&outside, leaky.join(&first)).expect("symlinked");
    // A directory symlinked in from outside is not served.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::os::unix::fs::symlink(&media, elsewhere.join("media-link")).expect("symlinked");
    std::os::unix::fs::symlink(&elsewhere, served.join("linked")).expect("symlinked");
    let v = Viewer::start(&[&served]);
    let names: Vec<String> = v.get("/api/tables").json()["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        ["leaky", "media"],
        "the symlinked directory is not followed"
    );

    for target in [
        "/../../../etc/passwd",
        "/t/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/%252e%252e%252fCargo.toml",
        "/api/info?t=..%2F..%2Fetc",
        "/api/media?t=media%401&row=0&path=..",
    ] {
        let r = v.get(target);
        assert_eq!(r.status, 400, "{target}: {}", r.body);
        assert!(
            r.body
                .contains("error: a path with &#39;..&#39; (or an encoded one) is refused"),
            "{target}: {}",
            r.body
        );
    }
    let r = v.get("/api/info?t=linked/media-link");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = v.get("/api/rows?t=leaky@1&offset=0&limit=5");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.error()
            .contains("resolves outside the table leaky; refused"),
        "{}",
        r.body
    );
    // Rows in the files that are inside still read.
    let r = v.get("/api/rows?t=leaky@1&offset=20&limit=5");
    assert_eq!(r.status, 200, "{}", r.body);

    let tables = serde_json::json!({"t": "media@2"});
    for (sql, says) in [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY is refused"),
        ("CREATE TABLE x AS SELECT 1", "CREATE is refused"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE is refused",
        ),
        ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
    ] {
        let r = v.post(
            "/api/sql",
            &serde_json::json!({"sql": sql, "tables": tables}),
        );
        assert_eq!(r.status, 400, "{sql}: {}", r.body);
        assert!(
            r.error().contains(says) && r.error().contains("refused"),
            "{sql}: {}",
            r.body
        );
        let r = v.post(
            "/api/queries",
            &serde_json::json!({"table": "media", "name": "w", "sql": sql, "tables": tables}),
        );
        assert_eq!(r.status, 400, "saving {sql}: {}", r.body);
    }
    for name in ["../evil", "a/b", "", ".hidden", "x".repeat(65).as_str()] {
        let r = v.post("/api/queries", &serde_json::json!({"table": "media", "name": name, "sql": "SELECT 1", "tables": tables}));
        assert_eq!(r.status, 400, "name {name:?}: {}", r.body);
    }
    assert!(!media.join("_queries").join("w.json").exists());
}

#[test]
fn rows_values_sql_and_saved_queries_over_http() {
    let Some((py, dir)) = setup() else { return };
    let served = dir.path().join("served");
    let media = media_table(&py, &served);
    let v = Viewer::start(&[&media]);
    let page = v.get("/api/rows?t=media@2&offset=450&limit=10").json();
    assert_eq!(page["total"], 500);
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(10));
    assert_eq!(page["rows"][0][0]["v"], 1450, "id of row 450 of version 2");
    assert_eq!(page["rows"][0][1]["k"], "media");
    assert_eq!(
        page["rows"][0][6]["items"][0]["shape"],
        serde_json::json!([1536])
    );
    let old = v.get("/api/rows?t=media@1&offset=450&limit=1").json();
    assert_eq!(old["rows"][0][0]["v"], 450, "version 1 keeps its rows");
    let png = v.get("/api/media?t=media@2&row=3&path=image");
    assert_eq!(png.status, 200);
    assert!(
        png.head.to_lowercase().contains("content-type: image/png"),
        "{}",
        png.head
    );
    let lens = v.get("/api/media?t=media@2&row=3&path=meta.camera.lens");
    assert_eq!(lens.body, "wide");
    let r = v.get("/api/media?t=media@2&row=3&path=meta.nothing");
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("no value at 'meta.nothing' in row 3"),
        "{}",
        r.body
    );
    let r = v.get("/api/rows?t=media@7");
    assert_eq!(r.status, 404, "{}", r.body);

    let ask = serde_json::json!({"sql": "SELECT id FROM t WHERE id % 100 = 0 ORDER BY id", "tables": {"t": "media"}});
    let res = v.post("/api/sql", &ask).json();
    let ids: Vec<i64> = res["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0]["v"].as_i64().expect("an id"))
        .collect();
    assert_eq!(ids, [1000, 1100, 1200, 1300, 1400]);
    let csv = v.get(&format!("/api/sql.csv?q={}", percent(&ask.to_string())));
    assert_eq!(csv.body, "id\n1000\n1100\n1200\n1300\n1400\n");

    let save = serde_json::json!({"table": "media", "name": "hundreds", "sql": "SELECT id FROM t WHERE id % 100 = 0", "tables": {"t": "media"}, "who": "ada"});
    assert_eq!(v.post("/api/queries", &save).status, 200);
    let again = v.post("/api/queries", &save);
    assert_eq!(again.status, 409, "no replace: {}", again.body);
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(media.join("_queries/hundreds.json")).expect("stored"),
    )
    .expect("JSON");
    assert_eq!(
        stored["tables"]["t"], "media@2",
        "stored at the version it read"
    );
    assert_eq!(stored["who"], "ada");
    let uses = v.get("/api/info?t=media@1").json()["queries"].clone();
    assert_eq!(uses[0]["name"], "hundreds");

    let stats = v.get("/api/stats?t=media@2").json();
    let id = &stats["columns"][0];
    assert_eq!(
        (id["min"].as_i64(), id["max"].as_i64()),
        (Some(1000), Some(1499))
    );
    let counts: u64 = id["histogram"]["bins"]["counts"]
        .as_array()
        .expect("bins")
        .iter()
        .filter_map(|c| c.as_u64())
        .sum();
    assert_eq!(counts, 500);
    let lineage = v.get("/api/lineage?t=media@2").json();
    assert_eq!(lineage["versions"][1]["changes"]["rows"], 0);
    assert_eq!(lineage["versions"][1]["changes"]["files_removed"], 5);
    let job = v.get("/api/job?t=media@2").json();
    let chunks: usize = job["timeline"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["chunks"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(chunks, 5);
}

/// Percent-encodes a query parameter.
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_running_job_on_a_served_table_shows_its_progress() {
    let Some((py, dir)) = setup() else { return };
    let out = dir.path().join("served").join("ids");
    let input = ids_input(&py, dir.path(), 40);
    Map::new(&input, &out)
        .identity()
        .run()
        .assert_ok("version 1");
    let slow = py_mapper(
        dir.path(),
        "slow.py",
        "import time\n\ndef f(row):\n    time.sleep(0.1)\n    return row\n",
        "f",
    );
    let v = Viewer::start(&[&out]);
    let progress = || v.get("/api/progress?t=ids").json()["progress"].clone();
    assert!(
        progress()["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("finished")),
        "{}",
        progress()
    );
    let mut child = Map::new(&input, &out)
        .mapper(slow)
        .python(&py)
        .chunk_rows(2)
        .workers(1)
        .mode("append")
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flywheel starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let p = progress();
        if p["state"] == "running" && p["chunks_done"].as_u64().is_some_and(|n| n >= 1) {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress shown: {p}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen["chunks"], 20);
    assert!(
        seen["rows_done"]
            .as_u64()
            .is_some_and(|n| (2..40).contains(&n)),
        "{seen}"
    );
    assert_eq!(seen["workers"][0]["rank"], 1);
}
