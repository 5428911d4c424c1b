//! Job files: TOML with `map`'s options at the top level and a `[slurm]` table.
//!
//! Relative paths in a job file (input, output, a mapper's file) are relative to the job file's
//! directory, so a job file means the same thing whatever directory it is submitted from.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use flywheel_protocol::{JobOptions, MapperSpec};
use flywheel_slurm::SlurmSpec;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A parsed job file.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub struct JobFile {
    pub path: PathBuf,
    pub sha256: String,
    pub content: String,
    pub job: JobOptions,
    pub slurm: SlurmSpec,
}

fn absolutize(base: &Path, p: &str) -> String {
    if Path::new(p).is_absolute() {
        p.to_string()
    } else {
        base.join(p).to_string_lossy().into_owned()
    }
}

/// Reads and checks a job file.
pub fn load(path: &Path) -> Result<JobFile, CliError> {
    let content =
        std::fs::read_to_string(path).map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    let abs =
        std::fs::canonicalize(path).map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut table: toml::Table =
        toml::from_str(&content).map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    let slurm = match table.remove("slurm") {
        Some(v) => v
            .try_into::<SlurmSpec>()
            .map_err(|e| bad_input(anyhow!("{}: [slurm]: {e}", path.display())))?,
        None => SlurmSpec::default(),
    };
    let mut job: JobOptions = toml::Value::Table(table)
        .try_into()
        .map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    job.input = absolutize(&base, &job.input);
    job.output = PathBuf::from(absolutize(&base, &job.output.to_string_lossy()));
    flywheel_formats::Table::check_output_name(&job.output)
        .map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
    if let Some((file, name)) = job.mapper.rsplit_once(':') {
        if file.ends_with(".py") && !job.mapper.starts_with("exec:") {
            job.mapper = format!("{}:{name}", absolutize(&base, file));
        }
    }
    for d in &mut job.depends_on {
        *d = absolutize(&base, d);
    }
    // A shipped mapper's directories (its model), like every other path here.
    if let Ok(MapperSpec::Shipped { mapper }) = MapperSpec::parse(&job.mapper) {
        for key in mapper.dir_args() {
            if let Some(dir) = job.mapper_args.get_mut(key) {
                *dir = absolutize(&base, dir);
            }
        }
    }
    let sha256 = hex::encode(Sha256::digest(content.as_bytes()));
    Ok(JobFile {
        path: abs,
        sha256,
        content,
        job,
        slurm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job file holding `text`, in a fresh directory (kept while the first value lives).
    fn job_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let p = dir.path().join("job.toml");
        std::fs::write(&p, text).expect("job file is written");
        (dir, p)
    }

    #[test]
    fn resolves_paths_against_the_job_file() {
        let (dir, p) = job_file(
            "input = \"data/in.parquet\"\noutput = \"/abs/out\"\nmapper = \"m.py:F\"\nchunk_rows = 5\n[slurm]\nntasks_per_node = 4\nsetup = \"module load x\"\n",
        );
        let jf = load(&p).expect("job file loads");
        let base = std::fs::canonicalize(dir.path()).expect("canonical directory");
        assert_eq!(jf.job.input, base.join("data/in.parquet").to_string_lossy());
        assert_eq!(jf.job.output, PathBuf::from("/abs/out"));
        assert_eq!(jf.job.mapper, format!("{}:F", base.join("m.py").display()));
        assert_eq!(jf.job.chunk_rows, 5);
        assert_eq!(jf.slurm.ntasks_per_node, Some(4));
        assert_eq!(jf.slurm.setup.0, vec!["module load x"]);
    }

    #[test]
    fn a_shipped_mappers_model_directory_resolves_against_the_job_file() {
        let (dir, p) = job_file(
            "input = \"a\"\noutput = \"b\"\nmapper = \"flywheel:embed\"\n[mapper_args]\nmodel = \"models/enc\"\ncolumn = \"text\"\n",
        );
        let jf = load(&p).expect("job file loads");
        let base = std::fs::canonicalize(dir.path()).expect("canonical directory");
        assert_eq!(
            jf.job.mapper_args["model"],
            base.join("models/enc").to_string_lossy()
        );
        assert_eq!(jf.job.mapper_args["column"], "text", "not a directory");
    }

    #[test]
    fn an_output_a_table_address_cannot_name_is_refused() {
        let (_dir, p) =
            job_file("input = \"a\"\noutput = \"out/x@2\"\nmapper = \"builtin:identity\"\n");
        let Err(e) = load(&p) else {
            panic!("out/x@2 was accepted");
        };
        assert_eq!(e.code, 2);
        let text = format!("{:#}", e.error);
        assert!(
            text.contains("out/x@2") && text.contains("version 2 of"),
            "{text}"
        );
    }

    #[test]
    fn incremental_is_a_job_file_option() {
        let (_dir, p) = job_file(
            "input = \"a\"\noutput = \"b\"\nmapper = \"builtin:identity\"\nincremental = true\n",
        );
        assert!(load(&p).expect("job file loads").job.incremental);
        let (_dir, p) = job_file("input = \"a\"\noutput = \"b\"\nmapper = \"builtin:identity\"\n");
        assert!(!load(&p).expect("job file loads").job.incremental);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let (_dir, p) = job_file(
            "input = \"a\"\noutput = \"b\"\nmapper = \"builtin:identity\"\nchunk_row = 5\n",
        );
        let Err(e) = load(&p) else {
            panic!("chunk_row was accepted");
        };
        assert_eq!(e.code, 2);
        assert!(
            format!("{:#}", e.error).contains("chunk_row"),
            "{:#}",
            e.error
        );
    }
}
