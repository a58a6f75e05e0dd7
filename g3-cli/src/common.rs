//! Pieces several commands share: the Ctrl-C stop flag, the
//! database store flags and the import report.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::ValueEnum;
use g3::data::ReverseGeocoder;
use g3::index::{BuildSummary, StoreConfig, StoreKind, VectorPrecision};

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

/// `--kind`: the database's store.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Hnsw,
    Exact,
}

/// `--dtype`: the database's precision.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    I8,
}

impl From<KindArg> for StoreKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Hnsw => StoreKind::Hnsw,
            KindArg::Exact => StoreKind::Exact,
        }
    }
}

impl From<DtypeArg> for VectorPrecision {
    fn from(dtype: DtypeArg) -> Self {
        match dtype {
            DtypeArg::F32 => VectorPrecision::F32,
            DtypeArg::F16 => VectorPrecision::F16,
            DtypeArg::I8 => VectorPrecision::I8,
        }
    }
}

/// What an import wrote, how fast.
pub fn report_import(summary: &BuildSummary, config: &StoreConfig, output: &Path) {
    eprintln!(
        "{} vectors of dimension {} in {}, metric {}: imported in {:.1} s, written to {} in {:.1} s",
        summary.vectors,
        summary.dimension,
        store_name(config),
        config.metric.short_name(),
        summary.add_seconds,
        output.display(),
        summary.total_seconds - summary.add_seconds
    );
}

pub fn store_name(config: &StoreConfig) -> String {
    format!(
        "{} ({})",
        match config.kind {
            StoreKind::Exact => "an exact store",
            StoreKind::Hnsw => "an HNSW store",
        },
        format!("{:?}", config.precision).to_lowercase()
    )
}

/// The offline gazetteer for place names, unless `--no-place-names` was given.
pub fn gazetteer(no_place_names: bool) -> anyhow::Result<Option<ReverseGeocoder>> {
    if no_place_names {
        return Ok(None);
    }
    Ok(Some(ReverseGeocoder::load_default().context(
        "cannot load the offline gazetteer for place names (pass --no-place-names to go without)",
    )?))
}
