//! What the `g3` binary shows on stderr: log lines from `tracing` (warnings by default,
//! `-v`/`-q` and `RUST_LOG` change that), progress bars that log lines do not break, notices,
//! and errors as messages without a Rust backtrace unless `-v` asks for one.
//!
//! Every progress bar is made here and drawn through one `MultiProgress`; log lines are
//! written through the same `MultiProgress` (tracing-indicatif's writer), which lifts the
//! bars off the screen for the line and draws them again below it.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_indicatif::writer::{IndicatifWriter, Stderr};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How much the user asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only; no bars, notices or summaries.
    Quiet,
    /// Warnings, notices, summaries and bars.
    Normal,
    /// `-v`: also debug messages of g3's crates, and error backtraces when captured.
    Verbose,
    /// `-vv`: also g3's traces and other crates' debug messages.
    Trace,
}

impl Verbosity {
    /// From the `-v` count and `-q`.
    pub fn from_flags(verbose: u8, quiet: bool) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            (false, _) => Verbosity::Trace,
        }
    }

    /// The log filter when `RUST_LOG` is not set.
    fn default_filter(self) -> String {
        const CRATES: [&str; 8] = [
            "g3",
            "g3_core",
            "g3_align",
            "g3_index",
            "g3_prompt",
            "g3_verify",
            "g3_data",
            // Its warning that a cached file was used because the hub was unreachable.
            "g3_hub",
        ];
        let ours = |level: &str| {
            CRATES
                .iter()
                .map(|name| format!("{name}={level}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Verbosity::Quiet => "error".to_owned(),
            Verbosity::Normal => "warn".to_owned(),
            Verbosity::Verbose => format!("info,{}", ours("debug")),
            Verbosity::Trace => format!("debug,{}", ours("trace")),
        }
    }
}

struct Terminal {
    progress: MultiProgress,
    verbosity: Verbosity,
}

static TERMINAL: OnceLock<Terminal> = OnceLock::new();

fn terminal() -> &'static Terminal {
    TERMINAL.get_or_init(|| Terminal {
        progress: MultiProgress::new(),
        verbosity: Verbosity::Normal,
    })
}

/// Installs the log subscriber and the shared progress display; call once, first thing.
pub fn init(verbosity: Verbosity) {
    let progress = MultiProgress::new();
    if verbosity == Verbosity::Quiet {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(verbosity.default_filter()));
    let detailed = matches!(verbosity, Verbosity::Verbose | Verbosity::Trace);
    let log_lines = tracing_subscriber::fmt::layer()
        .with_writer(IndicatifWriter::<Stderr>::new(progress.clone()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(detailed)
        .without_time();
    // A second init (tests calling main twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_lines)
        .try_init();
    let _ = TERMINAL.set(Terminal {
        progress,
        verbosity,
    });
}

/// A progress bar of `length` steps drawn with `template` (indicatif's syntax), below any
/// other active bar; hidden under `-q` and when stderr is not a terminal.
pub fn progress_bar(length: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|error| panic!("progress template {template:?}: {error}"));
    terminal()
        .progress
        .add(ProgressBar::new(length).with_style(style))
}

/// A spinner drawn with `template` that ticks on its own (for steps of unknown length).
pub fn spinner(template: &str) -> ProgressBar {
    let spinner = progress_bar(0, template);
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}

/// Prints a line for the user on stderr (a notice, a summary), without breaking progress
/// bars; nothing under `-q`.
pub fn notice(message: impl std::fmt::Display) {
    let terminal = terminal();
    if terminal.verbosity != Verbosity::Quiet {
        terminal.progress.suspend(|| eprintln!("{message}"));
    }
}

/// Prints an error the user can act on: the message and its causes, each once. A backtrace
/// only with `-v` (and when one was captured: `RUST_BACKTRACE=1`), never for `g3`'s own
/// error messages otherwise.
pub fn report_error(error: &anyhow::Error) {
    let terminal = terminal();
    let mut text = format!("error: {error}");
    let mut shown = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        // Many messages already quote their cause; do not print it twice.
        if !shown.contains(&cause) {
            text.push_str(&format!("\n  caused by: {cause}"));
            shown.push_str(&cause);
        }
    }
    if matches!(terminal.verbosity, Verbosity::Verbose | Verbosity::Trace) {
        let backtrace = error.backtrace();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            text.push_str(&format!("\n\nbacktrace:\n{backtrace}"));
        }
    }
    terminal.progress.suspend(|| eprintln!("{text}"));
}

/// A library job's progress drawn as bars: a bar per counted phase, a spinner for a phase
/// of unknown length, notices printed above them.
#[derive(Default)]
pub struct Bars {
    current: std::sync::Mutex<Option<ProgressBar>>,
}

impl g3::core::Progress for Bars {
    fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) if unit == "bytes" => progress_bar(
                total,
                &format!(
                    "{{spinner}} {phase} {{bar:30}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
                ),
            ),
            Some(total) => progress_bar(
                total,
                &format!(
                    "{{spinner}} {phase} {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}})"
                ),
            ),
            None => spinner(&format!("{{spinner}} {phase}")),
        };
        if let Some(previous) = self.lock().replace(bar) {
            previous.finish_and_clear();
        }
    }

    fn advance(&self, units: u64) {
        if let Some(bar) = self.lock().as_ref() {
            bar.inc(units);
        }
    }

    fn message(&self, message: &str) {
        if let Some(bar) = self.lock().as_ref() {
            bar.set_message(message.to_owned());
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }

    fn notice(&self, message: &str) {
        notice(message);
    }
}

impl Bars {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_choose_the_verbosity_and_its_filter() {
        assert_eq!(Verbosity::from_flags(0, true), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(0, false), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(1, false), Verbosity::Verbose);
        assert_eq!(Verbosity::from_flags(3, false), Verbosity::Trace);
        assert_eq!(Verbosity::Normal.default_filter(), "warn");
        let verbose = Verbosity::Verbose.default_filter();
        assert!(verbose.starts_with("info,") && verbose.contains("g3_prompt=debug"));
        for verbosity in [
            Verbosity::Quiet,
            Verbosity::Normal,
            Verbosity::Verbose,
            Verbosity::Trace,
        ] {
            EnvFilter::try_new(verbosity.default_filter()).unwrap();
        }
    }
}
