//! The `flywheel` binary: command-line parsing and wiring. Everything else lives in the crates.

mod cli;
mod error;
mod fingerprint;
mod jobfile;
mod lineage;
mod local;
mod mpi_run;
mod plan;
mod progress;
#[cfg(feature = "query")]
mod query_cmd;
mod rerun;
mod shipped;
mod signals;
mod stats_cmd;
mod status;
mod submit;
mod table_cmd;
#[cfg(feature = "view")]
mod view_cmd;

use clap::Parser;
use error::CliError;

fn main() {
    init_tracing();
    let cli = cli::Cli::parse();
    if matches!(
        cli.command,
        cli::Command::Map(_) | cli::Command::Run(_) | cli::Command::Rerun(_)
    ) {
        signals::install();
    } else if !matches!(cli.command, cli::Command::View(_)) {
        // Not the viewer: a client closing its connection must never kill the server.
        signals::die_quietly_on_closed_stdout();
    }
    std::process::exit(error::exit_code(dispatch(cli)));
}

fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLYWHEEL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only on a terminal: a Slurm log file or a pipe gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

fn dispatch(cli: cli::Cli) -> Result<(), CliError> {
    match cli.command {
        cli::Command::Map(args) => local::map(args),
        cli::Command::Run(args) => mpi_run::run(args),
        cli::Command::Submit(args) => submit::submit(args),
        cli::Command::Table(t) => table_cmd::table(t),
        #[cfg(feature = "query")]
        cli::Command::Query(args) => query_cmd::query(args),
        #[cfg(not(feature = "query"))]
        cli::Command::Query(_) => Err(error::bad_input(anyhow::anyhow!(
            "this flywheel was built without SQL (cargo feature `query`); build it with default features"
        ))),
        #[cfg(feature = "view")]
        cli::Command::View(args) => view_cmd::view(args),
        #[cfg(not(feature = "view"))]
        cli::Command::View(_) => Err(error::bad_input(anyhow::anyhow!(
            "this flywheel was built without the viewer (cargo feature `view`); build it with default features"
        ))),
        cli::Command::Rerun(args) => rerun::rerun(args),
        cli::Command::Gpus {
            output: Some(out),
            json,
        } => status::worker_gpus(&out, json),
        cli::Command::Gpus { output: None, json } => gpus(json),
        cli::Command::Status { output, json } => status::status(&output, json),
    }
}

/// `flywheel gpus`: NVML's readings of every GPU, as workers would report them.
fn gpus(json: bool) -> Result<(), CliError> {
    let n = flywheel_worker::gpu_count();
    let samples: Vec<_> = (0..n)
        .filter_map(|i| flywheel_worker::gpu_sampler(&[flywheel_worker::GpuId::Index(i)]).sample())
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&samples).unwrap_or_default()
        );
        return Ok(());
    }
    if samples.is_empty() {
        println!("no GPU (NVML found no device or no NVIDIA driver)");
    }
    for s in samples {
        println!(
            "GPU {}: {} {} · memory {} / {} MiB · utilisation {}% · {} · {}{}",
            s.index,
            s.name,
            s.uuid.as_deref().unwrap_or("(no UUID)"),
            s.memory_used_mb,
            s.memory_total_mb,
            s.utilization,
            s.power_w
                .map(|w| format!("{w:.0} W"))
                .unwrap_or_else(|| "power ?".into()),
            s.temperature_c
                .map(|t| format!("{t} °C"))
                .unwrap_or_else(|| "temperature ?".into()),
            s.problem
                .map(|p| format!(" · PROBLEM: {p}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
