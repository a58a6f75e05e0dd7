//! Pieces several commands share: model resolution, CSV quoting, the Ctrl-C stop flag.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use g3::align::pretrained::ModelSource;

/// Finds a model locally; with the `download` feature, fetches an HF repo id that is not
/// cached (from `$HF_ENDPOINT`, with `$HF_TOKEN` if set), with a progress bar.
pub fn resolve_model(name: &str) -> anyhow::Result<ModelSource> {
    #[cfg(feature = "download")]
    {
        use g3::align::pretrained::DEFAULT_HF_ENDPOINT;
        let endpoint =
            std::env::var("HF_ENDPOINT").unwrap_or_else(|_| DEFAULT_HF_ENDPOINT.to_owned());
        let token = std::env::var("HF_TOKEN").ok();
        let progress = crate::terminal::progress_bar(
            0,
            "{spinner} downloading {msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        );
        let source = ModelSource::resolve_or_download(
            name,
            &endpoint,
            token.as_deref(),
            &mut |file, done, total| {
                progress.set_message(file.to_owned());
                progress.set_length(total.unwrap_or(done));
                progress.set_position(done);
            },
        );
        progress.finish_and_clear();
        Ok(source?)
    }
    #[cfg(not(feature = "download"))]
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
