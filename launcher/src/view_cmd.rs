//! `flywheel view`: the viewer in the browser (the `flywheel-view` crate), on the first line
//! of stdout the address to open.

use crate::cli::ViewArgs;
use crate::error::{bad_input, CliError};
use std::io::Write;

pub fn view(args: ViewArgs) -> Result<(), CliError> {
    let options = flywheel_view::Options {
        paths: args.paths,
        host: args.host,
        port: args.port,
    };
    flywheel_view::serve(options, |url| {
        let mut out = std::io::stdout().lock();
        // A closed stdout does not stop the server: the address is also logged.
        let _ = writeln!(out, "flywheel view: {url}").and_then(|()| out.flush());
        tracing::info!("serving at {url}");
    })
    .map_err(bad_input)
}
