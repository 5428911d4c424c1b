//! The bad-input corpus (`tests/bad/`, made by `tests/make_bad_inputs.py`): every file in it is
//! refused through the public API, planning or reading, with an error (never a panic, never Ok)
//! that names the file and says what `tests/bad/EXPECTED.tsv` expects.

use flywheel_formats::{plan_chunks, read_slice, resolve_input, FormatError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

/// The build the expectations are for: `hdf5` or `default` (an entry for `any` holds in both).
fn build() -> &'static str {
    if cfg!(feature = "hdf5") {
        "hdf5"
    } else {
        "default"
    }
}

/// EXPECTED.tsv: `file <TAB> build <TAB> substring of the error`, `#` lines are comments. Returns
/// every file named (whatever the build) and, for this build, file -> expected substring.
fn expectations() -> (Vec<String>, BTreeMap<String, String>) {
    let path = corpus().join("EXPECTED.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let mut named = Vec::new();
    let mut here = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, for_build, expected] = fields[..] else {
            panic!(
                "EXPECTED.tsv line {}: want 3 tab-separated fields: {line:?}",
                n + 1
            );
        };
        assert!(
            ["any", "default", "hdf5"].contains(&for_build),
            "EXPECTED.tsv line {}: build {for_build:?} is not any, default or hdf5",
            n + 1
        );
        assert!(!expected.is_empty(), "EXPECTED.tsv line {}: no text", n + 1);
        named.push(file.to_string());
        if for_build == "any" || for_build == build() {
            let previous = here.insert(file.to_string(), expected.to_string());
            assert!(
                previous.is_none(),
                "EXPECTED.tsv names {file} twice for one build"
            );
        }
    }
    (named, here)
}

/// The corpus files (everything in the folder but EXPECTED.tsv), sorted.
fn files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus())
        .expect("tests/bad is listed")
        .map(|e| {
            e.expect("tests/bad entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "EXPECTED.tsv")
        .collect();
    files.sort();
    files
}

/// Plans the file as an input (HDF5 as its group `/g`) and reads every chunk of the plan.
fn plan_and_read(file: &Path) -> Result<usize, FormatError> {
    let mut address = file.display().to_string();
    if address.ends_with(".h5") {
        address.push_str(":/g");
    }
    let input = resolve_input(&address)?;
    let mut rows = 0;
    for slice in plan_chunks(&input, 64)? {
        rows += read_slice(&slice, 16)?
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    Ok(rows)
}

#[test]
fn every_file_in_the_corpus_has_an_expected_error_and_every_entry_a_file() {
    let (named, here) = expectations();
    let files = files();
    for f in &files {
        assert!(
            here.contains_key(f),
            "tests/bad/{f} has no entry in EXPECTED.tsv for the {} build",
            build()
        );
    }
    for f in &named {
        assert!(
            files.contains(f),
            "EXPECTED.tsv names {f}, which is not in tests/bad"
        );
    }
    assert!(files.len() >= 15, "the corpus lost files: {files:?}");
}

#[test]
fn every_bad_file_is_refused_with_an_error_naming_it() {
    let (_, here) = expectations();
    let mut wrong = Vec::new();
    for (name, expected) in &here {
        let path = corpus().join(name);
        let outcome = std::panic::catch_unwind(|| plan_and_read(&path));
        let problem = match outcome {
            Err(_) => Some("panicked".to_string()),
            Ok(Ok(rows)) => Some(format!("was read as {rows} rows, not refused")),
            Ok(Err(e)) => {
                let text = e.to_string();
                if !text.contains(name.as_str()) {
                    Some(format!("error does not name the file: {text}"))
                } else if !text.contains(expected.as_str()) {
                    Some(format!("error lacks {expected:?}: {text}"))
                } else {
                    None
                }
            }
        };
        if let Some(p) = problem {
            wrong.push(format!("{name}: {p}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} corpus files:\n{}",
        wrong.len(),
        here.len(),
        wrong.join("\n")
    );
}
