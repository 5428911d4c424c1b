//! Progress: a bar on a terminal, a line every few seconds otherwise (sbatch logs).

use flywheel_coordinator::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct ProgressReporter {
    bar: Option<ProgressBar>,
    enabled: bool,
    started: Instant,
    last_line: Instant,
    last: Option<Progress>,
}

impl ProgressReporter {
    pub fn new(enabled: bool) -> ProgressReporter {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows · {msg} · {per_sec} · ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        ProgressReporter {
            bar,
            enabled,
            started: now,
            last_line: now,
            last: None,
        }
    }

    pub fn update(&mut self, p: Progress) {
        if !self.enabled || self.last == Some(p) {
            return;
        }
        self.last = Some(p);
        if let Some(bar) = &self.bar {
            bar.set_length(p.rows_total);
            bar.set_position(p.rows_done);
            bar.set_message(format!(
                "chunks {}/{} · workers {}",
                p.chunks_done, p.chunks_total, p.workers_live
            ));
        } else if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            eprintln!("{}", self.line(p));
        }
    }

    fn line(&self, p: Progress) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = (p.rows_done - p.rows_carried) as f64 / secs;
        let eta = if rate > 0.0 {
            format!(
                "{:.0}s",
                (p.rows_total.saturating_sub(p.rows_done)) as f64 / rate
            )
        } else {
            "?".into()
        };
        format!(
            "progress: chunks {}/{} · rows {}/{} · {:.0} rows/s · ETA {eta} · workers {}",
            p.chunks_done, p.chunks_total, p.rows_done, p.rows_total, rate, p.workers_live
        )
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        } else if let (true, Some(p)) = (self.enabled, self.last) {
            eprintln!("{}", self.line(p));
        }
    }
}
