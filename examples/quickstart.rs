//! Quickstart: the G3 pipeline from the library, photos in, coordinates out.
//!
//! ```sh
//! cargo run --release --example quickstart -- --db mp16-g3.db photo.jpg [more.jpg ...]
//! ```
//!
//! It needs G3's checkpoint (`g3.pth`, HF `Jia-py/G3-checkpoint`, found in the local HF hub
//! cache or given with `G3_CHECKPOINT=/path/g3.pth`) and a database of G3 embeddings
//! (`g3 embed-images --kind database`, then `g3 index build`). Without them it lists what is
//! missing and how to get it. The LMM is the offline density-peak generator; see
//! docs/lmm.md for an OpenAI-compatible model.

use std::process::ExitCode;

use g3::pipeline::Preset;
use g3::{ImageInput, Prediction};

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
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [flag, database, photos @ ..] = arguments.as_slice() else {
        return Err("usage: quickstart --db DATABASE PHOTO...".into());
    };
    if flag != "--db" || photos.is_empty() {
        return Err("usage: quickstart --db DATABASE PHOTO...".into());
    }

    // 1. The paper's configuration, with our database (and checkpoint, if given).
    let mut config = Preset::G3.config();
    config.database = Some(database.into());
    if let Ok(checkpoint) = std::env::var("G3_CHECKPOINT") {
        config.models.g3_checkpoint = checkpoint;
    }

    // 2. Load models and database; a missing file stops here, naming every one.
    let pipeline = config.build(&mut |step| eprintln!("{step}..."))?;

    // 3. Locate.
    let photos: Vec<ImageInput> = photos
        .iter()
        .map(ImageInput::from_path)
        .collect::<std::io::Result<_>>()?;
    for prediction in pipeline.locate(&photos)? {
        report(&prediction);
    }
    Ok(())
}

fn report(prediction: &Prediction) {
    println!(
        "{}: {:.5}, {:.5}",
        prediction.image_id,
        prediction.location.lat_deg(),
        prediction.location.lon_deg()
    );
    // Every candidate, with where it came from and the verifier's score.
    for (index, candidate) in prediction.candidates.iter().enumerate() {
        let marker = if index == prediction.chosen {
            "->"
        } else {
            "  "
        };
        println!(
            "  {marker} {:>9.4}, {:>10.4}  score {:>7.4}  {:?}",
            candidate.location.lat_deg(),
            candidate.location.lon_deg(),
            candidate.score.unwrap_or(f32::NAN),
            candidate.source
        );
    }
}
