//! Pipeline overhead per query: everything but the LMM and the image encoder, against a
//! large HNSW database of G3-shaped vectors (the issue's target: at most 5 ms per query on
//! the CPU against 1M vectors).
//!
//! Measured per query, one query at a time: HNSW search for the 15 most similar and 15 most
//! dissimilar images, rendering the paper's four prompts, parsing 20 answers (a canned
//! generator stands in for the LMM and answers instantly), the candidate pool, and G3's
//! verification with a full-size GPS encoder (2 x 512 capsules and the 768-d head) on all
//! 21 candidates. The query embedding is precomputed (the image encoder is excluded). Both
//! one query per call and batches of 16 (as `g3 run` calls it: one search call and one
//! GPS-encoder pass for the batch) are measured.
//!
//! ```sh
//! cargo bench --bench pipeline                      # 1,000,000 x 2304, i8 storage
//! G3_BENCH_ROWS=100000 G3_BENCH_PRECISION=f16 cargo bench --bench pipeline
//! ```
//!
//! The database is built once (about an hour for 1M rows on 2 cores) and kept in
//! `target/tmp/`, so later runs only open it.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use g3::align::{ComputeDevice, GpsEncoder, GpsEncoderConfig};
use g3::core::{
    Embeddings, GeneratedAnswers, GeoPoint, ImageEmbedder, ImageInput, LmmAnswer, LmmGenerator,
    PromptRequest, Result, SearchDirection, VectorStore,
};
use g3::index::{Database, EntryMetadata, HnswConfig, HnswStore, Metric, VectorPrecision};
use g3::pipeline::{Pipeline, PipelineSettings};
use g3::prompt::{PromptEnsembleConfig, RagPromptEnsemble};
use g3::verify::ImageGpsVerifier;

/// G3's database vector: three L2-normalised 768-d parts.
const PART: usize = 768;
const DIMENSION: usize = 3 * PART;
const CENTRES: usize = 1000;
const QUERIES: usize = 64;

fn rows() -> usize {
    std::env::var("G3_BENCH_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(1_000_000)
}

fn precision() -> VectorPrecision {
    match std::env::var("G3_BENCH_PRECISION").as_deref() {
        Ok("f32") => VectorPrecision::F32,
        Ok("f16") => VectorPrecision::F16,
        _ => VectorPrecision::I8,
    }
}

/// Deterministic clustered vectors: each part a noisy copy of one of 1,000 centres.
struct VectorSource {
    centres: Vec<f32>,
    state: u64,
}

impl VectorSource {
    fn new(seed: u64) -> Self {
        let mut source = VectorSource {
            centres: Vec::new(),
            state: seed,
        };
        source.centres = (0..CENTRES * DIMENSION).map(|_| source.uniform()).collect();
        source
    }

    fn uniform(&mut self) -> f32 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn rows(&mut self, first: usize, count: usize) -> Vec<f32> {
        let mut values = Vec::with_capacity(count * DIMENSION);
        for row in first..first + count {
            let centre = (row * 7919) % CENTRES;
            for part in 0..3 {
                let start = values.len();
                for column in 0..PART {
                    let c = self.centres[centre * DIMENSION + part * PART + column];
                    let noise = self.uniform();
                    values.push(c + 0.6 * noise);
                }
                let slice = &mut values[start..];
                let norm = slice.iter().map(|v| v * v).sum::<f32>().sqrt();
                slice.iter_mut().for_each(|v| *v /= norm);
            }
        }
        values
    }
}

fn location(row: usize) -> GeoPoint {
    let lat = -60.0 + ((row * 37) % 12_000) as f64 / 100.0;
    let lon = -180.0 + ((row * 101) % 36_000) as f64 / 100.0;
    GeoPoint::new(lat, lon).expect("in range")
}

/// The database, built once and cached on disk.
fn database(rows: usize, precision: VectorPrecision) -> Database {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pipeline-bench-{rows}x{DIMENSION}-{precision:?}.db"
    ));
    if path.exists()
        && let Ok(database) = Database::open(&path)
    {
        return database;
    }
    eprintln!(
        "building a {rows} x {DIMENSION} HNSW database ({precision:?}) once, into {}",
        path.display()
    );
    let started = Instant::now();
    let mut store = HnswStore::new(
        DIMENSION,
        Metric::InnerProduct,
        precision,
        HnswConfig::default(),
    )
    .expect("valid settings");
    let mut source = VectorSource::new(1);
    const CHUNK: usize = 50_000;
    for first in (0..rows).step_by(CHUNK) {
        let count = CHUNK.min(rows - first);
        store
            .add(&source.rows(first, count), &|_| {})
            .expect("valid vectors");
        eprintln!(
            "  {} rows in {:.0} s",
            first + count,
            started.elapsed().as_secs_f64()
        );
    }
    let locations: Vec<GeoPoint> = (0..rows).map(location).collect();
    let database = Database::from_hnsw_store(store, EntryMetadata::from_locations(&locations))
        .expect("one location per row");
    database.save(&path).expect("the bench folder is writable");
    eprintln!("built in {:.0} s", started.elapsed().as_secs_f64());
    database
}

/// Query embeddings computed beforehand, looked up by image id.
struct PrecomputedEmbedder {
    queries: Vec<f32>,
}

impl ImageEmbedder for PrecomputedEmbedder {
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn embed_images(&self, images: &[ImageInput]) -> Result<Embeddings> {
        let mut values = Vec::with_capacity(images.len() * DIMENSION);
        for image in images {
            let row: usize = image.id().parse().expect("ids are query rows");
            values.extend_from_slice(&self.queries[row * DIMENSION..][..DIMENSION]);
        }
        Embeddings::new(DIMENSION, values)
    }
}

/// Answers every prompt instantly with `samples` JSON answers near its first reference, all
/// distinct (the verifier embeds repeated places once; distinct answers are its worst case).
struct CannedGenerator;

impl LmmGenerator for CannedGenerator {
    fn generate(&self, _image: &ImageInput, prompts: &[PromptRequest]) -> Result<GeneratedAnswers> {
        let mut answers = Vec::new();
        for prompt in prompts {
            let base = prompt
                .similar
                .first()
                .copied()
                .unwrap_or(GeoPoint::new(48.85, 2.35)?);
            for sample in 0..prompt.samples {
                answers.push(LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index: sample,
                    text: format!(
                        "{{\"latitude\": {:.4}, \"longitude\": {:.4}}}",
                        (base.lat_deg() + 0.1 * f64::from(sample)).min(89.0),
                        wrap(base.lon_deg() + 0.01 * (1 + prompt.prompt_index) as f64)
                    ),
                });
            }
        }
        Ok(answers.into())
    }
}

fn wrap(lon: f64) -> f64 {
    if lon >= 180.0 { lon - 360.0 } else { lon }
}

fn pipeline_overhead(criterion: &mut Criterion) {
    let rows = rows();
    let precision = precision();
    let database = database(rows, precision);
    let queries = VectorSource::new(99).rows(rows, QUERIES);
    let device = ComputeDevice::Cpu.to_device().expect("the CPU backend");
    let gps = GpsEncoder::init(GpsEncoderConfig::g3(), &device, 5).expect("valid config");
    let query_embeddings = Embeddings::new(DIMENSION, queries.clone()).expect("rows");

    let mut group = criterion.benchmark_group(format!("pipeline/{rows}x{DIMENSION}-{precision:?}"));
    group.sample_size(20);
    let mut next = 0;
    group.bench_function("hnsw_search_15_similar_15_dissimilar", |b| {
        b.iter(|| {
            let query = Embeddings::new(DIMENSION, query_embeddings.row(next % QUERIES).to_vec())
                .expect("one row");
            next += 1;
            black_box(
                database
                    .search(&query, 15, SearchDirection::Similar)
                    .unwrap(),
            );
            black_box(
                database
                    .search(&query, 15, SearchDirection::Dissimilar)
                    .unwrap(),
            );
        })
    });
    // Each direction alone: one photo's two searches run side by side in the pipeline, so
    // the slower one (the dissimilar search's wider beam) sets their cost.
    for (name, direction) in [
        ("hnsw_search_15_similar", SearchDirection::Similar),
        ("hnsw_search_15_dissimilar", SearchDirection::Dissimilar),
    ] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let query =
                    Embeddings::new(DIMENSION, query_embeddings.row(next % QUERIES).to_vec())
                        .expect("one row");
                next += 1;
                black_box(database.search(&query, 15, direction).unwrap());
            })
        });
    }
    let candidates: Vec<GeoPoint> = (0..21).map(location).collect();
    group.bench_function("gps_encoder_21_candidates", |b| {
        b.iter(|| black_box(g3::core::GpsEmbedder::embed_locations(&gps, &candidates).unwrap()))
    });

    let pipeline = Pipeline::builder()
        .image_embedder(PrecomputedEmbedder { queries })
        .vector_store(database)
        .prompt_ensemble(RagPromptEnsemble::new(PromptEnsembleConfig::default()).unwrap())
        .generator(CannedGenerator)
        .verifier(ImageGpsVerifier::g3(gps))
        .settings(PipelineSettings {
            concurrent_queries: 1,
            ..PipelineSettings::default()
        })
        .build()
        .expect("the stages fit");
    let images: Vec<ImageInput> = (0..QUERIES)
        .map(|row| ImageInput::from_bytes(row.to_string(), Vec::new()))
        .collect();
    for prediction in pipeline.locate(&images[..8]).unwrap() {
        let mut places: Vec<(u64, u64)> = prediction
            .candidates
            .iter()
            .map(|c| {
                (
                    c.location.lat_deg().to_bits(),
                    c.location.lon_deg().to_bits(),
                )
            })
            .collect();
        places.sort_unstable();
        places.dedup();
        assert_eq!(
            places.len(),
            21,
            "20 generated and the retrieved top 1, all distinct: the verifier's worst case"
        );
    }
    let mut next = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("overhead_per_query", |b| {
        b.iter(|| {
            let image = &images[next % QUERIES];
            next += 1;
            black_box(pipeline.locate(std::slice::from_ref(image)).unwrap())
        })
    });
    // `g3 run` locates photos in batches: one search call and one GPS-encoder pass each.
    const BATCH: usize = 16;
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = 0;
    group.bench_function("overhead_in_batches_of_16", |b| {
        b.iter(|| {
            let start = (next * BATCH) % QUERIES;
            next += 1;
            black_box(pipeline.locate(&images[start..start + BATCH]).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline_overhead);
criterion_main!(benches);
