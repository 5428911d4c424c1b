//! sbatch scripts rendered from a job file's `[slurm]` table, and their submission.
//!
//! [`render_sbatch`] is pure, so every field is covered by tests on the text it produces.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Errors from Slurm's tools or settings.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A `[slurm]` setting that cannot work.
    #[error("[slurm] {field}: {reason}")]
    BadSetting { field: &'static str, reason: String },
    /// `sbatch` could not be run at all.
    #[error("cannot run sbatch: {0} (is Slurm installed and on PATH?)")]
    NotAvailable(std::io::Error),
    /// `sbatch` refused the script.
    #[error("sbatch failed: {0}")]
    Rejected(String),
    /// `sbatch --parsable` printed something other than a job id.
    #[error("sbatch printed no job id: {0:?}")]
    NoJobId(String),
}

/// A list of strings that a job file may also give as one string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct Lines(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Lines {
    fn from(v: OneOrMany) -> Lines {
        match v {
            OneOrMany::One(s) => Lines(s.lines().map(str::to_string).collect()),
            OneOrMany::Many(v) => Lines(v),
        }
    }
}

/// The `[slurm]` table of a job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    #[serde(default = "one")]
    pub nodes: u32,
    /// Tasks per node, each a worker (the job's first task also coordinates). Default: one per
    /// GPU with `gpus_per_node`, else 2.
    #[serde(default)]
    pub ntasks_per_node: Option<u32>,
    /// GPUs per node: one task per GPU, each bound to its own (`--gpus-per-task=1`).
    #[serde(default)]
    pub gpus_per_node: Option<u32>,
    #[serde(default)]
    pub gpus_per_task: Option<u32>,
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// Memory per node, e.g. `"64G"`.
    #[serde(default)]
    pub mem: Option<String>,
    /// Time limit, e.g. `"02:00:00"`.
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub qos: Option<String>,
    #[serde(default)]
    pub job_name: Option<String>,
    /// Raw `#SBATCH` lines (with or without the `#SBATCH` prefix).
    #[serde(default)]
    pub extra: Lines,
    /// Shell lines run before `srun` (e.g. `module load cuda`).
    #[serde(default)]
    pub setup: Lines,
    /// Environment variables exported before `srun`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// srun's `--mpi` plugin (Open MPI from most distributions needs `pmix`).
    #[serde(default = "pmix")]
    pub mpi: String,
    /// Seconds before the time limit at which Slurm warns the job (`--signal=B:USR1@N`): the
    /// job submits its continuation and checkpoints.
    #[serde(default = "default_margin")]
    pub signal_margin: u32,
    /// How many times a step that died with a node of the allocation is started again on the
    /// nodes still alive (resuming) before the job gives up and submits a continuation.
    #[serde(default = "default_node_retries")]
    pub node_retries: u32,
}

impl SlurmSpec {
    /// Tasks (workers) per node: `ntasks_per_node`, else one per GPU, else 2.
    pub fn tasks_per_node(&self) -> u32 {
        self.ntasks_per_node
            .or(self.gpus_per_node)
            .unwrap_or(DEFAULT_TASKS_PER_NODE)
    }

    /// GPUs each task gets: `gpus_per_task`, or 1 when the job asks for GPUs per node.
    pub fn task_gpus(&self) -> Option<u32> {
        self.gpus_per_task.or(self.gpus_per_node.map(|_| 1))
    }
}

const DEFAULT_TASKS_PER_NODE: u32 = 2;

fn default_node_retries() -> u32 {
    2
}

fn default_margin() -> u32 {
    120
}

fn one() -> u32 {
    1
}
fn pmix() -> String {
    "pmix".to_string()
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            nodes: 1,
            ntasks_per_node: None,
            gpus_per_node: None,
            gpus_per_task: None,
            cpus_per_task: None,
            mem: None,
            time: None,
            partition: None,
            account: None,
            qos: None,
            job_name: None,
            extra: Lines::default(),
            setup: Lines::default(),
            env: BTreeMap::new(),
            mpi: pmix(),
            signal_margin: default_margin(),
            node_retries: default_node_retries(),
        }
    }
}

/// A script to render: the settings plus where things are.
#[derive(Debug, Clone)]
pub struct SbatchJob<'a> {
    pub spec: &'a SlurmSpec,
    /// Absolute path of the flywheel binary the tasks run.
    pub flywheel: PathBuf,
    /// Absolute path of the job file.
    pub job_file: PathBuf,
    /// Directory the job runs in.
    pub workdir: PathBuf,
    /// Where Slurm writes the job's log (`%j` is the job id).
    pub log: PathBuf,
    /// Default job name when the spec gives none.
    pub default_name: String,
    /// Where the script itself is saved (a continuation resubmits it).
    pub script_path: PathBuf,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Renders the batch script: the `#SBATCH` directives, the user's environment and set-up, and
/// the body that runs the ranks and turns Slurm's signals into checkpoints.
pub fn render_sbatch(job: &SbatchJob<'_>) -> Result<String, SlurmError> {
    check_spec(job.spec)?;
    let mut out = String::from("#!/bin/bash\n");
    for line in directives(job) {
        out.push_str("#SBATCH ");
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\nset -euo pipefail\n");
    for (k, v) in &job.spec.env {
        out.push_str(&format!("export {k}={}\n", quote(v)));
    }
    for line in &job.spec.setup.0 {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&body(job));
    Ok(out)
}

/// Refuses settings Slurm would reject late, or that could not run a job.
fn check_spec(s: &SlurmSpec) -> Result<(), SlurmError> {
    if s.nodes == 0 {
        return Err(SlurmError::BadSetting {
            field: "nodes",
            reason: "must be at least 1".into(),
        });
    }
    let positive = [
        ("ntasks_per_node", s.ntasks_per_node),
        ("gpus_per_node", s.gpus_per_node),
        ("gpus_per_task", s.gpus_per_task),
    ];
    for (field, value) in positive {
        if value == Some(0) {
            return Err(SlurmError::BadSetting {
                field,
                reason: "must be at least 1 (leave it out for none)".into(),
            });
        }
    }
    if let (Some(g), Some(t)) = (s.gpus_per_node, s.gpus_per_task) {
        return Err(SlurmError::BadSetting {
            field: "gpus_per_task",
            reason: format!(
                "give gpus_per_node ({g}: one task per GPU) or gpus_per_task ({t}, with ntasks_per_node), not both"
            ),
        });
    }
    if let (Some(g), Some(t)) = (s.gpus_per_node, s.ntasks_per_node) {
        if g != t {
            return Err(SlurmError::BadSetting {
                field: "ntasks_per_node",
                reason: format!(
                    "gpus_per_node = {g} runs one task per GPU, so ntasks_per_node must be {g} or left out (for several GPUs a task, use ntasks_per_node with gpus_per_task)"
                ),
            });
        }
    }
    for k in s.env.keys() {
        if k.is_empty()
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || k.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(SlurmError::BadSetting {
                field: "env",
                reason: format!("'{k}' is not a valid variable name"),
            });
        }
    }
    Ok(())
}

/// The `#SBATCH` options, without the prefix; the user's `extra` lines last.
fn directives(job: &SbatchJob<'_>) -> Vec<String> {
    let s = job.spec;
    let mut d = vec![
        format!(
            "--job-name={}",
            quote(s.job_name.as_deref().unwrap_or(&job.default_name))
        ),
        format!("--nodes={}", s.nodes),
        format!("--ntasks-per-node={}", s.tasks_per_node()),
    ];
    d.extend(s.task_gpus().map(|g| format!("--gpus-per-task={g}")));
    d.extend(s.cpus_per_task.map(|c| format!("--cpus-per-task={c}")));
    let quoted = [
        ("mem", &s.mem),
        ("time", &s.time),
        ("partition", &s.partition),
        ("account", &s.account),
        ("qos", &s.qos),
    ];
    for (name, value) in quoted {
        d.extend(value.as_ref().map(|v| format!("--{name}={}", quote(v))));
    }
    // A lost node does not end the job: the script starts a new step on the nodes left.
    d.push("--no-kill".into());
    d.push(format!("--signal=B:USR1@{}", s.signal_margin));
    d.push(format!("--output={}", quote(&job.log.to_string_lossy())));
    d.push(format!("--chdir={}", quote(&job.workdir.to_string_lossy())));
    for line in &s.extra.0 {
        let line = line.trim();
        d.push(
            line.strip_prefix("#SBATCH")
                .map(str::trim)
                .unwrap_or(line)
                .to_string(),
        );
    }
    d
}

/// How long a node gets to run a one-task step before the script counts it lost (seconds).
const NODE_PROBE_S: u32 = 30;

/// Runs the ranks under srun (the shell is `body.sh`). Near the time limit Slurm sends USR1 to
/// this script: it submits the continuation (which resumes from the job's journal once this job
/// has ended) and tells the ranks to checkpoint. scancel sends TERM: the ranks checkpoint, and
/// nothing is resubmitted. A step that fails having lost a node (the job itself survives it:
/// `--no-kill`) is started again on the nodes left, resuming, up to `node_retries` times, and then
/// the script submits the continuation. A step of MPI ranks cannot outlive one of its ranks
/// (Open MPI has no fault tolerance), so the step itself is not `--no-kill`: it ends at once, and
/// the next one starts. The job's id survives requeues, steps and continuations (--export=ALL
/// carries it), so a job run again finishes instead of publishing a second version.
fn body(job: &SbatchJob<'_>) -> String {
    let s = job.spec;
    let values = [
        (
            "@GRACE@",
            s.signal_margin.saturating_sub(20).max(5).to_string(),
        ),
        ("@SCRIPT@", quote(&job.script_path.to_string_lossy())),
        ("@MPI@", quote(&s.mpi)),
        ("@FLYWHEEL@", quote(&job.flywheel.to_string_lossy())),
        ("@JOB@", quote(&job.job_file.to_string_lossy())),
        ("@PROBE@", NODE_PROBE_S.to_string()),
        ("@RETRIES@", s.node_retries.to_string()),
        ("@TASKS_PER_NODE@", s.tasks_per_node().to_string()),
    ];
    values.iter().fold(BODY.to_string(), |text, (key, value)| {
        text.replace(key, value)
    })
}

const BODY: &str = include_str!("body.sh");

/// Submits a saved script with `sbatch --parsable` and returns the job id; `env` is exported to
/// the job besides the submitting environment.
pub fn submit(script: &std::path::Path, env: &[(&str, &str)]) -> Result<String, SlurmError> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if !env.is_empty() {
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        cmd.arg(format!("--export=ALL,{}", pairs.join(",")));
    }
    let out = cmd
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(SlurmError::NotAvailable)?;
    if !out.status.success() {
        return Err(SlurmError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    parse_parsable(&String::from_utf8_lossy(&out.stdout))
}

/// `sbatch --parsable` prints `12345` or `12345;cluster`.
fn parse_parsable(text: &str) -> Result<String, SlurmError> {
    let first = text.trim().split(';').next().unwrap_or("");
    if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        Ok(first.to_string())
    } else {
        Err(SlurmError::NoJobId(text.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: &SlurmSpec) -> SbatchJob<'_> {
        SbatchJob {
            spec,
            flywheel: "/opt/flywheel/bin/flywheel".into(),
            job_file: "/home/me/job.toml".into(),
            workdir: "/home/me".into(),
            log: "/home/me/out/_logs/slurm-%j.out".into(),
            default_name: "flywheel-out".into(),
            script_path: "/home/me/out/_logs/flywheel-out.sbatch".into(),
        }
    }

    #[test]
    fn renders_the_minimal_script() {
        let spec = SlurmSpec::default();
        let text = render_sbatch(&job(&spec)).unwrap();
        assert!(
            text.starts_with(
                "#!/bin/bash\n\
             #SBATCH --job-name=flywheel-out\n\
             #SBATCH --nodes=1\n\
             #SBATCH --ntasks-per-node=2\n\
             #SBATCH --no-kill\n\
             #SBATCH --signal=B:USR1@120\n\
             #SBATCH --output=/home/me/out/_logs/slurm-%j.out\n\
             #SBATCH --chdir=/home/me\n\
             \nset -euo pipefail\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "srun --mpi=pmix \"$@\" /opt/flywheel/bin/flywheel run /home/me/job.toml &\n"
            ),
            "{text}"
        );
        // A lost node: a new step on the nodes left, twice at most, one task a node.
        assert!(text.contains("retries_left=2\n"), "{text}");
        assert!(
            text.contains("--ntasks=$((n * 2)) --ntasks-per-node=2 --nodelist=\"$live\""),
            "{text}"
        );
        assert!(text.contains("--dependency=afterany:\"$SLURM_JOB_ID\" --export=ALL,FLYWHEEL_RESUME=1 /home/me/out/_logs/flywheel-out.sbatch"), "{text}");
        assert!(
            text.contains("export FLYWHEEL_CHECKPOINT_GRACE=100\n"),
            "{text}"
        );
        assert!(text.ends_with("exit $rc\n"), "{text}");
    }

    #[test]
    fn renders_every_field() {
        let spec = SlurmSpec {
            nodes: 2,
            ntasks_per_node: Some(5),
            gpus_per_node: None,
            gpus_per_task: Some(1),
            cpus_per_task: Some(8),
            mem: Some("200G".into()),
            time: Some("12:00:00".into()),
            partition: Some("gpu".into()),
            account: Some("proj42".into()),
            qos: Some("normal".into()),
            job_name: Some("my job".into()),
            extra: Lines(vec![
                "#SBATCH --exclusive".into(),
                "--constraint=a100".into(),
            ]),
            setup: Lines(vec![
                "module load cuda/12".into(),
                "source ~/venv/bin/activate".into(),
            ]),
            env: [("HF_HOME".to_string(), "/scratch/hf cache".to_string())]
                .into_iter()
                .collect(),
            mpi: "pmix".into(),
            signal_margin: 300,
            node_retries: 5,
        };
        let text = render_sbatch(&job(&spec)).unwrap();
        for want in [
            "#SBATCH --job-name='my job'\n",
            "#SBATCH --nodes=2\n",
            "#SBATCH --ntasks-per-node=5\n",
            "#SBATCH --gpus-per-task=1\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --mem=200G\n",
            "#SBATCH --time=12:00:00\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --account=proj42\n",
            "#SBATCH --qos=normal\n",
            "#SBATCH --exclusive\n",
            "#SBATCH --signal=B:USR1@300\n",
            "#SBATCH --constraint=a100\n",
            "export HF_HOME='/scratch/hf cache'\n",
            "module load cuda/12\nsource ~/venv/bin/activate\n",
            "srun --mpi=pmix \"$@\" /opt/flywheel/bin/flywheel run /home/me/job.toml &\n",
            "retries_left=5\n",
            "--ntasks=$((n * 5)) --ntasks-per-node=5 ",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // The script is valid bash.
        let path =
            std::env::temp_dir().join(format!("flywheel-sbatch-test-{}.sh", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let ok = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(true);
        let _ = std::fs::remove_file(&path);
        assert!(ok, "bash -n rejects the script:\n{text}");
        // Setup runs after the exports and before srun.
        assert!(text.find("export").unwrap() < text.find("module load").unwrap());
        assert!(text.find("module load").unwrap() < text.find("srun").unwrap());
    }

    #[test]
    fn gpus_per_node_renders_one_task_per_gpu() {
        let spec = SlurmSpec {
            nodes: 2,
            gpus_per_node: Some(4),
            ..Default::default()
        };
        let text = render_sbatch(&job(&spec)).unwrap();
        assert!(
            text.contains(
                "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"
            ),
            "{text}"
        );
        assert!(text.contains("--ntasks-per-node=4 --nodelist"), "{text}");
        // Saying the same twice is fine.
        let same = SlurmSpec {
            ntasks_per_node: Some(4),
            ..spec.clone()
        };
        assert_eq!(render_sbatch(&job(&same)).unwrap(), text);
        // Several GPUs a task: ntasks_per_node with gpus_per_task, as before.
        let two_each = SlurmSpec {
            nodes: 1,
            ntasks_per_node: Some(2),
            gpus_per_task: Some(2),
            ..Default::default()
        };
        let text = render_sbatch(&job(&two_each)).unwrap();
        assert!(
            text.contains("#SBATCH --ntasks-per-node=2\n#SBATCH --gpus-per-task=2\n"),
            "{text}"
        );
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let refused = [
            (
                SlurmSpec {
                    ntasks_per_node: Some(0),
                    ..Default::default()
                },
                "ntasks_per_node: must be at least 1",
            ),
            (
                SlurmSpec {
                    gpus_per_node: Some(0),
                    ..Default::default()
                },
                "gpus_per_node: must be at least 1",
            ),
            (
                SlurmSpec {
                    gpus_per_node: Some(4),
                    ntasks_per_node: Some(5),
                    ..Default::default()
                },
                "ntasks_per_node must be 4 or left out",
            ),
            (
                SlurmSpec {
                    gpus_per_node: Some(4),
                    gpus_per_task: Some(1),
                    ..Default::default()
                },
                "not both",
            ),
            (
                SlurmSpec {
                    env: [("1X".to_string(), "v".to_string())].into_iter().collect(),
                    ..Default::default()
                },
                "'1X' is not a valid variable name",
            ),
        ];
        for (spec, want) in refused {
            let e = render_sbatch(&job(&spec)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // One task is a job: rank 0 coordinates and runs the one worker.
        let one = SlurmSpec {
            ntasks_per_node: Some(1),
            ..Default::default()
        };
        assert!(render_sbatch(&job(&one)).is_ok());
    }

    #[test]
    fn parses_parsable_output() {
        assert_eq!(parse_parsable("4242\n").unwrap(), "4242");
        assert_eq!(parse_parsable("4242;cluster1\n").unwrap(), "4242");
        assert!(parse_parsable("Submitted batch job 1").is_err());
    }
}
