//! `g3 locate`: where were these photos taken?

use std::path::PathBuf;

use clap::Args;
use g3::core::GeneratorDescription;
use g3::data::{ImageSource, PlaceName, TarShardImageSource};
use g3::pipeline::GenerationReport;
use g3::{CandidateSource, ImageInput, Prediction};
use serde::Serialize;

use crate::common::gazetteer;
use crate::pipeline_args::{PipelineArgs, build_pipeline, print_generation_summary};
use crate::terminal;

#[derive(Debug, Args)]
#[command(
    override_usage = "g3 locate [OPTIONS] <IMAGE>...\n       g3 locate --print-config [OPTIONS]"
)]
pub struct LocateArgs {
    /// The photos (JPEG, PNG, WebP, GIF); required, except with --print-config. With
    /// --archive, the ids of photos inside the archive.
    #[arg(value_name = "IMAGE", required_unless_present = "print_config")]
    images: Vec<PathBuf>,

    /// Read the photos from this tar archive (repeatable), by id (`a/b/IMG_ID` members are
    /// `IMG_ID`), without unpacking it; its index is saved beside the first.
    #[arg(long = "archive", value_name = "A.tar")]
    archives: Vec<PathBuf>,

    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Print the predictions with their candidate pools as JSON.
    #[arg(long)]
    json: bool,

    /// Leave out place names (no gazetteer needed).
    #[arg(long)]
    no_place_names: bool,
}

#[derive(Debug, Serialize)]
struct Located {
    image: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    place: Option<PlaceName>,
    #[serde(flatten)]
    prediction: Prediction,
}

/// A photo that got no prediction.
#[derive(Debug, Serialize)]
struct Failure {
    image: PathBuf,
    reason: String,
    error: String,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// Who answered the prompts (`asks_model: false` with a notice for the offline
    /// generator); null without Geo-diversification.
    generator: Option<&'a GeneratorDescription>,
    predictions: &'a [Located],
    failures: &'a [Failure],
    /// What the generator was asked, gave, lost and cost.
    generation: Option<&'a GenerationReport>,
}

pub fn run(args: LocateArgs) -> anyhow::Result<()> {
    let config = args.pipeline.config()?;
    if args.pipeline.print_config_if_asked(&config)? {
        return Ok(());
    }
    let geocoder = gazetteer(args.no_place_names)?;
    let mut failures = Vec::new();
    let mut inputs = Vec::with_capacity(args.images.len());
    let mut paths = Vec::with_capacity(args.images.len());
    let archive = if args.archives.is_empty() {
        None
    } else {
        Some(TarShardImageSource::open_beside(&args.archives)?)
    };
    for path in &args.images {
        let read = match &archive {
            Some(archive) => archive
                .get(&path.to_string_lossy())
                .map_err(|error| error.to_string()),
            None => ImageInput::from_path(path).map_err(|error| error.to_string()),
        };
        match read {
            Ok(input) => {
                inputs.push(input);
                paths.push(path);
            }
            Err(error) => failures.push(Failure {
                image: path.clone(),
                reason: "the photo could not be read".into(),
                error: format!("cannot read {}: {error}", path.display()),
            }),
        }
    }
    let pipeline = build_pipeline(&config)?;
    let mut located = Vec::new();
    for (path, result) in paths
        .into_iter()
        .zip(pipeline.locate_each_isolating(&inputs))
    {
        match result {
            Ok(prediction) => {
                let place = geocoder
                    .as_ref()
                    .map(|geocoder| PlaceName::nearest(geocoder, prediction.location));
                located.push(Located {
                    image: path.clone(),
                    place,
                    prediction,
                });
            }
            Err(error) => failures.push(Failure {
                image: path.clone(),
                reason: error.reason(),
                error: error.to_string(),
            }),
        }
    }
    let generation = pipeline.generation_report();
    for failure in &failures {
        terminal::notice(format!(
            "{}: error: {}",
            failure.image.display(),
            failure.error
        ));
    }
    if args.json {
        let report = Report {
            generator: generation.as_ref().map(|report| &report.generator),
            predictions: &located,
            failures: &failures,
            generation: generation.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for entry in &located {
            print_prediction(entry);
        }
    }
    if let Some(report) = &generation {
        print_generation_summary(report);
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "{} of {} photos could not be located",
            failures.len(),
            args.images.len()
        );
    }
    Ok(())
}

fn print_prediction(entry: &Located) {
    let prediction = &entry.prediction;
    let mut line = format!(
        "{}: {:.5}, {:.5}",
        entry.image.display(),
        prediction.location.lat_deg(),
        prediction.location.lon_deg()
    );
    if let Some(place) = &entry.place {
        let names: Vec<&str> = [&place.city, &place.state, &place.country]
            .into_iter()
            .map(String::as_str)
            .filter(|name| !name.is_empty())
            .collect();
        line.push_str(&format!(
            "  {} ({:.0} km from it)",
            names.join(", "),
            place.distance_km
        ));
    }
    println!("{line}");
    let chosen = prediction.chosen_candidate();
    let source = match &chosen.source {
        CandidateSource::Generated {
            prompt_index,
            sample_index,
        } => format!("generated by prompt {prompt_index}, sample {sample_index}"),
        CandidateSource::Retrieved { rank, key, .. } => {
            format!("retrieved database image {key} (rank {rank})")
        }
        CandidateSource::Gallery { index } => format!("gallery point {index}"),
        CandidateSource::Custom { stage } => format!("from {stage}"),
        other => format!("{other:?}"),
    };
    println!(
        "  chosen: {source}, score {}, among {} candidates ({} answers unreadable{})",
        chosen
            .score
            .map_or_else(|| "-".to_owned(), |score| format!("{score:.4}")),
        prediction.candidates.len(),
        prediction.rejected.len(),
        match prediction.lost_samples() {
            0 => String::new(),
            lost => format!(", {lost} lost"),
        }
    );
}
