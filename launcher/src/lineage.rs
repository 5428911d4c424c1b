//! A version's lineage: what was run, on what, by whom, when — enough to rerun it.

use flywheel_formats::ResolvedInput;
use flywheel_protocol::{JobOptions, MapperSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// The mapper file a spec names, when it is a file: what the lineage hashes.
pub fn mapper_file(spec: &str) -> Option<std::path::PathBuf> {
    match MapperSpec::parse(spec).ok()? {
        MapperSpec::Python { file, .. } => Some(file),
        MapperSpec::Exec { argv } if argv[0].contains('/') => Some(argv[0].clone().into()),
        _ => None,
    }
}

/// Lineage being collected during a job.
pub struct Lineage {
    value: serde_json::Map<String, Value>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// sha256 (hex) of a file's content.
pub(crate) fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    std::fs::read(path).map(|b| hex::encode(Sha256::digest(&b)))
}

impl Lineage {
    /// Starts the lineage of a job; `job_file` is (path, sha256, content) when there is one.
    pub fn start(job_file: Option<(&std::path::Path, &str, &str)>) -> Lineage {
        let mut value = serde_json::Map::new();
        value.insert("flywheel_version".into(), json!(env!("CARGO_PKG_VERSION")));
        value.insert("host".into(), json!(flywheel_worker::hostname()));
        value.insert(
            "slurm_job_id".into(),
            json!(std::env::var("SLURM_JOB_ID").ok()),
        );
        value.insert("started_at".into(), json!(now()));
        // Relative paths in the options (mapper file, input) are relative to this directory.
        value.insert(
            "cwd".into(),
            json!(std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string())),
        );
        if let Some((path, sha, content)) = job_file {
            value.insert(
                "job_file".into(),
                json!({"path": path, "sha256": sha, "content": content}),
            );
        }
        Lineage { value }
    }

    /// Adds the job's options, mapper and resolved input.
    pub fn with_input(mut self, job: &JobOptions, input: &ResolvedInput) -> Lineage {
        self.value
            .insert("operation".into(), json!(job.mode.to_string()));
        self.value.insert(
            "options".into(),
            serde_json::to_value(job).unwrap_or(Value::Null),
        );
        self.value.insert("seed".into(), json!(job.seed));
        let mapper_file = mapper_file(&job.mapper);
        self.value.insert(
            "mapper".into(),
            json!({
                "spec": job.mapper,
                "sha256": mapper_file.as_deref().and_then(|f| file_sha256(f).ok()),
            }),
        );
        let files: Vec<Value> = input
            .files
            .iter()
            .map(|f| json!({"path": f.path, "bytes": f.bytes, "mtime": f.mtime}))
            .collect();
        self.value.insert(
            "input".into(),
            json!({
                "address": job.input,
                "table": input.table.as_ref().map(|(p, v)| json!({"path": p, "version": v})),
                "files": files,
            }),
        );
        self
    }

    /// Sets one field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.value.insert(key.to_string(), value);
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.value.clone())
    }
}
