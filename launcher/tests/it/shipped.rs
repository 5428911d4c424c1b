//! The shipped mappers (`flywheel:generate`, `flywheel:embed`) on CPU with tiny random models
//! made in the test, and their checks before any worker starts.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with torch, transformers and pyarrow: $FLYWHEEL_TEST_ML_PYTHON, else .venv-ml.
fn ml_python() -> Option<PathBuf> {
    [
        std::env::var_os("FLYWHEEL_TEST_ML_PYTHON").map(PathBuf::from),
        Some(root().join(".venv-ml/bin/python")),
    ]
    .into_iter()
    .flatten()
    .find(|p| python_has(p, "torch, transformers, pyarrow"))
}

fn ml_or_skip() -> Option<PathBuf> {
    let py = ml_python();
    available(
        py.is_some(),
        "a Python with torch and transformers (scripts/test.sh installs one into .venv-ml when CI=true or FLYWHEEL_TEST_ML=1)",
    );
    py
}

fn tiny_models(py: &Path, dir: &Path) -> PathBuf {
    let models = dir.join("models");
    let o = run(Command::new(py)
        .arg(root().join("launcher/tests/it/make_tiny_models.py"))
        .arg(&models));
    assert!(o.status.success(), "making the tiny models failed");
    models
}

/// A Parquet file with `id` and a text column `name`.
fn texts(py: &Path, path: &Path, column: &str, n: usize) {
    let code = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\nw='the cat sat on the mat and then the dog ran under a red tree'.split()\nrows=[' '.join(w[(i*3+k)%len(w)] for k in range(2+i%5)) for i in range({n})]\npq.write_table(pa.table({{'id': list(range({n})), {column:?}: rows}}), {:?})",
        path.display().to_string()
    );
    let o = run(Command::new(py).args(["-c", &code]));
    assert!(o.status.success());
}

/// What the model tests start with: the Python with torch, a temporary directory with the tiny
/// models (their folder is returned), and an input `in.parquet` of `n` texts in `column`;
/// `None` after a counted skip.
fn ml_setup(column: &str, n: usize) -> Option<(PathBuf, tempfile::TempDir, PathBuf, PathBuf)> {
    let py = ml_or_skip()?;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let models = tiny_models(&py, dir.path());
    let input = dir.path().join("in.parquet");
    texts(&py, &input, column, n);
    Some((py, dir, models, input))
}

/// A shipped mapper (`flywheel:NAME`) over `input` with the model in the folder `model`.
fn shipped_map(py: &Path, (input, out): (&Path, &Path), mapper: &str, model: &Path) -> Map {
    Map::new(input, out)
        .workers(2)
        .mapper(mapper)
        .python(py)
        .mapper_arg(format!("model={}", model.display()))
}

#[test]
fn generate_writes_one_row_per_prompt_in_order_on_cpu() {
    let Some((py, dir, models, prompts)) = ml_setup("prompt", 23) else {
        return;
    };
    let out = dir.path().join("answers");
    let lm = models.join("lm");
    let rows = shipped_map(&py, (&prompts, &out), "flywheel:generate", &lm)
        .chunk_rows(5)
        .mapper_arg("column=prompt")
        .mapper_arg("max_new_tokens=6")
        .run()
        .assert_ok("map")
        .rows(&py);
    assert_eq!(rows.len(), 23, "one row per prompt");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["id"], i, "input order kept");
        assert!(r["generated"].is_string(), "{r}");
        let n = r["completion_tokens"].as_u64().expect("an integer");
        assert!((1..=6).contains(&n), "{r}");
        assert!(r["prompt_tokens"].as_u64().expect("an integer") >= 2, "{r}");
    }
    // Greedy decoding: the version is reproducible from its lineage.
    let o = run(flywheel().arg("rerun").arg(&out));
    assert!(o.status.success(), "a greedy generate rerun matches");
}

#[test]
fn embed_writes_normalised_vectors_of_the_model_width() {
    let Some((py, dir, models, input)) = ml_setup("text", 17) else {
        return;
    };
    let out = dir.path().join("vectors");
    let o = shipped_map(&py, (&input, &out), "flywheel:embed", &models.join("enc"))
        .chunk_rows(4)
        .mapper_arg("batch_size=3")
        .run();
    assert!(o.status.success());
    let info = info(&out);
    assert!(
        info["schema_text"]
            .as_str()
            .expect("a string")
            .contains("embedding: vector<24, fp16>"),
        "{}",
        info["schema_text"]
    );
    let rows = o.rows(&py);
    assert_eq!(rows.len(), 17);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["id"], i);
        let v: Vec<f64> = r["embedding"]
            .as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect();
        assert_eq!(v.len(), 24, "the model's width");
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 0.01, "normalised: {norm}");
    }
}

#[test]
fn bad_configurations_fail_before_any_worker_starts() {
    let Some((py, dir)) = setup() else { return };
    let prompts = dir.path().join("prompts.parquet");
    texts(&py, &prompts, "prompt", 5);
    // A model directory flywheel accepts (a config.json) without loading it.
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).expect("the folder is made");
    std::fs::write(model.join("config.json"), r#"{"hidden_size": 8}"#)
        .expect("the test writes its file");
    let out = dir.path().join("out");
    let fails = |mapper: &str, args: &[String], python: &Path, expect: &[&str]| {
        let o = args
            .iter()
            .fold(
                Map::new(&prompts, &out)
                    .workers(2)
                    .mapper(mapper)
                    .python(python),
                |m, a| m.mapper_arg(a),
            )
            .run();
        assert_eq!(o.code(), Some(2), "{mapper} {args:?}");
        let err = o.stderr_text();
        for e in expect {
            assert!(err.contains(e), "expected {e:?} in: {err}");
        }
        assert!(!err.contains("progress:"), "no chunk ran: {err}");
        assert!(!out.exists(), "nothing written");
    };
    let m = format!("model={}", model.display());
    fails(
        "flywheel:generate",
        &["model=/no/such/model".into()],
        &py,
        &["model directory /no/such/model does not exist"],
    );
    fails(
        "flywheel:generate",
        &[],
        &py,
        &["needs --mapper-arg model=DIR"],
    );
    fails(
        "flywheel:generate",
        &[m.clone(), "column=question".into()],
        &py,
        &["no column 'question'", "columns: id, prompt"],
    );
    fails(
        "flywheel:embed",
        &[m.clone(), "column=prompt".into(), "temperature=1".into()],
        &py,
        &["takes no --mapper-arg 'temperature'"],
    );
    fails(
        "flywheel:generate",
        &[m.clone(), "top_p=2".into()],
        &py,
        &["top_p=2: expected a number in (0, 1]"],
    );
    fails(
        "flywheel:summarise",
        std::slice::from_ref(&m),
        &py,
        &["unknown mapper 'flywheel:summarise'"],
    );
    // A Python without the libraries: named with the missing modules.
    let lacks_torch = !python_has(&py, "torch");
    if lacks_torch {
        fails(
            "flywheel:embed",
            &[m.clone(), "column=prompt".into()],
            &py,
            &[
                &format!("in the Python '{}'", py.display()),
                "cannot import torch",
            ],
        );
    }
    fails(
        "flywheel:embed",
        &[m, "column=prompt".into()],
        Path::new("/no/such/python"),
        &["cannot run the Python '/no/such/python'"],
    );
}
