//! Pieces several commands share: model resolution, CSV quoting, the Ctrl-C stop flag.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use g3::align::pretrained::ModelSource;

/// Finds a model locally: a directory, a file, or an HF repo id in the HF cache (`g3 fetch`).
pub fn resolve_model(name: &str) -> anyhow::Result<ModelSource> {
    Ok(ModelSource::resolve(name)?)
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A flag that Ctrl-C raises, for long commands that stop cleanly between units of work
/// (a batch, a training step) instead of dying mid-write. The first Ctrl-C prints `notice`
/// and raises the flag; a second one exits at once with status 130, for a user who does not
/// want to wait.
pub fn stop_on_ctrl_c(notice: &'static str) -> anyhow::Result<std::sync::Arc<AtomicBool>> {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let raised = std::sync::Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if raised.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        crate::terminal::notice(format!("\n{notice}"));
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}
