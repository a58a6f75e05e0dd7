//! Where photos come from: a folder (IM2GPS3K, YFCC4K) or tar shards (MP16-Pro's 4.12M
//! images), behind one trait, with parallel decoding under memory limits.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use g3_core::{ImageInput, ImageLimits};
use rayon::prelude::*;

use crate::error::{DataError, Result};

/// A collection of photos addressed by image id. Implementations are shared across threads.
pub trait ImageSource: Send + Sync {
    /// The encoded bytes of the image with this id.
    fn get(&self, image_id: &str) -> Result<ImageInput>;

    /// Whether the source holds the image (without reading it).
    fn contains(&self, image_id: &str) -> bool;
}

impl<T: ImageSource + ?Sized> ImageSource for &T {
    fn get(&self, image_id: &str) -> Result<ImageInput> {
        (**self).get(image_id)
    }
    fn contains(&self, image_id: &str) -> bool {
        (**self).contains(image_id)
    }
}

impl<T: ImageSource + ?Sized> ImageSource for Box<T> {
    fn get(&self, image_id: &str) -> Result<ImageInput> {
        (**self).get(image_id)
    }
    fn contains(&self, image_id: &str) -> bool {
        (**self).contains(image_id)
    }
}

/// Images as files under a folder; the id is the path relative to it.
#[derive(Debug, Clone)]
pub struct FolderImageSource {
    root: PathBuf,
}

impl FolderImageSource {
    /// A source reading under `root`, which must be a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(DataError::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        Ok(FolderImageSource { root })
    }

    fn path(&self, image_id: &str) -> Option<PathBuf> {
        // Ids are relative paths: no way out of the folder.
        let relative = Path::new(image_id);
        let safe = relative
            .components()
            .all(|component| matches!(component, std::path::Component::Normal(_)));
        safe.then(|| self.root.join(relative))
    }
}

impl ImageSource for FolderImageSource {
    fn get(&self, image_id: &str) -> Result<ImageInput> {
        let path = self.path(image_id).ok_or_else(|| {
            DataError::io(
                image_id,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an image id must be a relative path inside the folder",
                ),
            )
        })?;
        let bytes = std::fs::read(&path).map_err(|error| DataError::io(&path, error))?;
        Ok(ImageInput::from_bytes(image_id, bytes))
    }

    fn contains(&self, image_id: &str) -> bool {
        self.path(image_id).is_some_and(|path| path.is_file())
    }
}

/// Where one member of a shard lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShardEntry {
    shard: u32,
    offset: u64,
    size: u64,
}

/// Images inside uncompressed tar archives (one large tar, as MP16-Pro publishes
/// `mp-16-images.tar`, or WebDataset-style shards), read at random by id.
///
/// A member's id is its file name, as the reference keys `a/b/IMG_ID` members by their third
/// component; only members with an image extension count (a WebDataset shard's `.json` and
/// `.txt` members are left out). Scanning 4.12M tar headers takes minutes, so the index
/// (id → shard, offset, size) is built once and saved next to the archives; it is rebuilt
/// when an archive's size or modification time changes. An id held by two members is no
/// guess: asking for it is an error naming where both lie. Reads use positioned I/O, so any
/// number of threads read at once without locks.
#[derive(Debug)]
pub struct TarShardImageSource {
    shards: Vec<File>,
    shard_paths: Vec<PathBuf>,
    shard_sizes: Vec<u64>,
    /// Every image member, in archive order.
    members: Vec<(Box<str>, ShardEntry)>,
    /// Positions in `members`, sorted by id (duplicates adjacent).
    by_id: Vec<u32>,
    /// Ids held by more than one member.
    duplicates: std::collections::HashSet<Box<str>>,
}

/// First line of an index file; the format may change with the version.
const INDEX_MAGIC: &str = "g3-tar-index v2";

/// An archive as the index records it: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShardStamp {
    size: u64,
    modified_ns: i128,
}

impl TarShardImageSource {
    /// Opens the shards, loading the index at `index_path` when it matches them and
    /// building (and saving, through a temporary file) a new one otherwise.
    pub fn open(shards: &[PathBuf], index_path: &Path) -> Result<Self> {
        let stamps: Vec<ShardStamp> = shards
            .iter()
            .map(|path| {
                let metadata =
                    std::fs::metadata(path).map_err(|error| DataError::io(path, error))?;
                let modified_ns = metadata
                    .modified()
                    .ok()
                    .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |elapsed| elapsed.as_nanos() as i128);
                Ok(ShardStamp {
                    size: metadata.len(),
                    modified_ns,
                })
            })
            .collect::<Result<_>>()?;
        let members = match load_index(index_path, shards, &stamps) {
            Some(members) => members,
            None => {
                let members = build_index(shards)?;
                save_index(index_path, shards, &stamps, &members)?;
                members
            }
        };
        let files = shards
            .iter()
            .map(|path| File::open(path).map_err(|error| DataError::io(path, error)))
            .collect::<Result<_>>()?;
        let mut by_id: Vec<u32> = (0..members.len() as u32).collect();
        by_id.par_sort_unstable_by(|&a, &b| members[a as usize].0.cmp(&members[b as usize].0));
        let duplicates = by_id
            .windows(2)
            .filter(|pair| members[pair[0] as usize].0 == members[pair[1] as usize].0)
            .map(|pair| members[pair[0] as usize].0.clone())
            .collect();
        Ok(TarShardImageSource {
            shards: files,
            shard_paths: shards.to_vec(),
            shard_sizes: stamps.iter().map(|stamp| stamp.size).collect(),
            members,
            by_id,
            duplicates,
        })
    }

    /// Opens `shards` with their index beside the first one (`<first shard>.g3-index`), or,
    /// when that directory cannot be written (a read-only dataset mount) and holds no index
    /// yet, in the g3 cache (`$G3_CACHE_DIR/archive-indexes/`, named by the shards' paths).
    pub fn open_beside(shards: &[PathBuf]) -> Result<Self> {
        let first = shards.first().ok_or_else(|| {
            DataError::io(
                "--archive",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no tar archive given"),
            )
        })?;
        let directory = match first.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let writable = tempfile::tempfile_in(&directory).is_ok();
        let index = index_location(shards, writable);
        if let Some(cache) = index.parent() {
            std::fs::create_dir_all(cache).map_err(|error| DataError::io(cache, error))?;
        }
        TarShardImageSource::open(shards, &index)
    }

    /// How many image members the shards hold.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the shards hold no image.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member's id, in archive order (duplicates as often as they appear).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(id, _)| &**id)
    }

    /// An error naming every member that holds `image_id` when more than one does.
    pub fn check_unambiguous(&self, image_id: &str) -> Result<()> {
        self.entry(image_id).map(drop)
    }

    /// Where the member `image_id` lies; an error for an id held by several members.
    fn entry(&self, image_id: &str) -> Result<Option<ShardEntry>> {
        let Ok(position) = self
            .by_id
            .binary_search_by(|&member| (*self.members[member as usize].0).cmp(image_id))
        else {
            return Ok(None);
        };
        if self.duplicates.contains(image_id) {
            let places: Vec<String> = self
                .members
                .iter()
                .filter(|(id, _)| &**id == image_id)
                .map(|(_, entry)| {
                    format!(
                        "{} at byte {}",
                        self.shard_paths[entry.shard as usize].display(),
                        entry.offset
                    )
                })
                .collect();
            return Err(DataError::DuplicateImageId {
                image_id: image_id.to_owned(),
                places: places.join(", "),
            });
        }
        Ok(Some(self.members[self.by_id[position] as usize].1))
    }
}

impl ImageSource for TarShardImageSource {
    fn get(&self, image_id: &str) -> Result<ImageInput> {
        let entry = self.entry(image_id)?.ok_or_else(|| {
            DataError::io(
                image_id,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such image in the shards"),
            )
        })?;
        let shard = entry.shard as usize;
        // A truncated shard or a lying tar header must be an error, not a huge allocation.
        if entry.offset.saturating_add(entry.size) > self.shard_sizes[shard] {
            return Err(DataError::io(
                &self.shard_paths[shard],
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{image_id} extends past the end of the shard"),
                ),
            ));
        }
        let mut bytes = vec![0u8; entry.size as usize];
        self.shards[shard]
            .read_exact_at(&mut bytes, entry.offset)
            .map_err(|error| DataError::io(&self.shard_paths[shard], error))?;
        Ok(ImageInput::from_bytes(image_id, bytes))
    }

    fn contains(&self, image_id: &str) -> bool {
        self.by_id
            .binary_search_by(|&member| (*self.members[member as usize].0).cmp(image_id))
            .is_ok()
    }
}

/// Where the index of `shards` lives: beside the first shard when one is there or the
/// directory is `writable`, else in the g3 cache, named by the shards' absolute paths.
fn index_location(shards: &[PathBuf], writable: bool) -> PathBuf {
    let mut beside = shards[0].as_os_str().to_owned();
    beside.push(".g3-index");
    let beside = PathBuf::from(beside);
    if writable || beside.is_file() {
        return beside;
    }
    let mut hasher = blake3::Hasher::new();
    for shard in shards {
        let absolute = std::path::absolute(shard).unwrap_or_else(|_| shard.clone());
        hasher.update(absolute.as_os_str().as_encoded_bytes());
        hasher.update(b"\0");
    }
    g3_core::assets::cache_dir()
        .join("archive-indexes")
        .join(format!("{}.g3-index", &hasher.finalize().to_hex()[..32]))
}

/// The id of an image member (its file name), `None` for other members.
fn member_id(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let is_image = Path::new(&name)
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            crate::image_list::IMAGE_EXTENSIONS
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
        });
    is_image.then_some(name)
}

fn build_index(shards: &[PathBuf]) -> Result<Vec<(Box<str>, ShardEntry)>> {
    let mut members = Vec::new();
    for (shard, path) in shards.iter().enumerate() {
        let file = File::open(path).map_err(|error| DataError::io(path, error))?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
        let entries = archive
            .entries()
            .map_err(|error| DataError::io(path, error))?;
        for member in entries {
            let member = member.map_err(|error| DataError::io(path, error))?;
            if member.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = member.path().map_err(|error| DataError::io(path, error))?;
            let Some(id) = member_id(&name) else { continue };
            members.push((
                id.into_boxed_str(),
                ShardEntry {
                    shard: shard as u32,
                    offset: member.raw_file_position(),
                    size: member.size(),
                },
            ));
        }
    }
    Ok(members)
}

/// The saved index: the magic line, one `shard\tsize\tmodified_ns\tpath` line per shard, a
/// blank line, then `id\tshard\toffset\tsize` per image in archive order. `None` when
/// missing, unreadable or stale.
fn load_index(
    index_path: &Path,
    shards: &[PathBuf],
    stamps: &[ShardStamp],
) -> Option<Vec<(Box<str>, ShardEntry)>> {
    let mut lines = BufReader::new(File::open(index_path).ok()?).lines();
    if lines.next()?.ok()? != INDEX_MAGIC {
        return None;
    }
    for (shard, stamp) in shards.iter().zip(stamps) {
        let line = lines.next()?.ok()?;
        let mut fields = line.splitn(4, '\t');
        let (_, size, modified, path) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if size.parse::<u64>().ok()? != stamp.size
            || modified.parse::<i128>().ok()? != stamp.modified_ns
            || path != shard.to_string_lossy()
        {
            return None;
        }
    }
    if !lines.next()?.ok()?.is_empty() {
        return None;
    }
    let mut members = Vec::new();
    for line in lines {
        let line = line.ok()?;
        let mut fields = line.rsplitn(4, '\t');
        let size: u64 = fields.next()?.parse().ok()?;
        let offset: u64 = fields.next()?.parse().ok()?;
        let shard: u32 = fields.next()?.parse().ok()?;
        let id = fields.next()?;
        // An entry outside its shard means the index is damaged: rebuild rather than trust it.
        let shard_size = stamps.get(shard as usize)?.size;
        if offset > shard_size || size > shard_size - offset {
            return None;
        }
        members.push((
            id.into(),
            ShardEntry {
                shard,
                offset,
                size,
            },
        ));
    }
    Some(members)
}

fn save_index(
    index_path: &Path,
    shards: &[PathBuf],
    stamps: &[ShardStamp],
    members: &[(Box<str>, ShardEntry)],
) -> Result<()> {
    let io = |error| DataError::io(index_path, error);
    let temporary = g3_core::atomic::AtomicFile::create(index_path)?;
    {
        let mut out = BufWriter::new(temporary.file());
        writeln!(out, "{INDEX_MAGIC}").map_err(io)?;
        for (shard, (path, stamp)) in shards.iter().zip(stamps).enumerate() {
            writeln!(
                out,
                "{shard}\t{}\t{}\t{}",
                stamp.size,
                stamp.modified_ns,
                path.to_string_lossy()
            )
            .map_err(io)?;
        }
        writeln!(out).map_err(io)?;
        for (id, entry) in members {
            writeln!(
                out,
                "{id}\t{}\t{}\t{}",
                entry.shard, entry.offset, entry.size
            )
            .map_err(io)?;
        }
        out.flush().map_err(io)?;
    }
    Ok(temporary.commit()?)
}

/// Decodes one image (format guessed from its bytes) within `limits`: the header is read
/// first and an image beyond them refused before any pixel is decoded.
pub fn decode_image(image: &ImageInput, limits: ImageLimits) -> Result<image::DynamicImage> {
    let error = |message: String| DataError::Decode {
        image_id: image.id().to_string(),
        message,
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(image.encoded()))
            .with_guessed_format()
            .map_err(|e| error(e.to_string()))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| error(format!("cannot decode: {e}")))?;
    if !limits.admits(width, height) {
        return Err(error(format!(
            "the image is {width} x {height} pixels, more than the limits allow ({} per side, {} pixels in all)",
            limits.max_side, limits.max_pixels
        )));
    }
    let mut reader = reader()?;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_decoder_bytes);
    reader.limits(image_limits);
    reader
        .decode()
        .map_err(|e| error(format!("cannot decode: {e}")))
}

/// Decodes images on all cores, in order; each failure stays with its image.
pub fn decode_images(
    images: &[ImageInput],
    limits: ImageLimits,
) -> Vec<Result<image::DynamicImage>> {
    images
        .par_iter()
        .map(|image| decode_image(image, limits))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_archive_directory_keeps_its_index_in_the_cache() {
        let shards = [PathBuf::from("/data/mp-16-images.tar")];
        assert_eq!(
            index_location(&shards, true),
            PathBuf::from("/data/mp-16-images.tar.g3-index")
        );
        let cached = index_location(&shards, false);
        assert!(cached.starts_with(g3_core::assets::cache_dir().join("archive-indexes")));
        assert_eq!(
            cached,
            index_location(&shards, false),
            "the same shards, the same file"
        );
        let other = index_location(&[PathBuf::from("/data/other.tar")], false);
        assert_ne!(cached, other);
    }
}
