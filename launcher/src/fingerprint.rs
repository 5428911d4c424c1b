//! Chunk fingerprints of an incremental job (docs/format.md, "Chunk fingerprints"): a hash of
//! what determines a chunk's output rows, so that a later job reuses the chunk's file when the
//! hash is the same and computes it otherwise.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use flywheel_coordinator::{FingerprintParts, IncrementalPlan, InputIdentity, FINGERPRINT_VERSION};
use flywheel_formats::{Fingerprint, ResolvedInput, Table, FORMAT_VERSION};
use flywheel_protocol::{
    relative_path, seed_for, ChunkId, InputSlice, JobOptions, MapperSpec, SeedScheme,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// sha256 (hex) of a JSON value's text (keys in the fixed order they are built in).
fn hash(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

fn file_sha256(path: &Path) -> Result<String, CliError> {
    crate::lineage::file_sha256(path)
        .map_err(|e| bad_input(anyhow!("mapper file {}: {e}", path.display())))
}

/// A directory's identity: each file below it (relative path, size, modification time in ns),
/// in path order.
fn dir_identity(dir: &Path) -> Value {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(id) = InputIdentity::of(&p) {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                files.push((rel, id.bytes, id.mtime_ns));
            }
        }
    }
    files.sort();
    json!(files)
}

/// What the mapper is: a Python file's content and the name in it, an exec mapper's command
/// line (and its program's content), a builtin's name, a shipped mapper's code and model.
fn mapper_identity(job: &JobOptions) -> Result<Value, CliError> {
    Ok(match MapperSpec::parse(&job.mapper).map_err(bad_input)? {
        MapperSpec::Python { file, name } => {
            json!({"python": name, "sha256": file_sha256(&file)?})
        }
        MapperSpec::Exec { argv } => {
            // The program and every file its arguments name (`exec:python3 tag.py`: the
            // script), by content; a bare program name is looked up on PATH.
            let named = argv.iter().enumerate().map(|(i, a)| {
                let path = if i == 0 {
                    crate::plan::find_program(a)
                } else {
                    Some(PathBuf::from(a)).filter(|p| p.is_file())
                };
                match path {
                    Some(p) => file_sha256(&p).map(Some),
                    None => Ok(None),
                }
            });
            let sha: Vec<Option<String>> = named.collect::<Result<_, _>>()?;
            json!({"exec": argv, "sha256": sha})
        }
        MapperSpec::Builtin { name } => json!({ "builtin": name }),
        MapperSpec::Shipped { mapper } => {
            let dirs: serde_json::Map<String, Value> = mapper
                .dir_args()
                .filter_map(|k| job.mapper_args.get(k).map(|d| (k, d)))
                .map(|(k, d)| (k.to_string(), dir_identity(Path::new(d))))
                .collect();
            json!({
                "shipped": mapper.to_string(),
                "sha256": hex::encode(Sha256::digest(flywheel_worker::SHIPPED_SOURCE.as_bytes())),
                "dirs": dirs,
            })
        }
    })
}

/// Each input file's identity: for a table version's file, its entry in the manifest (path,
/// rows, bytes: data files are written once); for any other file, its size, modification and
/// change times in nanoseconds and inode (a same-size rewrite with its mtime put back changes
/// the change time; a moved directory keeps all of them).
fn file_identities(input: &ResolvedInput) -> Result<HashMap<PathBuf, Value>, CliError> {
    let mut ids = HashMap::new();
    if let Some((dir, version)) = &input.table {
        let table = Table::new(dir);
        let m = table.manifest(Some(*version)).map_err(bad_input)?;
        for (f, path) in m.files.iter().zip(table.file_paths(&m)) {
            let abs = std::fs::canonicalize(&path).unwrap_or(path);
            ids.insert(
                abs,
                json!({"table_file": {"path": f.path, "rows": f.rows, "bytes": f.bytes}}),
            );
        }
        return Ok(ids);
    }
    for f in &input.files {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&f.path)
            .map_err(|e| bad_input(anyhow!("{}: {e}", f.path.display())))?;
        let ns = |s: i64, n: i64| (i128::from(s) * 1_000_000_000 + i128::from(n)).to_string();
        ids.insert(
            f.path.clone(),
            json!({"bytes": meta.len(), "mtime_ns": ns(meta.mtime(), meta.mtime_nsec()),
                   "ctime_ns": ns(meta.ctime(), meta.ctime_nsec()), "inode": meta.ino()}),
        );
    }
    Ok(ids)
}

/// The interpreter of a Python mapper, as it says itself: its executable, version and the
/// names and versions of its installed distributions (hashed); `None` for other mappers.
fn python_identity(job: &JobOptions) -> Result<Value, CliError> {
    // A distribution whose metadata cannot be read counts as absent, not as a failed probe.
    const PROBE: &str = r#"import sys, json, hashlib, importlib.metadata as m
d = set()
for x in m.distributions():
    try:
        d.add((x.metadata["Name"] or "", x.version or ""))
    except Exception:
        pass
print(json.dumps({"executable": sys.executable, "version": sys.version,
                  "distributions": hashlib.sha256(repr(sorted(d)).encode()).hexdigest()}))
"#;
    let spec = MapperSpec::parse(&job.mapper).map_err(bad_input)?;
    if !matches!(spec, MapperSpec::Python { .. } | MapperSpec::Shipped { .. }) {
        return Ok(Value::Null);
    }
    let out = output_within(
        std::process::Command::new(&job.python).args(["-c", PROBE]),
        std::time::Duration::from_secs(120),
    )
    .map_err(|e| bad_input(anyhow!("--python {}: {e}", job.python)))?;
    serde_json::from_slice(&out).map_err(|e| {
        bad_input(anyhow!(
            "--python {}: cannot tell its version and packages ({e})",
            job.python
        ))
    })
}

/// Runs `cmd` to its end within `limit` (killed past it) and returns what it printed; an error
/// when it cannot start, fails or runs out of time.
fn output_within(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> Result<Vec<u8>, String> {
    // Each pipe read on a thread of its own, so a chatty child never blocks on a full one.
    fn drain<R: std::io::Read + Send + 'static>(
        pipe: Option<R>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if !status.success() {
        let tail = String::from_utf8_lossy(&err);
        return Err(format!("it failed ({status}): {}", tail.trim_end()));
    }
    Ok(out)
}

/// The `--depends-on` files and directories, each with its digest now.
fn declared_identity(job: &JobOptions) -> Result<Value, CliError> {
    let mut out = Vec::new();
    for d in &job.depends_on {
        let digest = flywheel_formats::path_digest(Path::new(d))
            .map_err(|e| bad_input(anyhow!("--depends-on {d}: {e}")))?;
        out.push(json!([d, digest]));
    }
    Ok(Value::Array(out))
}

/// The fingerprint of every planned chunk. `schema` is the output schema given (Arrow JSON).
/// A chunk's input is named by its file's path relative to the input's root, so a moved input
/// keeps its fingerprints, and its seed is the one the job gives it (see `SeedScheme`).
pub fn plan(
    job: &JobOptions,
    schema: Option<&str>,
    input: &ResolvedInput,
    slices: &[InputSlice],
) -> Result<IncrementalPlan, CliError> {
    let format = format!("fingerprint {FINGERPRINT_VERSION}, table format {FORMAT_VERSION}");
    let parts = FingerprintParts {
        mapper: hash(&mapper_identity(job)?),
        args: hash(&json!(job.mapper_args)),
        schema: hash(&json!(schema)),
        seed: job.seed,
        format,
        python: hash(&python_identity(job)?),
        on_row_error: hash(&json!(job.on_row_error)),
        depends_on: hash(&declared_identity(job)?),
    };
    let scheme = job.seed_scheme.unwrap_or(SeedScheme::InputRows);
    let root = input.root.display().to_string();
    let files = file_identities(input)?;
    let fingerprints = slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let file = files
                .get(Path::new(&s.path))
                .cloned()
                .unwrap_or(Value::Null);
            let source = relative_path(&root, &s.path).to_string();
            let slice = InputSlice {
                path: source.clone(),
                ..s.clone()
            };
            let input = hash(&json!({"slice": slice, "file": file}));
            let chunk = ChunkId(u32::try_from(i).unwrap_or(u32::MAX));
            let all = json!({
                "format": parts.format,
                "input": input,
                "mapper": parts.mapper,
                "args": parts.args,
                "schema": parts.schema,
                "python": parts.python,
                "on_row_error": parts.on_row_error,
                "depends_on": parts.depends_on,
                "seed": seed_for(scheme, job.seed, &root, chunk, s).to_string(),
            });
            Fingerprint {
                hash: hash(&all),
                input,
                source,
            }
        })
        .collect();
    Ok(IncrementalPlan {
        fingerprints,
        parts,
    })
}

/// `map --incremental --dry-run`: the chunks the job would reuse and those it would compute,
/// with why; nothing runs and nothing is written.
pub fn print_dry_run(job: JobOptions, json: bool) -> Result<(), CliError> {
    use std::io::Write;
    let prepared = crate::plan::prepare_checked(job, crate::lineage::Lineage::start(None), false)?;
    let Some(plan) = &prepared.incremental else {
        return Err(bad_input(anyhow!("--dry-run needs --incremental")));
    };
    let out_dir = &prepared.job.output;
    let reuse = flywheel_coordinator::plan_reuse(&Table::new(out_dir), plan).map_err(bad_input)?;
    let to_compute: Vec<Value> = reuse
        .compute
        .iter()
        .filter_map(|(c, why)| {
            let s = prepared.slices.get(c.0 as usize)?;
            // A text chunk's rows are known only once it is read: it is named by its bytes.
            let at = match s.bytes {
                Some((b, e)) => json!({"bytes": [b, e]}),
                None => json!({"row_start": s.row_start, "row_count": s.row_count}),
            };
            let mut c = json!({"chunk": c.0, "input": s.path, "reason": why.to_string()});
            if let (Value::Object(c), Value::Object(at)) = (&mut c, at) {
                c.extend(at);
            }
            Some(c)
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        let v = json!({
            "table": out_dir,
            "base_version": reuse.base,
            "chunks": prepared.slices.len(),
            "reused": reuse.reused.len(),
            "compute": reuse.compute.len(),
            "recomputed": reuse.reasons(),
            "changed_dependency": reuse.changed_dependency,
            "to_compute": to_compute,
        });
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )
    } else {
        let mut text = format!(
            "incremental plan for {}: {}\n",
            out_dir.display(),
            reuse.summary()
        );
        for c in &to_compute {
            let at = match c["bytes"].as_array() {
                Some(b) => format!("bytes {}..{}", b[0], b[1]),
                None => {
                    let start = c["row_start"].as_u64().unwrap_or(0);
                    let end = start + c["row_count"].as_u64().unwrap_or(0);
                    format!("rows {start}..{end}")
                }
            };
            text += &format!(
                "  compute chunk {}: {} {at} ({})\n",
                c["chunk"],
                c["input"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default()
            );
        }
        text += "dry run: nothing was run or written\n";
        stdout.write_all(text.as_bytes())
    };
    // A closed stdout (`| head`) is not an error of the plan.
    let _ = written;
    Ok(())
}
