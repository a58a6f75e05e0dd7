//! The library jobs behind the commands, called in-process as a library user would: a photo
//! set embedded in shards and built into a database, a feature cache split and joined, a
//! dataset run stopped, resumed and finished. (The commands' own tests, in g3-cli, check the
//! flags, messages and files of the same jobs.)

mod support;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use g3::MappedMatrix;
use g3::Preset;
use g3::align::ImageEmbeddingKind;
use g3::cache_features::{CacheFeaturesOptions, FeatureRow, cache_features, join_feature_parts};
use g3::core::{Progress, VectorStore};
use g3::data::{
    FolderImageSource, MetadataOptions, MetadataReader, MetadataRecord, PhotoSet, WorkShard,
};
use g3::dataset_run::{DatasetRunOptions, run_dataset};
use g3::embed_images::{EmbedImagesOptions, EmbeddingParts, EmbeddingTarget, embed_photo_set};
use g3::index::{
    Database, MetadataCsvOptions, MetadataSource, Metric, StoreConfig, build_from_embeddings,
};
use support::{DATABASE_IMAGES, build_database, fixture, g3_encoder};

/// Records what a job reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn start(&self, phase: &str, _unit: &str, total: Option<u64>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {phase} {total:?}"));
    }
    fn notice(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

impl Recorder {
    fn saw(&self, words: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(words))
    }
}

fn matrix_rows(path: &Path) -> Vec<Vec<f32>> {
    let matrix = MappedMatrix::open(path).unwrap();
    (0..matrix.rows())
        .map(|row| matrix.row(row).to_vec())
        .collect()
}

#[test]
fn shards_embedded_and_joined_equal_one_file_and_build_a_database_by_id() {
    let directory = tempfile::tempdir().unwrap();
    let encoder = g3_encoder(ImageEmbeddingKind::Clip);
    let photos = PhotoSet::open(Some(&fixture("images")), None, &[]).unwrap();
    let options = EmbedImagesOptions {
        model: "tiny".into(),
        kind: "clip".into(),
        block_photos: 3,
        ..EmbedImagesOptions::default()
    };

    let whole = directory.path().join("whole.npy");
    let summary = embed_photo_set(
        &encoder,
        &photos,
        &EmbeddingTarget::File(whole.clone()),
        &options,
        &(),
    )
    .unwrap();
    assert_eq!(summary.rows, photos.len());

    let parts = directory.path().join("parts");
    for index in [2, 0, 1] {
        let target = EmbeddingTarget::Shard {
            directory: parts.clone(),
            shard: WorkShard { index, count: 3 },
        };
        embed_photo_set(&encoder, &photos, &target, &options, &()).unwrap();
    }
    // A finished shard is not redone.
    let recorder = Recorder::default();
    let again = embed_photo_set(
        &encoder,
        &photos,
        &EmbeddingTarget::Shard {
            directory: parts.clone(),
            shard: WorkShard { index: 1, count: 3 },
        },
        &options,
        &recorder,
    )
    .unwrap();
    assert!(again.already_complete && recorder.saw("already complete"));

    let gathered = EmbeddingParts::gather(std::slice::from_ref(&parts)).unwrap();
    assert!(gathered.parts);
    let joined: Vec<Vec<f32>> = gathered
        .files
        .iter()
        .flat_map(|file| matrix_rows(file))
        .collect();
    assert_eq!(joined, matrix_rows(&whole));

    // A missing part is named with how to make it.
    std::fs::remove_file(parts.join("part-1-of-3.json")).unwrap();
    let missing = EmbeddingParts::gather(std::slice::from_ref(&parts))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("missing 1 of 3 parts: part-1-of-3") && missing.contains("--shard I/3"),
        "{missing}"
    );

    // The database built by id follows the metadata, which names the photos backwards and
    // one photo that was never embedded.
    let gathered = EmbeddingParts::gather(std::slice::from_ref(&whole)).unwrap();
    let mut csv = String::from("IMG_ID,LAT,LON\nnot-embedded.jpg,1,2\n");
    for index in (0..photos.len()).rev() {
        csv.push_str(&format!("{},{},{}\n", photos.id(index), index, index));
    }
    let metadata = directory.path().join("metadata.csv");
    std::fs::write(&metadata, csv).unwrap();
    let database_path = directory.path().join("db");
    let built = build_from_embeddings(
        &gathered.files,
        MetadataSource {
            path: &metadata,
            options: &MetadataCsvOptions::default(),
        },
        Some("IMG_ID"),
        &StoreConfig::exact(Metric::InnerProduct),
        &database_path,
        &(),
    )
    .unwrap();
    assert_eq!(built.vectors, photos.len());
    assert_eq!(built.rows_without_embedding, 1);
    assert_eq!(
        built.first_without_embedding.as_deref(),
        Some("not-embedded.jpg")
    );
    let database = Database::open(&database_path).unwrap();
    assert_eq!(database.len(), photos.len());
}

#[test]
fn a_sharded_feature_cache_joins_into_the_single_run_cache() {
    let directory = tempfile::tempdir().unwrap();
    let model = || {
        g3::align::ModelSpec::from_source(
            g3::published::resolve_model(fixture("model").to_str().unwrap())?,
            g3::align::ModelOptions::default(),
            ImageEmbeddingKind::ClipFeatures,
        )?
        .load(&g3::align::ComputeDevice::Cpu.to_device()?)
        .map_err(g3::Error::from)
    };
    let rows: Vec<FeatureRow> = DATABASE_IMAGES
        .iter()
        .enumerate()
        .map(|(index, image)| FeatureRow {
            image_id: (*image).to_owned(),
            latitude: index as f64,
            longitude: -(index as f64),
            description: format!("place {index}"),
        })
        .collect();
    let source = FolderImageSource::new(fixture("images")).unwrap();
    let options = CacheFeaturesOptions {
        text: false,
        part_rows: 3,
        batch: 4,
        model: "tiny".into(),
        ..CacheFeaturesOptions::default()
    };
    let single = directory.path().join("single");
    let summary = cache_features(
        &rows,
        &source,
        &single,
        None,
        &options,
        &mut model.clone(),
        &(),
    )
    .unwrap();
    assert_eq!(summary.cached, rows.len());

    let sharded = directory.path().join("sharded");
    let mut loads = 0;
    for index in 0..2 {
        let mut counted = || {
            loads += 1;
            model()
        };
        cache_features(
            &rows,
            &source,
            &sharded,
            Some(WorkShard { index, count: 2 }),
            &options,
            &mut counted,
            &(),
        )
        .unwrap();
    }
    assert_eq!(loads, 2);
    // Finished: the model is not even loaded.
    let mut never = || -> g3::Result<g3::align::LoadedModel> { panic!("loaded for nothing") };
    let done = cache_features(
        &rows,
        &source,
        &sharded,
        Some(WorkShard { index: 0, count: 2 }),
        &options,
        &mut never,
        &(),
    )
    .unwrap();
    assert!(done.already_complete);

    assert!(join_feature_parts(&sharded, &()).unwrap());
    assert_eq!(
        matrix_rows(&sharded.join("image_features.npy")),
        matrix_rows(&single.join("image_features.npy"))
    );
    assert_eq!(
        std::fs::read_to_string(sharded.join("metadata.csv")).unwrap(),
        std::fs::read_to_string(single.join("metadata.csv")).unwrap()
    );
    assert!(!join_feature_parts(&directory.path().join("none"), &()).unwrap());
}

#[test]
fn a_dataset_run_stops_resumes_and_records_what_failed() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("g3.db");
    build_database(ImageEmbeddingKind::Database, &database);
    let mut config = Preset::G3.config();
    config.models.clip = fixture("model").to_string_lossy().into_owned();
    config.models.g3_checkpoint = fixture("g3.pth").to_string_lossy().into_owned();
    config.database = Some(database);
    let metadata = directory.path().join("metadata.csv");
    std::fs::write(
        &metadata,
        "IMG_ID,LAT,LON\nlandscape.jpg,0,20\nmissing.jpg,10,20\ngray.png,20,20\npalette.png,30,20\n",
    )
    .unwrap();
    let records: Vec<MetadataRecord> = MetadataReader::open(&metadata, MetadataOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let images = FolderImageSource::new(fixture("images")).unwrap();
    let output = directory.path().join("results.csv");
    let options = DatasetRunOptions { batch: 2 };
    let mut build = || config.build(&mut |_| {});

    // Stopped before the first batch: nothing located, nothing lost.
    let stopped = run_dataset(
        &records,
        &images,
        &output,
        &options,
        &mut build,
        &AtomicBool::new(true),
        &(),
    )
    .unwrap();
    assert!(stopped.stopped);
    assert_eq!(stopped.finished, 0);

    let first = run_dataset(
        &records,
        &images,
        &output,
        &options,
        &mut build,
        &AtomicBool::new(false),
        &(),
    )
    .unwrap();
    assert_eq!((first.located, first.failed(), first.finished), (3, 1, 3));
    assert_eq!(
        first.failed_by_reason.get("the photo could not be read"),
        Some(&1)
    );
    let errors = std::fs::read_to_string(&first.errors_path).unwrap();
    assert!(errors.contains("missing.jpg"), "{errors}");

    // Resumed: only the failed photo is tried again.
    let recorder = Recorder::default();
    let mut never_needed = 0;
    let second = run_dataset(
        &records,
        &images,
        &output,
        &options,
        &mut || {
            never_needed += 1;
            config.build(&mut |_| {})
        },
        &AtomicBool::new(false),
        &recorder,
    )
    .unwrap();
    assert_eq!(second.done_before, 3);
    assert_eq!((second.located, second.failed()), (0, 1));
    assert_eq!(never_needed, 1);
    assert!(recorder.saw("3 of 4 photos already done"));
}
