//! Status lines and the progress bar.
//!
//! Every event is one line on stderr that starts with a right-aligned verb (`Fresh`, `Run`,
//! `Done`, `Failed`, `Retry`, `Skipped`, `Waiting`) and the stage name, colored on a terminal
//! unless `NO_COLOR` is set. On a terminal an indicatif bar below the lines counts finished
//! stages; elsewhere (CI logs, pipes) only the lines are written.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub enum Verb {
    Fresh,
    Run,
    Done,
    Failed,
    Retry,
    Skipped,
    Waiting,
    Plan,
}

impl Verb {
    fn text(self) -> &'static str {
        match self {
            Verb::Fresh => "Fresh",
            Verb::Run => "Run",
            Verb::Done => "Done",
            Verb::Failed => "Failed",
            Verb::Retry => "Retry",
            Verb::Skipped => "Skipped",
            Verb::Waiting => "Waiting",
            Verb::Plan => "Plan",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Verb::Fresh | Verb::Done => "\x1b[1;32m",
            Verb::Run | Verb::Plan => "\x1b[1;36m",
            Verb::Failed => "\x1b[1;31m",
            Verb::Retry | Verb::Waiting | Verb::Skipped => "\x1b[1;33m",
        }
    }
}

pub struct Progress {
    color: bool,
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `quiet` silences per-stage lines (but not failures).
    pub fn new(total: usize, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let bar = (tty && total > 0).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} {wide_msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix("Running");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { color, quiet, bar }
    }

    /// A status line for one stage.
    pub fn line(&self, verb: Verb, stage: &str, detail: &str) {
        if self.quiet && !matches!(verb, Verb::Failed | Verb::Waiting) {
            return;
        }
        let v = if self.color {
            format!("{}{:>12}\x1b[0m", verb.color(), verb.text())
        } else {
            format!("{:>12}", verb.text())
        };
        let text = if detail.is_empty() {
            format!("{v} {stage}")
        } else {
            format!("{v} {stage} ({detail})")
        };
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "{text}");
            }
        }
    }

    /// Free text under a stage (a failure's log tail).
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn advance(&self, running: &[String]) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(running.join(", "));
        }
    }

    pub fn set_running(&self, running: &[String]) {
        if let Some(bar) = &self.bar {
            bar.set_message(running.join(", "));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
