//! Image sources (folder, tar shards with a saved index) and decoding under limits.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use g3_data::{DataError, FolderImageSource, ImageSource, TarShardImageSource, decode_images};

fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([shade, 0, 255 - shade]));
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

fn write_shard(path: &Path, members: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut directory = tar::Header::new_gnu();
    directory.set_entry_type(tar::EntryType::Directory);
    directory.set_size(0);
    directory.set_mode(0o755);
    directory.set_cksum();
    builder
        .append_data(&mut directory, "images/", std::io::empty())
        .unwrap();
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn tar_shards_serve_exact_bytes_and_keep_their_index() {
    let directory = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        png(2, 3, 10),
        png(4, 1, 20),
        b"not an image at all".to_vec(),
    );
    let shards: Vec<PathBuf> = vec![
        directory.path().join("shard-0.tar"),
        directory.path().join("shard-1.tar"),
    ];
    write_shard(
        &shards[0],
        &[("images/1a_2b_1.jpg", &a), ("images/1a_2b_2.jpg", &b)],
    );
    write_shard(&shards[1], &[("3c_4d_3.jpg", &c)]);
    let index = directory.path().join("shards.index");

    let source = TarShardImageSource::open(&shards, &index).unwrap();
    assert_eq!(source.len(), 3);
    assert!(index.is_file());
    assert_eq!(source.get("1a_2b_1.jpg").unwrap().encoded(), a.as_slice());
    assert_eq!(source.get("1a_2b_2.jpg").unwrap().encoded(), b.as_slice());
    assert_eq!(source.get("3c_4d_3.jpg").unwrap().encoded(), c.as_slice());
    assert!(!source.contains("missing.jpg"));
    let error = source.get("missing.jpg").unwrap_err().to_string();
    assert!(error.contains("missing.jpg"), "{error}");

    // Reads from many threads at once.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(source.get("1a_2b_2.jpg").unwrap().encoded(), b.as_slice());
                }
            });
        }
    });

    // The saved index is used as is: a doctored offset shows it was not rebuilt.
    let saved = std::fs::read_to_string(&index).unwrap();
    let doctored = saved.replace("3c_4d_3.jpg\t1\t1024\t", "3c_4d_3.jpg\t1\t1025\t");
    assert_ne!(saved, doctored, "{saved}");
    std::fs::write(&index, &doctored).unwrap();
    let reopened = TarShardImageSource::open(&shards, &index).unwrap();
    assert_ne!(reopened.get("3c_4d_3.jpg").unwrap().encoded(), c.as_slice());

    // A shard that changed size makes the index stale: it is rebuilt.
    write_shard(&shards[1], &[("3c_4d_3.jpg", &c), ("5e_6f_4.jpg", &a)]);
    let rebuilt = TarShardImageSource::open(&shards, &index).unwrap();
    assert_eq!(rebuilt.len(), 4);
    assert_eq!(rebuilt.get("3c_4d_3.jpg").unwrap().encoded(), c.as_slice());

    // A garbled index is rebuilt too, never trusted or a crash.
    // After the rebuild above, 3c_4d_3.jpg still sits at offset 1024 of shard 1.
    let current = std::fs::read_to_string(&index).unwrap();
    let huge = current.replace(
        "3c_4d_3.jpg\t1\t1024\t19",
        "3c_4d_3.jpg\t1\t1024\t999999999999",
    );
    assert_ne!(huge, current);
    for garbage in [
        "",
        "g3-tar-index v1\n0\tnope\n",
        "g3-tar-index v1\n\u{0}\u{1}",
        huge.as_str(),
    ] {
        std::fs::write(&index, garbage).unwrap();
        let source = TarShardImageSource::open(&shards, &index).unwrap();
        assert_eq!(source.get("5e_6f_4.jpg").unwrap().encoded(), a.as_slice());
    }

    // A missing shard is an error naming it.
    let error = TarShardImageSource::open(&[directory.path().join("gone.tar")], &index)
        .unwrap_err()
        .to_string();
    assert!(error.contains("gone.tar"), "{error}");
}

#[test]
fn folders_serve_relative_paths_only() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir(directory.path().join("photos")).unwrap();
    std::fs::write(directory.path().join("photos/a.jpg"), b"jpeg bytes").unwrap();
    std::fs::write(directory.path().join("secret.txt"), b"secret").unwrap();
    let source = FolderImageSource::new(directory.path().join("photos")).unwrap();
    assert_eq!(source.get("a.jpg").unwrap().encoded(), b"jpeg bytes");
    assert!(source.contains("a.jpg"));
    assert!(!source.contains("../secret.txt"));
    assert!(source.get("../secret.txt").is_err());
    assert!(source.get("/etc/hostname").is_err());
    let error = source.get("b.jpg").unwrap_err().to_string();
    assert!(error.contains("b.jpg"), "{error}");
    assert!(FolderImageSource::new(directory.path().join("nowhere")).is_err());
}

#[test]
fn decoding_runs_in_parallel_within_limits() {
    let images = vec![
        g3_core::ImageInput::from_bytes("small.png", png(3, 2, 0)),
        g3_core::ImageInput::from_bytes("garbage.jpg", b"\xFF\xD8\xFF garbage".to_vec()),
        g3_core::ImageInput::from_bytes("wide.png", png(64, 2, 0)),
    ];
    let limits = g3_core::ImageLimits {
        max_side: 32,
        ..g3_core::ImageLimits::default()
    };
    let decoded = decode_images(&images, limits);
    let small = decoded[0].as_ref().unwrap();
    assert_eq!((small.width(), small.height()), (3, 2));
    for (result, id) in decoded[1..].iter().zip(["garbage.jpg", "wide.png"]) {
        match result {
            Err(DataError::Decode { image_id, .. }) => assert_eq!(image_id, id),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[test]
fn a_truncated_shard_is_an_error_not_a_crash() {
    let directory = tempfile::tempdir().unwrap();
    let shard = directory.path().join("shard.tar");
    let big = vec![7u8; 100_000];
    write_shard(&shard, &[("big.jpg", &big)]);
    // Cut the shard inside the member's data: its header still claims 100,000 bytes.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    file.set_len(512 * 2 + 50_000).unwrap();
    let index = directory.path().join("shard.index");
    match TarShardImageSource::open(std::slice::from_ref(&shard), &index) {
        Err(error) => assert!(error.to_string().contains("shard.tar"), "{error}"),
        Ok(source) => {
            let error = source.get("big.jpg").unwrap_err().to_string();
            assert!(error.contains("shard.tar"), "{error}");
        }
    }
}

#[test]
fn archives_keep_image_members_only_and_refuse_ambiguous_ids() {
    let directory = tempfile::tempdir().unwrap();
    let (a, b) = (png(2, 3, 10), png(4, 1, 20));
    let shards = vec![
        directory.path().join("shard-0.tar"),
        directory.path().join("shard-1.tar"),
    ];
    // WebDataset-style: a sample's photo beside its JSON; `a/b/IMG_ID` names; one id twice.
    write_shard(
        &shards[0],
        &[
            ("0a/1b/000001.jpg", &a),
            ("0a/1b/000001.json", b"{}"),
            ("0a/1b/000002.png", &b),
        ],
    );
    write_shard(&shards[1], &[("9z/9y/000002.png", &a)]);
    let source = TarShardImageSource::open_beside(&shards).unwrap();
    assert!(directory.path().join("shard-0.tar.g3-index").is_file());
    assert_eq!(
        source.ids().collect::<Vec<_>>(),
        ["000001.jpg", "000002.png", "000002.png"]
    );
    assert!(!source.contains("000001.json"));
    assert_eq!(source.get("000001.jpg").unwrap().encoded(), a.as_slice());
    let error = source.get("000002.png").unwrap_err().to_string();
    assert!(error.contains("more than one archive member"), "{error}");
    assert!(
        error.contains("shard-0.tar at byte") && error.contains("shard-1.tar at byte"),
        "{error}"
    );

    // A photo set of the whole archive refuses the ambiguous id before any work; a list
    // without it is fine, and `a/b/IMG_ID` values are looked up by `IMG_ID`.
    let error = g3_data::PhotoSet::open(None, None, &shards)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("000002.png"), "{error}");
    let list = directory.path().join("list.csv");
    std::fs::write(&list, "IMG_ID,LAT,LON\n0a/1b/000001.jpg,1,2\n").unwrap();
    let photos = g3_data::PhotoSet::open(Some(&list), None, &shards).unwrap();
    assert_eq!(photos.len(), 1);
    assert_eq!(photos.id(0), "000001.jpg");
    assert_eq!(photos.fingerprint().len(), 32);
    assert_eq!(photos.read(0).unwrap().encoded(), a.as_slice());

    // A rewritten archive of the same size (same members, other bytes) is indexed again.
    write_shard(&shards[1], &[("9z/9y/000003.png", &a)]);
    let reopened = TarShardImageSource::open_beside(&shards).unwrap();
    assert!(reopened.contains("000003.png"));
    assert!(reopened.get("000002.png").is_ok());
}
