//! Command-line interface (the contract is ../shared/SPEC.md; docs/cli.md extends it).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "flywheel",
    version,
    about = "Data-aware batch jobs over tables: on a laptop, under MPI, or inside Slurm."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a map job in this process (coordinator + worker threads; no Slurm or MPI needed).
    #[command(
        after_help = "Example:\n  flywheel map --input examples/data/dialogues.parquet --output out/pairs \\\n      --mapper examples/expand_dialogue.py:ExpandDialogue --workers 2\n\nMappers: FILE.py:NAME (a Python function or class), exec:COMMAND ARGS… (JSON-lines\nprotocol, docs/protocol.md), builtin:identity."
    )]
    Map(MapArgs),
    /// Run a job file's map as MPI ranks (inside an allocation, under srun or mpirun): rank 0
    /// coordinates, the others are workers.
    #[command(
        after_help = "Example (inside an allocation):\n  srun --mpi=pmix flywheel run job.toml\n  mpirun -n 4 flywheel run job.toml"
    )]
    Run(RunArgs),
    /// Render a job file's sbatch script and submit it.
    #[command(
        after_help = "Example:\n  flywheel submit job.toml --dry-run   # print the script\n  flywheel submit job.toml             # submit; prints the job id"
    )]
    Submit(SubmitArgs),
    /// Progress of a running or interrupted job writing OUT (read from its journal).
    #[command(
        after_help = "Example:\n  flywheel status out/pairs\n  flywheel status out/pairs --json"
    )]
    Status {
        /// The job's output table directory.
        output: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the GPUs NVML sees, with the readings workers report (name, memory, utilisation).
    #[command(after_help = "Example:\n  flywheel gpus\n  flywheel gpus --json")]
    Gpus {
        #[arg(long)]
        json: bool,
    },
    /// Look at a table's versions and files.
    #[command(subcommand)]
    Table(TableCommand),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Create,
    Append,
    Overwrite,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowErrorArg {
    Fail,
    Skip,
}

#[derive(Args)]
pub struct MapArgs {
    /// Input: a file (.parquet), a glob of files, or a table (DIR or DIR@VERSION).
    #[arg(long)]
    pub input: String,
    /// Output table directory.
    #[arg(long)]
    pub output: PathBuf,
    /// FILE.py:NAME, exec:COMMAND ARGS…, or builtin:identity.
    #[arg(long)]
    pub mapper: String,
    /// Worker threads, each with its own mapper process.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Target rows per chunk.
    #[arg(long, default_value_t = 10_000)]
    pub chunk_rows: u64,
    /// create: refuse an existing table; append: add to it; overwrite: replace its rows.
    #[arg(long, value_enum, default_value_t = ModeArg::Create)]
    pub mode: ModeArg,
    /// Output schema in flywheel's schema language (`a: int, b: str?, …`), or @FILE holding it.
    /// Every output row is validated against it. Default: inferred from the first output.
    #[arg(long)]
    pub schema: Option<String>,
    /// Attempts per chunk before the job fails.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// fail: a raising row fails its chunk; skip: it goes to OUT/_errors and the chunk goes on.
    #[arg(long, value_enum, default_value_t = RowErrorArg::Fail)]
    pub on_row_error: RowErrorArg,
    /// Python interpreter for Python mappers (e.g. a venv's bin/python).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Job seed; each chunk's mapper gets FLYWHEEL_SEED derived from it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds a chunk may run before its mapper is killed and the chunk retried.
    #[arg(long, default_value_t = 3600)]
    pub chunk_timeout: u64,
    /// Memory limit per mapper process, e.g. 8G (RLIMIT_DATA: heap and anonymous maps).
    #[arg(long, value_name = "SIZE")]
    pub mapper_mem: Option<String>,
    /// KEY=VALUE passed to a Python class's constructor (or an exec mapper's environment).
    #[arg(long = "mapper-arg", value_name = "KEY=VALUE")]
    pub mapper_args: Vec<String>,
    /// Continue an interrupted job (crash, scancel, time limit) into the same OUT, redoing only
    /// the chunks its journal does not record as done.
    #[arg(long)]
    pub resume: bool,
    /// Print the job report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The job file (TOML).
    pub job: PathBuf,
    /// Print the job report as JSON on stdout (rank 0).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The job file (TOML) with a [slurm] table.
    pub job: PathBuf,
    /// Print the sbatch script and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue an interrupted job (scancel, a failed node) from its journal.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Subcommand)]
pub enum TableCommand {
    /// Version, rows, files, schema and lineage of a table version.
    #[command(
        after_help = "Example:\n  flywheel table info out/pairs\n  flywheel table info out/pairs@1 --json"
    )]
    Info {
        /// TABLE or TABLE@VERSION.
        table: String,
        #[arg(long)]
        json: bool,
    },
    /// The first rows of a version, as an aligned table: long values cut with an ellipsis,
    /// media shown as `<image/png 12.3 KiB>`, vectors abbreviated.
    #[command(
        after_help = "Example:\n  flywheel table head out/pairs -n 5 --columns prompt,response\n  flywheel table head out/pairs@1"
    )]
    Head {
        /// TABLE or TABLE@VERSION.
        table: String,
        /// Rows to show.
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
        /// Columns to show, comma-separated (default: all).
        #[arg(long)]
        columns: Option<String>,
    },
    /// Absolute paths of a version's data files, one a line, in row order.
    #[command(after_help = "Example:\n  flywheel table files out/pairs | xargs ls -l")]
    Files {
        /// TABLE or TABLE@VERSION.
        table: String,
    },
    /// Delete what no kept version references: old versions beyond --keep, and orphan files
    /// (failed attempts, crashed jobs).
    #[command(
        after_help = "Example:\n  flywheel table vacuum out/pairs --dry-run      # list orphans\n  flywheel table vacuum out/pairs --keep 3       # keep the 3 newest versions"
    )]
    Vacuum {
        /// TABLE.
        table: String,
        /// Keep the newest N versions (default: keep every version, remove only orphans).
        #[arg(long)]
        keep: Option<usize>,
        /// Print what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run even if a job seems to be writing to the table.
        #[arg(long)]
        force: bool,
    },
    /// Every version: time, rows, operation, lineage summary.
    #[command(after_help = "Example:\n  flywheel table log out/pairs")]
    Log {
        /// TABLE.
        table: String,
    },
}
