//! The `flywheel` binary: command-line parsing and wiring. Everything else lives in the crates.

mod cli;
mod error;
mod jobfile;
mod lineage;
mod local;
mod mpi_run;
mod plan;
mod progress;
mod submit;
mod table_cmd;

use clap::Parser;
use error::CliError;

fn main() {
    init_tracing();
    let cli = cli::Cli::parse();
    let code = match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            e.code
        }
    };
    std::process::exit(code);
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLYWHEEL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn dispatch(cli: cli::Cli) -> Result<(), CliError> {
    match cli.command {
        cli::Command::Map(args) => local::map(args),
        cli::Command::Run(args) => mpi_run::run(args),
        cli::Command::Submit(args) => submit::submit(args),
        cli::Command::Table(t) => table_cmd::table(t),
    }
}
