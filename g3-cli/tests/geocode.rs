//! `g3 geocode` end to end on a small gazetteer.

use std::path::Path;
use std::process::Command;

fn g3(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_g3"))
        .args(arguments)
        .output()
        .expect("the g3 binary runs")
}

/// `g3 geocode` on `directory`'s coords.csv into places.csv with its gazetteer and country
/// table, plus `extra` arguments.
fn geocode(directory: &Path, extra: &[&str]) -> std::process::Output {
    let path = |name: &str| directory.join(name).to_str().unwrap().to_owned();
    let mut arguments = vec![
        "geocode".to_owned(),
        "--input".to_owned(),
        path("coords.csv"),
        "--output".to_owned(),
        path("places.csv"),
        "--gazetteer".to_owned(),
        path("gazetteer.csv"),
        "--countries".to_owned(),
        path("countries.csv"),
    ];
    arguments.extend(extra.iter().map(|argument| argument.to_string()));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    g3(&arguments)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn setup(directory: &Path) {
    write(
        &directory.join("gazetteer.csv"),
        "lat,lon,name,admin1,admin2,cc\n\
         41.89193,12.51133,Rome,Lazio,Citta metropolitana di Roma Capitale,IT\n\
         48.85341,2.3488,Paris,Ile-de-France,Paris,FR\n\
         -17.8,177.4,Nadi,Western,,FJ\n\
         -14.3,-170.7,Pago Pago,Eastern District,,AS\n",
    );
    write(
        &directory.join("countries.csv"),
        "country_code,country,continent\nIT,Italy,Europe\nFR,France,Europe\nFJ,Fiji,Oceania\n",
    );
}

#[test]
fn rows_keep_their_columns_and_gain_places() {
    let directory = tempfile::tempdir().unwrap();
    let directory = directory.path();
    setup(directory);
    // A BOM, CRLF line ends, a quoted field with a comma, and a stale `city` column.
    write(
        &directory.join("coords.csv"),
        "\u{feff}IMG_ID,LAT,LON,city\r\n\"a,1.jpg\",41.9,12.5,old\r\nb.jpg,48.86,2.35,\r\nc.jpg,-17.8,-179.9,\r\n",
    );
    let output = directory.join("places.csv");
    let run = geocode(directory, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut reader = csv::Reader::from_path(&output).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "IMG_ID",
            "LAT",
            "LON",
            "city",
            "county",
            "state",
            "country_code",
            "country",
            "continent",
            "description"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|record| record.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "a,1.jpg",
            "41.9",
            "12.5",
            "Rome",
            "Citta metropolitana di Roma Capitale",
            "Lazio",
            "IT",
            "Italy",
            "Europe",
            "A street view photo taken in Rome, Lazio, Italy"
        ]
    );
    assert_eq!(rows[1][3], "Paris");
    // Great circle crosses the antimeridian: Nadi, not Pago Pago.
    assert_eq!(rows[2][3], "Nadi");
    assert_eq!(
        rows[2][9],
        "A street view photo taken in Nadi, Western, Fiji"
    );

    // The reverse_geocoder-compatible rule picks Pago Pago, whose country is not in the table.
    let run = geocode(directory, &["--metric", "planar-degrees"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(
        text.contains("c.jpg,-17.8,-179.9,Pago Pago,,Eastern District,AS,,,\"A street view photo taken in Pago Pago, Eastern District\""),
        "{text}"
    );
}

#[test]
fn bad_rows_and_files_are_named() {
    let directory = tempfile::tempdir().unwrap();
    let directory = directory.path();
    setup(directory);
    let gazetteer = directory.join("gazetteer.csv");
    let output = directory.join("places.csv");
    let cases = [
        ("LAT,LON\n1,2\n\n3,north\n", "coords.csv:4"),
        ("LAT,LON\n1,2\n95,0\n", "coords.csv:3"),
        ("lat,lon\n1,2\n", "no column named \"LAT\""),
    ];
    for (text, expected) in cases {
        write(&directory.join("coords.csv"), text);
        let run = geocode(directory, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(!output.exists(), "no partial output is left");
    }
    // A broken gazetteer names its line.
    write(
        &gazetteer,
        "lat,lon,name,admin1,admin2,cc\n1,2,A,,,XX\n1,x,B,,,XX\n",
    );
    write(&directory.join("coords.csv"), "LAT,LON\n1,2\n");
    let run = geocode(directory, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("gazetteer.csv:3") && stderr.contains("lon"),
        "{stderr}"
    );
}
