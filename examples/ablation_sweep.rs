//! An ablation sweep: every preset of the paper's Table 1 and 4 (G3, its three ablations,
//! Img2Loc, GeoCLIP, kNN) over one dataset, each into its own resumable results file, then
//! one accuracy table.
//!
//! ```sh
//! cargo run --release --example ablation_sweep -- \
//!     --metadata im2gps3k_places365.csv --images im2gps3k/ \
//!     --g3-db mp16-g3.db --clip-db mp16-clip.db --output sweep/ [--limit 500]
//! ```
//!
//! `--g3-db` holds G3's database embeddings (`g3 embed-images --kind database`), `--clip-db`
//! plain CLIP ones (`--kind clip`) for the "w/o Geo-A" and Img2Loc presets. A preset whose
//! files are missing is reported and skipped; a rerun resumes every unfinished file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use g3::data::{MetadataOptions, MetadataReader};
use g3::evaluation::{EvaluationOptions, evaluate_predictions_csv};
use g3::pipeline::{Preset, QueryEmbeddingKind};
use g3::{ImageInput, ResultsFile};

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
        let missing = config.missing_files();
        if !missing.is_empty() {
            eprintln!("{preset}: skipped, missing:");
            for file in missing {
                eprintln!("  - {file}");
            }
            continue;
        }
        let results_path = output.join(format!("{preset}.csv"));
        let mut results = ResultsFile::open(&results_path)?;
        let pending: Vec<_> = records
            .iter()
            .filter(|record| !results.is_finished(&record.image_id))
            .collect();
        if !pending.is_empty() {
            let pipeline = config.build(&mut |step| eprintln!("{preset}: {step}"))?;
            for (batch_index, batch) in pending.chunks(16).enumerate() {
                let mut photos = Vec::with_capacity(batch.len());
                let mut truths = Vec::with_capacity(batch.len());
                for record in batch {
                    match std::fs::read(images.join(&record.image_id)) {
                        Ok(bytes) => {
                            photos.push(ImageInput::from_bytes(record.image_id.clone(), bytes));
                            truths.push(record.location);
                        }
                        Err(error) => eprintln!("{preset}: {}: {error}", record.image_id),
                    }
                }
                for (truth, outcome) in truths.into_iter().zip(pipeline.locate_each(&photos)?) {
                    match outcome {
                        Ok(prediction) => results.append(truth, &prediction)?,
                        Err(error) => eprintln!("{preset}: {error}"),
                    }
                }
                results.flush()?;
                eprintln!(
                    "{preset}: {} of {} photos",
                    batch_index * 16 + batch.len(),
                    pending.len()
                );
            }
        }
        drop(results);
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
