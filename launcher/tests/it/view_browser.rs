//! `flywheel view` in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver (fantoccini). Skips loudly where they are not installed (fails in CI).

use crate::support::*;
use crate::view::{media_table, Viewer};
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long anything in the page may take to appear.
const WAIT: Duration = Duration::from_secs(30);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// chromedriver on a free loopback port, and a WebDriver session of headless Chromium.
async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    (driver, client)
}

/// Waits for `css` and returns it.
async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Runs `js` (its value returned, promises awaited) and returns the result.
async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Waits until `script` returns true.
async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + WAIT;
    while js(c, script).await != serde_json::Value::Bool(true) {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first cell of each row on the page.
async fn first_ids(c: &Client) -> Vec<String> {
    let v = js(c, "return [...document.querySelectorAll('#rows tbody tr')].map(r => r.children[1].textContent)").await;
    serde_json::from_value(v).expect("texts")
}

/// Opens the tree nodes along `labels` in row 0's `column` cell, clicks the leaf at the end and
/// returns the copied path and the leaf's value (JSON text).
async fn click_leaf(c: &Client, column: usize, labels: &[&str], leaf: &str) -> (String, String) {
    let cell = format!("#rows tbody tr:first-child td:nth-child({})", column + 2);
    let mut scope = format!("{cell} > details");
    find(c, &format!("{scope} > summary"))
        .await
        .click()
        .await
        .expect("opened");
    for l in labels {
        let key = js(c, &format!(
            "const li = [...document.querySelectorAll('{scope} > ul > li')].find(li => li.firstChild.textContent === {l:?});\
             li.querySelector('details > summary').click(); return [...document.querySelectorAll('{scope} > ul > li')].indexOf(li) + 1"
        )).await;
        scope = format!("{scope} > ul > li:nth-child({key}) > details");
    }
    let got = js(c, &format!(
        "const li = [...document.querySelectorAll('{scope} > ul > li')].find(li => li.firstChild.textContent === {leaf:?});\
         const leaf = li.querySelector('.leaf'); leaf.click();\
         return [document.getElementById('copied').textContent, leaf.dataset.json]"
    )).await;
    serde_json::from_value(got).expect("path and value")
}

/// What `flywheel table show T --row R --path P` prints, as JSON.
fn table_show(table: &Path, row: u64, path: &str) -> serde_json::Value {
    let o = run(flywheel().args(["table", "show"]).arg(table).args([
        "--row",
        &row.to_string(),
        "--path",
        path,
    ]));
    assert!(
        o.status.success(),
        "table show --path {path}: {}",
        stderr_text(&o)
    );
    serde_json::from_slice(&o.stdout).expect("table show prints JSON")
}

#[test]
fn the_viewer_in_a_real_browser() {
    let Some((py, dir)) = setup() else { return };
    if !available(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "chromium and chromium-driver (apt)",
    ) {
        return;
    }
    let served = dir.path().join("served");
    let media = media_table(&py, &served);
    let viewer = Viewer::start(&[&served]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (_driver, c) = browser().await;
        in_the_browser(&c, &viewer, &media).await;
        c.close().await.expect("session closed");
    });
}

async fn in_the_browser(c: &Client, viewer: &Viewer, media: &Path) {
    // The printed address: the tables page, then the table.
    c.goto(&viewer.url).await.expect("opened");
    find(c, "a[href='/t/media@2']")
        .await
        .click()
        .await
        .expect("clicked");
    find(c, "#rows tbody tr").await;
    let ids = first_ids(c).await;
    assert_eq!(ids.len(), 50, "the first page's rows");
    assert_eq!(ids[0], "1000");
    // Images decode; audio is served as WAV.
    until(
        c,
        "thumbnails load",
        "const i = document.querySelector('img.thumb'); return i.complete && i.naturalWidth > 0",
    )
    .await;
    let audio = js(c, "const s = document.querySelector('audio source'); return fetch(s.src).then(r => [s.type, r.headers.get('content-type'), r.status])").await;
    assert_eq!(audio, serde_json::json!(["audio/wav", "audio/wav", 200]));
    assert!(js(c, "return document.querySelector('video source').type").await == "video/mp4");
    assert!(
        js(c, "return document.querySelector('.vector').textContent")
            .await
            .as_str()
            .is_some_and(|t| t.starts_with("vector<1536, fp16> [10, 10.25"))
    );
    // A JSON leaf and a list<struct> leaf copy the path `table show --path` takes.
    let (path, value) = click_leaf(c, 4, &["camera"], "lens").await;
    assert_eq!(path, "meta.camera.lens");
    assert_eq!(
        table_show(media, 0, &path),
        serde_json::from_str::<serde_json::Value>(&value).expect("JSON")
    );
    let (path, value) = click_leaf(c, 5, &["[1]"], "to_sec").await;
    assert_eq!(path, "scenes[1].to_sec");
    assert_eq!(table_show(media, 0, &path).to_string(), value);

    // SQL: the same rows as flywheel query.
    let sql = "SELECT id, caption FROM t WHERE id % 11 = 0 ORDER BY id";
    c.goto(&format!(
        "{}/sql?tables=t%3Dmedia%402&sql={}",
        viewer.base,
        crate::view::percent(sql)
    ))
    .await
    .expect("sql page");
    find(c, "#result-count").await;
    let shown: Vec<Vec<String>> = serde_json::from_value(js(c, "return [...document.querySelectorAll('#result tbody tr')].map(r => [...r.children].slice(1).map(td => td.textContent))").await).expect("rows");
    let o = run(flywheel()
        .args(["query", sql, "--format", "json", "--table"])
        .arg(format!("{}@2", media.display())));
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("query JSON");
    let expected: Vec<Vec<String>> = expected
        .iter()
        .map(|r| {
            vec![
                r["id"].to_string(),
                r["caption"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    assert_eq!(expected.len(), 46);
    let folded: Vec<Vec<String>> = expected
        .iter()
        .map(|r| vec![r[0].clone(), fold(&r[1])])
        .collect();
    assert_eq!(shown, folded);
    // Saved, it is listed on the table's page after a reload.
    find(c, "#save-name")
        .await
        .send_keys("elevens")
        .await
        .expect("typed");
    find(c, "#save").await.click().await.expect("saved");
    until(
        c,
        "the query saves",
        "return document.getElementById('saved').textContent.startsWith('saved as elevens')",
    )
    .await;
    c.goto(&format!("{}/t/media@2", viewer.base))
        .await
        .expect("table page");
    c.refresh().await.expect("reloaded");
    let listed = find(c, "#queries").await.text().await.expect("text");
    assert!(
        listed.contains("elevens") && listed.contains(sql),
        "{listed}"
    );
    // A writing statement in the SQL box is refused with a message.
    c.goto(&format!(
        "{}/sql?tables=t%3Dmedia&sql={}",
        viewer.base,
        crate::view::percent("COPY (SELECT 1) TO '/tmp/x.csv'")
    ))
    .await
    .expect("sql page");
    let error = find(c, "#result .error").await.text().await.expect("text");
    assert!(error.contains("COPY is refused"), "{error}");

    // The version picker: @1's rows.
    c.goto(&format!("{}/t/media@2", viewer.base))
        .await
        .expect("table page");
    find(c, "#version")
        .await
        .select_by_value("1")
        .await
        .expect("picked");
    until(c, "version 1 opens", "return location.pathname === '/t/media@1' && document.querySelectorAll('#rows tbody tr').length === 50").await;
    assert_eq!(first_ids(c).await[0], "0");
}

/// A caption as the page shows it: folded past 200 characters.
fn fold(text: &str) -> String {
    if text.chars().count() <= 200 {
        text.to_string()
    } else {
        let head: String = text.chars().take(200).collect();
        format!("{head}…{text}")
    }
}
