//! An ablation sweep: every preset of the paper's Table 1 and 4 (G3, its three ablations,
//! Img2Loc, GeoCLIP, kNN) and G3's successor GeoRanker over one dataset, each into its own
//! resumable results file, then one accuracy table.
//!
//! ```sh
//! cargo run --release --example ablation_sweep -- \
//!     --metadata im2gps3k_places365.csv --images im2gps3k/ \
//!     --g3-db mp16-g3.db --clip-db mp16-clip.db --output sweep/ [--limit 500]
//! ```
//!
//! `--g3-db` holds G3's database embeddings (`g3 embed-images --kind database`), `--clip-db`
//! plain CLIP ones (`--kind clip`) for the "w/o Geo-A" and Img2Loc presets; `--photos` the
//! database's photos (MP16-Pro's tar archive, or a folder) that GeoRanker shows its model,
//! which also needs `g3 fetch georanker`. A preset whose files are missing is reported and
//! skipped; a rerun resumes every unfinished file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use g3::core::Progress;
use g3::data::{FolderImageSource, MetadataOptions, MetadataReader};
use g3::dataset_run::{DatasetRunOptions, run_dataset};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::pipeline::{Preset, QueryEmbeddingKind, VerifierConfig};

/// Each preset's progress as log lines.
struct BatchLog(Preset);

impl Progress for BatchLog {
    fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
        eprintln!("{}: {phase} {} {unit}", self.0, total.unwrap_or_default());
    }
    fn notice(&self, message: &str) {
        eprintln!("{}: {message}", self.0);
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let required = |name: &str| -> Result<PathBuf, String> {
        options
            .get(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{name} is required"))
    };
    let (metadata, images, output) = (
        required("metadata")?,
        required("images")?,
        required("output")?,
    );
    let limit: usize = options.get("limit").map_or(Ok(usize::MAX), |n| n.parse())?;
    std::fs::create_dir_all(&output)?;
    let images = FolderImageSource::new(&images)?;
    let mut records = Vec::new();
    for record in MetadataReader::open(&metadata, MetadataOptions::default())?.take(limit) {
        records.push(record?);
    }

    let mut table = Vec::new();
    for preset in Preset::ALL {
        let mut config = preset.config();
        config.database = match config.query_embedding {
            QueryEmbeddingKind::G3Database => options.get("g3-db").map(PathBuf::from),
            QueryEmbeddingKind::Clip => options.get("clip-db").map(PathBuf::from),
            QueryEmbeddingKind::GeoClip => None,
        };
        if let (VerifierConfig::GeoRanker(settings), Some(photos)) =
            (&mut config.verifier, options.get("photos"))
        {
            settings.photos = vec![PathBuf::from(photos)];
        }
        let missing = config.missing_files();
        if !missing.is_empty() {
            eprintln!("{preset}: skipped, missing:");
            for file in missing {
                eprintln!("  - {file}");
            }
            continue;
        }
        let results_path = output.join(format!("{preset}.csv"));
        let summary = run_dataset(
            &records,
            &images,
            &results_path,
            &DatasetRunOptions::default(),
            &mut || config.build(&mut |step| eprintln!("{preset}: {step}")),
            &AtomicBool::new(false),
            &BatchLog(preset),
        )?;
        if summary.missing() > 0 {
            eprintln!(
                "{preset}: {} photos without a prediction (see {}); a rerun retries them",
                summary.missing(),
                summary.errors_path.display()
            );
        }
        let evaluation = evaluate_predictions_csv(
            &results_path,
            None,
            &EvaluationOptions::default(),
            &mut |_| {},
        )?;
        table.push((preset, evaluation.report));
    }

    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "preset", "1 km", "25 km", "200 km", "750 km", "2500 km"
    );
    for (preset, report) in &table {
        let cells: Vec<String> = report
            .thresholds
            .iter()
            .map(|threshold| format!("{:>7.2}%", threshold.percent))
            .collect();
        println!("{:<24} {}", preset.name(), cells.join(" "));
    }
    Ok(())
}

/// `--name value` pairs.
fn parse_options() -> Result<HashMap<String, String>, String> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut options = HashMap::new();
    let mut pairs = arguments.chunks(2);
    for pair in &mut pairs {
        match pair {
            [name, value] if name.starts_with("--") => {
                options.insert(name.trim_start_matches("--").to_owned(), value.clone());
            }
            _ => return Err(format!("expected --name value pairs, got {pair:?}")),
        }
    }
    Ok(options)
}
