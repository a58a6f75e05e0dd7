//! `g3 index import-faiss | build | search | info` end to end on the faiss fixture
//! (`tools/goldens/faiss_flat.py`, faiss-cpu 1.15.1).

use std::path::{Path, PathBuf};
use std::process::Command;

use g3::EmbeddingFileWriter;
use g3::core::Embeddings;
use serde::Deserialize;

fn g3(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(arguments)
        .output()
        .expect("the g3 binary runs")
}

fn fixture(name: &str) -> String {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("g3-index/tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

#[derive(Deserialize)]
struct Answers {
    ids: Vec<Vec<u64>>,
    scores: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Goldens {
    dimension: usize,
    queries: Vec<Vec<f32>>,
    similar: Answers,
    dissimilar: Answers,
}

fn goldens() -> Goldens {
    serde_json::from_str(&std::fs::read_to_string(fixture("flat_ip_goldens.json")).unwrap())
        .unwrap()
}

fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    let batch = Embeddings::from_rows(rows[0].len(), rows).unwrap();
    let mut writer = EmbeddingFileWriter::create(path, batch.len(), batch.dimension()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
}

fn succeed(output: std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "g3 failed: {stderr}");
    stderr
}

/// (query, rank, key, score, lat, lon) rows of a neighbours CSV.
fn read_neighbors(path: &Path) -> Vec<(usize, usize, u64, f32, f64, f64)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        g3::NEIGHBOR_COLUMNS
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (
                record[0].parse().unwrap(),
                record[1].parse().unwrap(),
                record[2].parse().unwrap(),
                record[3].parse().unwrap(),
                record[4].parse().unwrap(),
                record[5].parse().unwrap(),
            )
        })
        .collect()
}

/// The faiss fixture's vectors as `emb.npy` and the golden queries as `queries.npy` in
/// `directory`.
fn write_fixture_inputs(directory: &Path, goldens: &Goldens) {
    let faiss = g3::index::read_faiss_flat(Path::new(&fixture("flat_ip.faissindex"))).unwrap();
    let rows: Vec<Vec<f32>> = faiss
        .vectors
        .chunks_exact(goldens.dimension)
        .map(<[f32]>::to_vec)
        .collect();
    write_npy(&directory.join("emb.npy"), &rows);
    write_npy(&directory.join("queries.npy"), &goldens.queries);
}

/// `g3 index search` of `directory/db` for the 10 most similar to `queries.npy` with a wide
/// beam, read back from `neighbours.csv`.
fn search_top_10(directory: &Path) -> Vec<(usize, usize, u64, f32, f64, f64)> {
    let path = |name: &str| -> String { directory.join(name).to_str().unwrap().to_owned() };
    succeed(g3(&[
        "index",
        "search",
        "--db",
        &path("db"),
        "--queries",
        &path("queries.npy"),
        "--k",
        "10",
        "--expansion-search",
        "200",
        "--output",
        &path("neighbours.csv"),
    ]));
    read_neighbors(Path::new(&path("neighbours.csv")))
}

fn assert_matches_faiss(rows: &[(usize, usize, u64, f32, f64, f64)], answers: &Answers) {
    let k = answers.ids[0].len();
    assert_eq!(rows.len(), answers.ids.len() * k);
    for &(query, rank, key, score, _, _) in rows {
        assert_eq!(key, answers.ids[query][rank], "query {query} rank {rank}");
        assert!((score - answers.scores[query][rank]).abs() <= 1e-5);
    }
}

#[test]
fn imported_faiss_index_answers_like_faiss() {
    let goldens = goldens();
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { directory.path().join(name) };
    let db = path("db");
    let queries = path("queries.npy");
    write_npy(&queries, &goldens.queries);
    let db_text = db.to_str().unwrap();
    let stderr = succeed(g3(&[
        "index",
        "import-faiss",
        "--faiss",
        &fixture("flat_ip.faissindex"),
        "--metadata",
        &fixture("flat_ip_metadata.csv"),
        "--output",
        db_text,
        "--kind",
        "exact",
    ]));
    assert!(stderr.contains("1000 vectors of dimension 48"), "{stderr}");

    for (flag, answers) in [
        (None, &goldens.similar),
        (Some("--dissimilar"), &goldens.dissimilar),
    ] {
        let output = path("neighbours.csv");
        let mut arguments = vec![
            "index",
            "search",
            "--db",
            db_text,
            "--queries",
            queries.to_str().unwrap(),
            "--k",
            "10",
            "--output",
            output.to_str().unwrap(),
        ];
        arguments.extend(flag);
        succeed(g3(&arguments));
        let rows = read_neighbors(&output);
        assert_matches_faiss(&rows, answers);
        // The location columns come from the metadata CSV: IMG_ID img_0042.jpg is row 42.
        let metadata = std::fs::read_to_string(fixture("flat_ip_metadata.csv")).unwrap();
        let (_, _, key, _, lat, lon) = rows[0];
        let line = metadata.lines().nth(key as usize + 1).unwrap();
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], format!("img_{key:04}.jpg"));
        assert!((fields[1].parse::<f64>().unwrap() - lat).abs() < 1e-9);
        assert!((fields[2].parse::<f64>().unwrap() - lon).abs() < 1e-9);
    }

    let info = g3(&["index", "info", "--db", db_text]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("entries:      1000"), "{info}");
    assert!(info.contains("text columns: IMG_ID"), "{info}");

    // `verify` hashes every file; a damaged one fails it by name.
    let stderr = succeed(g3(&["index", "verify", "--db", db_text]));
    assert!(
        stderr.contains("5 files") && stderr.contains("every digest matches"),
        "{stderr}"
    );
    let locations = db.join("locations.f64");
    let mut bytes = std::fs::read(&locations).unwrap();
    bytes[8] ^= 1;
    std::fs::write(&locations, bytes).unwrap();
    let output = g3(&["index", "verify", "--db", db_text]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed verification") && stderr.contains("locations.f64"),
        "{stderr}"
    );
}

#[test]
fn built_hnsw_database_retrieves_faiss_neighbours() {
    let goldens = goldens();
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| -> String { directory.path().join(name).to_str().unwrap().to_owned() };
    write_fixture_inputs(directory.path(), &goldens);
    succeed(g3(&[
        "index",
        "build",
        "--embeddings",
        &path("emb.npy"),
        "--metadata",
        &fixture("flat_ip_metadata.csv"),
        "--output",
        &path("db"),
        "--dtype",
        "f16",
        "--text-columns",
        "",
    ]));
    let found = search_top_10(directory.path());
    let hits = found
        .iter()
        .filter(|(query, _, key, _, _, _)| goldens.similar.ids[*query].contains(key))
        .count();
    assert!(
        hits as f64 >= 0.95 * found.len() as f64,
        "{hits}/{}",
        found.len()
    );
}

#[test]
fn re_ranked_i8_database_scores_like_faiss_and_refuses_re_ranking_without_its_copy() {
    let goldens = goldens();
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| -> String { directory.path().join(name).to_str().unwrap().to_owned() };
    write_fixture_inputs(directory.path(), &goldens);
    let build = |output: &str, rerank: &str| {
        succeed(g3(&[
            "index",
            "build",
            "--embeddings",
            &path("emb.npy"),
            "--metadata",
            &fixture("flat_ip_metadata.csv"),
            "--output",
            &path(output),
            "--dtype",
            "i8",
            "--rerank",
            rerank,
            "--text-columns",
            "",
        ]))
    };
    build("db", "64");
    let info = g3(&["index", "info", "--db", &path("db")]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("rerank 64"), "{info}");
    assert!(info.contains("i8 scale:"), "{info}");
    // Re-ranked scores are faiss's exact inner products, wherever the id is faiss's too.
    let found = search_top_10(directory.path());
    let mut hits = 0;
    for &(query, _, key, score, _, _) in &found {
        if let Some(rank) = goldens.similar.ids[query].iter().position(|&id| id == key) {
            hits += 1;
            assert!((score - goldens.similar.scores[query][rank]).abs() <= 1e-5);
        }
    }
    assert!(
        hits as f64 >= 0.95 * found.len() as f64,
        "{hits}/{}",
        found.len()
    );

    // Without the f32 copy, asking to re-rank is an error that says why.
    build("plain", "0");
    let output = g3(&[
        "index",
        "search",
        "--db",
        &path("plain"),
        "--queries",
        &path("queries.npy"),
        "--rerank",
        "32",
        "--output",
        &path("out.csv"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no f32 copy"), "{stderr}");
}

#[test]
fn faiss_index_imported_as_an_exact_f16_store_scores_within_1e_3() {
    let goldens = goldens();
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| -> String { directory.path().join(name).to_str().unwrap().to_owned() };
    write_npy(Path::new(&path("queries.npy")), &goldens.queries);
    succeed(g3(&[
        "index",
        "import-faiss",
        "--faiss",
        &fixture("flat_ip.faissindex"),
        "--metadata",
        &fixture("flat_ip_metadata.csv"),
        "--output",
        &path("db"),
        "--kind",
        "exact",
        "--dtype",
        "f16",
    ]));
    assert!(Path::new(&path("db")).join("vectors.f16").is_file());
    succeed(g3(&[
        "index",
        "search",
        "--db",
        &path("db"),
        "--queries",
        &path("queries.npy"),
        "--k",
        "10",
        "--output",
        &path("neighbours.csv"),
    ]));
    let found = read_neighbors(Path::new(&path("neighbours.csv")));
    assert_eq!(found.len(), goldens.queries.len() * 10);
    let mut same = 0;
    for &(query, rank, key, score, _, _) in &found {
        // Rank by rank, the score is faiss's within 1e-3 (entries closer than that may swap).
        assert!((score - goldens.similar.scores[query][rank]).abs() <= 1e-3);
        same += usize::from(key == goldens.similar.ids[query][rank]);
    }
    assert!(
        same as f64 >= 0.95 * found.len() as f64,
        "{same}/{}",
        found.len()
    );
}

#[test]
fn bad_inputs_fail_with_messages_naming_them() {
    let goldens = goldens();
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| -> String { directory.path().join(name).to_str().unwrap().to_owned() };
    // Queries of the wrong width.
    write_npy(
        Path::new(&path("wide.npy")),
        &[vec![0.1; goldens.dimension + 1]],
    );
    succeed(g3(&[
        "index",
        "import-faiss",
        "--faiss",
        &fixture("flat_ip.faissindex"),
        "--metadata",
        &fixture("flat_ip_metadata.csv"),
        "--output",
        &path("db"),
    ]));
    let output = g3(&[
        "index",
        "search",
        "--db",
        &path("db"),
        "--queries",
        &path("wide.npy"),
        "--output",
        &path("out.csv"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expected dimension 48, found 49"),
        "{stderr}"
    );
    assert!(!Path::new(&path("out.csv")).exists());

    // Metadata with fewer rows than the index has vectors.
    std::fs::write(path("short.csv"), "LAT,LON\n1,2\n").unwrap();
    let output = g3(&[
        "index",
        "import-faiss",
        "--faiss",
        &fixture("flat_ip.faissindex"),
        "--metadata",
        &path("short.csv"),
        "--output",
        &path("db2"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1000 vectors but 1 metadata rows"),
        "{stderr}"
    );

    // Not an .npy file.
    std::fs::write(path("junk.npy"), "hello").unwrap();
    let output = g3(&[
        "index",
        "search",
        "--db",
        &path("db"),
        "--queries",
        &path("junk.npy"),
        "--output",
        &path("out.csv"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("junk.npy") && stderr.contains("not an .npy file"),
        "{stderr}"
    );
}
