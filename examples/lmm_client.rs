//! Geo-diversification with an OpenAI-compatible model: the paper's four prompts for one
//! photo, sent concurrently, cached on disk, parsed, with the usage report at the end.
//!
//! With no arguments it talks to the loopback mock server, so it runs offline:
//!
//! ```sh
//! cargo run --example lmm_client
//! ```
//!
//! Against a real server, give its base URL, model and a photo; hosted APIs read the key from
//! `OPENAI_API_KEY`, local servers (vLLM, llama.cpp, Ollama) need none:
//!
//! ```sh
//! OPENAI_API_KEY=... cargo run --example lmm_client -- https://api.openai.com/v1 gpt-4o photo.jpg
//! cargo run --example lmm_client -- http://localhost:11434/v1 llava photo.jpg
//! ```

use g3::core::{AnswerParser, ImageInput, LmmGenerator, PromptEnsemble, RetrievedNeighbor};
use g3::prompt::mock::{MockBehaviour, MockChatServer};
use g3::prompt::{
    OpenAiConfig, OpenAiGenerator, RagPromptEnsemble, ResponseCache, RobustAnswerParser,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    // Kept alive for the whole run when used.
    let mut mock = None;
    let (config, image) = match arguments.as_slice() {
        [] => {
            let server = MockChatServer::start(MockBehaviour::default())?;
            let config = OpenAiConfig::local(server.base_url(), "mock-llava");
            mock = Some(server);
            // Any bytes do for the mock; a real model needs a real photo.
            (
                config,
                ImageInput::from_bytes("demo.jpg", vec![0xFF, 0xD8, 0xFF, 0xE0]),
            )
        }
        [base_url, model, photo] => {
            let mut config = OpenAiConfig::local(base_url.clone(), model.clone());
            if std::env::var_os("OPENAI_API_KEY").is_some() {
                config.api_key_env = Some("OPENAI_API_KEY".into());
            }
            (config, ImageInput::from_path(photo)?)
        }
        _ => return Err("usage: lmm_client [BASE_URL MODEL PHOTO]".into()),
    };

    // What retrieval would return for the photo: similar images around Rome, dissimilar
    // ones elsewhere.
    let neighbour =
        |rank: usize, lat: f64, lon: f64| -> Result<RetrievedNeighbor, g3::core::Error> {
            Ok(RetrievedNeighbor {
                key: rank as u64,
                rank,
                similarity: 0.9 - rank as f32 * 0.01,
                location: g3::GeoPoint::new(lat, lon)?,
            })
        };
    let similar = (0..15)
        .map(|rank| neighbour(rank, 41.89 + rank as f64 * 0.01, 12.49))
        .collect::<Result<Vec<_>, _>>()?;
    let dissimilar = (0..15)
        .map(|rank| neighbour(rank, -33.0 + rank as f64, 151.0))
        .collect::<Result<Vec<_>, _>>()?;
    let prompts = RagPromptEnsemble::default().prompts(&similar, &dissimilar)?;

    let cache_path = std::env::temp_dir().join("g3-lmm-client-example.redb");
    let generator = OpenAiGenerator::new(config)?.with_cache(ResponseCache::open(&cache_path)?);
    let generated = generator.generate(&image, &prompts)?;
    for lost in &generated.lost {
        println!(
            "prompt {}: {} samples lost: {}",
            lost.prompt_index, lost.samples, lost.message
        );
    }
    for answer in &generated.answers {
        match RobustAnswerParser.parse(&answer.text) {
            Ok(point) => println!(
                "prompt {} sample {}: {point}",
                answer.prompt_index, answer.sample_index
            ),
            Err(reason) => println!(
                "prompt {} sample {}: rejected ({reason})",
                answer.prompt_index, answer.sample_index
            ),
        }
    }
    println!("\n{}", generator.usage());
    println!(
        "answers cached in {} (run again: nothing is sent)",
        cache_path.display()
    );
    drop(mock);
    Ok(())
}
