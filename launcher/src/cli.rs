//! Command-line interface: the commands, their options and their help. The user's guide to them is
//! README.md, the mapper protocol docs/protocol.md; `flywheel COMMAND --help` documents each one.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// An output table directory, refused (exit 2, before anything is created) when a table address
/// could not name it.
fn output_dir(text: &str) -> Result<PathBuf, flywheel_formats::FormatError> {
    let path = PathBuf::from(text);
    flywheel_formats::Table::check_output_name(&path)?;
    Ok(path)
}

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
    #[command(after_help = crate::shipped::map_after_help())]
    Map(MapArgs),
    /// Run a job file's map as MPI ranks (inside an allocation, under srun or mpirun): one
    /// worker per rank; rank 0 also coordinates.
    #[command(
        after_help = "Example (inside an allocation):\n  srun --mpi=pmix flywheel run job.toml\n  mpirun -n 4 flywheel run job.toml"
    )]
    Run(RunArgs),
    /// Render a job file's sbatch script and submit it.
    #[command(
        after_help = "Example:\n  flywheel submit job.toml --dry-run   # print the script\n  flywheel submit job.toml             # submit; prints the job id\n\n[slurm] nodes = 2 with gpus_per_node = 4 runs 8 worker tasks, one per GPU (rank 0 also\ncoordinates). A step that loses a node is run again on the nodes left, resuming, up to\nnode_retries times (default 2); then the job submits its continuation."
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
    /// Show the GPUs NVML sees, with the readings workers report (name, UUID, memory,
    /// utilisation); with OUT, each worker's GPU in the job writing OUT (node, UUID, last and
    /// mean utilisation, memory).
    #[command(
        after_help = "Examples:\n  flywheel gpus\n  flywheel gpus --json\n  flywheel gpus out/pairs      # the GPUs of the job writing out/pairs, per worker"
    )]
    Gpus {
        /// A job's output table directory.
        output: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Look at a table's versions, rows, statistics and files.
    #[command(subcommand)]
    Table(TableCommand),
    /// SQL (DataFusion) over tables at chosen versions.
    #[command(
        after_help = "Examples:\n  flywheel query \"SELECT count(*) FROM t\" --table out/pairs\n  flywheel query \"SELECT a.k, count(*) FROM a JOIN b USING (id) GROUP BY a.k\" \\\n      --table a=out/pairs@1 --table b=out/labels --format csv\n\nA table given without NAME= is called t. Each table is read at the version its address\nnames (the latest when none): exactly the files that version lists.\n\nRead-only: one SELECT, WITH or EXPLAIN over these tables. COPY, CREATE, INSERT, DROP, SET\nand table functions other than generate_series and range are refused (exit 2)."
    )]
    Query(QueryArgs),
    /// Serve tables in the browser: rows with their images, sound and JSON, statistics, SQL,
    /// saved queries, lineage and jobs. Read-only, except for saving a query.
    #[command(
        after_help = "Examples:\n  flywheel view out/pairs                 # one table\n  flywheel view out/ --port 8080          # every table below out/ (found by their _versions/)\n\nThe first line on stdout is the address to open, with its token:\n  flywheel view: http://127.0.0.1:8080/?token=TOKEN\nEvery request needs the token (a cookie after the first visit). On a cluster, serve on the\nlogin node and tunnel from your machine:\n  ssh -L 8080:localhost:8080 login-node\nthen open the printed address. Serves until interrupted (Ctrl-C)."
    )]
    View(ViewArgs),
    /// Rebuild a version from its lineage (same input version, mapper file checked against its
    /// recorded hash, same options and seed) and report whether the result matches it.
    #[command(
        after_help = "Examples:\n  flywheel rerun out/pairs@1                    # rebuild in a temporary table, compare, remove it\n  flywheel rerun out/pairs@1 --output check/pairs   # keep the rebuilt table\n\nExit status: 0 when the rebuilt rows equal the version's, 1 when they differ, 2 when the\nlineage no longer holds (mapper file or input changed): then nothing runs."
    )]
    Rerun(RerunArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned table (media and vectors shown short).
    Table,
    /// CSV with a header line (bytes as hex, lists and structs as JSON text).
    Csv,
    /// One JSON array of objects (bytes as hex).
    Json,
    /// One JSON object per line (bytes as hex).
    Jsonl,
}

#[derive(Args)]
pub struct QueryArgs {
    /// The SQL query.
    pub sql: String,
    /// NAME=TABLE[@VERSION], or TABLE[@VERSION] for the name t. Repeatable.
    #[arg(long = "table", value_name = "NAME=TABLE[@V]")]
    pub tables: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

#[derive(Args)]
pub struct ViewArgs {
    /// Tables (DIR), or directories holding tables.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Port to listen on (0: any free port; the printed address names it).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on. Anything but loopback lets others on the network reach the viewer
    /// (they still need the token).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

#[derive(Args)]
pub struct RerunArgs {
    /// TABLE@VERSION to rebuild (TABLE alone: its latest version).
    pub table: String,
    /// Keep the rebuilt table here (a new table). Default: a temporary table, removed after
    /// the comparison.
    #[arg(long, value_parser = output_dir)]
    pub output: Option<PathBuf>,
    /// Worker count (the row order and values do not depend on it). Default: the recorded one.
    #[arg(long)]
    pub workers: Option<u32>,
    /// Python interpreter. Default: the recorded one.
    #[arg(long)]
    pub python: Option<String>,
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
    /// Output table directory (its name may not contain '@': `out/x@2` reads as version 2 of
    /// `out/x`).
    #[arg(long, value_parser = output_dir)]
    pub output: PathBuf,
    /// FILE.py:NAME, exec:COMMAND ARGS…, builtin:identity, flywheel:generate or flywheel:embed.
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
    /// Name the job: a job publishes at most one version, so the same command run again with the
    /// same id (after a crash, from a retry loop) completes the job instead of appending twice.
    /// Default: $FLYWHEEL_JOB_ID, else a fresh id.
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// Publish a version equal to a full map of the input's current state, computing only the
    /// chunks whose input rows, mapper (its file, the local modules it imported, its declared
    /// files), --python, --mapper-arg, --schema, --on-row-error or seed changed since OUT's
    /// latest version; the others' files are reused. Publishes like --mode overwrite.
    #[arg(long)]
    pub incremental: bool,
    /// A file or directory the mapper reads besides its own file (a lookup table, a model
    /// directory); repeatable. With --incremental, chunks are computed again when one changed
    /// (a file by content, a directory by its files' sizes and times). A Python mapper can
    /// declare them itself: `depends_on = ["lookup.json", "model/"]` on its class.
    #[arg(long = "depends-on", value_name = "PATH")]
    pub depends_on: Vec<String>,
    /// With --incremental: print which chunks would be reused and which computed (and why),
    /// run nothing, write nothing.
    #[arg(long, requires = "incremental")]
    pub dry_run: bool,
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
    /// One row of a version, or one value inside it: struct fields, list items and the inside of
    /// `json` columns are reached by a path.
    #[command(
        after_help = "Examples:\n  flywheel table show out/pairs --row 0                      # the whole row, pretty-printed\n  flywheel table show out/pairs --row 3 --path 'meta.turns[0].text'\n  flywheel table show out/pairs --row 3 --path image --raw > row3.png\n\nRows count from 0 in table order. A path starts with a column; .name enters a struct or a\nJSON object, [N] a list or JSON array, [\"odd.key\"] a key with dots."
    )]
    Show {
        /// TABLE or TABLE@VERSION.
        table: String,
        /// Row number (0-based).
        #[arg(long)]
        row: u64,
        /// Path to a value inside the row, starting with a column name.
        #[arg(long)]
        path: Option<String>,
        /// Write the value itself to stdout: bytes (an image, audio) as they are, text without
        /// quotes, anything else as compact JSON.
        #[arg(long)]
        raw: bool,
    },
    /// Per column: count, nulls, min / max / mean (numbers), min / mean / max length (strings,
    /// bytes, lists), distinct values and top values (categorical columns).
    #[command(
        after_help = "Examples:\n  flywheel table stats out/pairs\n  flywheel table stats out/pairs@2 --column label --json\n\nCounts, nulls, min/max/mean and lengths come from the manifest's statistics; distinct and top\nvalues scan the columns that have them (strings, numbers, booleans, bytes). Distinct counts\nare exact up to 65,536 values and estimated (within about 1%) beyond. Top values are shown for\ncolumns of strings, integers and booleans with at most 10,000 distinct values that repeat\n(distinct ≤ half the non-null values). --fast skips the scan."
    )]
    Stats {
        /// TABLE or TABLE@VERSION.
        table: String,
        /// Only these columns (repeatable, or comma-separated).
        #[arg(long = "column", value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Manifest statistics only: no distinct or top values, no data read.
        #[arg(long)]
        fast: bool,
    },
    /// Absolute paths of a version's data files, one a line, in row order.
    ///
    /// Other tools read a version through the table's Delta Lake log (Delta version N is
    /// version N) or its dataset card (README.md, config vN); never glob T/data/*.parquet,
    /// which holds the files of every version kept.
    #[command(
        after_help = "Example:\n  flywheel table files out/pairs | xargs ls -l\n  python -c 'import polars as pl; print(pl.read_delta(\"out/pairs\", version=2))'"
    )]
    Files {
        /// TABLE or TABLE@VERSION.
        table: String,
    },
    /// Delete what no kept version references: old versions beyond --keep, and orphan files
    /// (failed attempts, crashed jobs).
    ///
    /// The Delta log keeps its entries (the latest version reads as before; a removed version
    /// still reads in Delta readers while all its files are kept, as in an append-only
    /// history, and fails on a missing file otherwise); the dataset card (README.md) is
    /// rewritten with configs for the kept versions only.
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
