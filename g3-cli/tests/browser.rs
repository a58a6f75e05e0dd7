//! The `g3 serve` page and a `g3 report` file in a real browser: headless Chromium (the
//! Debian package `chromium`, which `.ci/run` installs) opens the page, which uploads a
//! fixture photo through its own upload code and draws the answer; the test reads the
//! rendered DOM (the pool size shown, the markers drawn) against the API's answer, and saves
//! screenshots under `target/tmp/screenshots/` (the README's and docs/'s come from there). Without a
//! Chromium the test fails, naming what to install: it never skips.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use g3::prompt::mock::{MockBehaviour, MockChatServer};
use support::fixture;
use support::serve::{post, serve, write_config};

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
        "/usr/bin/google-chrome".into(),
    ];
    candidates
        .iter()
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect(
            "no headless Chromium: install the Debian package `chromium` (`.ci/run` does), or set CHROMIUM to a Chrome binary",
        )
}

/// Headless Chromium on `url` with `action` (`--dump-dom` or `--screenshot=PATH`): the page
/// runs until it is idle, network requests included, within a minute of virtual time.
fn browse(url: &str, action: &str) -> String {
    browse_sized(url, action, "1280,1100")
}

fn browse_sized(url: &str, action: &str, size: &str) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--window-size={size}"),
            "--virtual-time-budget=60000",
            action,
            url,
        ])
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn screenshots() -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// Serves one file to any GET, with CORS allowed: the photo the page fetches by `?photo=`.
fn serve_photo(bytes: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = stream.write_all(&bytes);
        }
    });
    format!("http://{address}/landscape.jpg")
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn the_page_draws_the_whole_pool_of_an_uploaded_photo() {
    let directory = tempfile::tempdir().unwrap();
    let lmm = MockChatServer::start(MockBehaviour::default()).unwrap();
    let config = write_config(directory.path(), &lmm.base_url());
    let server = serve(&config, &[]);
    let jpeg = std::fs::read(fixture("images/landscape.jpg")).unwrap();
    let (status, answer) = post(&server.base, &jpeg, "image/jpeg");
    assert_eq!(status, 200, "{answer}");
    let pool = answer["prediction"]["candidates"].as_array().unwrap().len();

    let url = format!("{}/?photo={}", server.base, serve_photo(jpeg));
    let dom = browse(&url, "--dump-dom");
    assert!(
        dom.contains("data-state=\"done\""),
        "the page did not finish: {dom}"
    );
    assert!(
        dom.contains(&format!("<span id=\"pool-size\">{pool}</span>")),
        "the page shows another pool size than the API's {pool}: {dom}"
    );
    assert_eq!(
        count(&dom, "class=\"candidate "),
        pool,
        "one marker per candidate"
    );
    assert_eq!(count(&dom, "class=\"chosen-ring\""), 1);
    assert!(dom.len() > 100_000, "the world map is drawn");

    let screenshot = screenshots().join("serve.png");
    let _ = std::fs::remove_file(&screenshot);
    browse(&url, &format!("--screenshot={}", screenshot.display()));
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

/// A results file as `g3 run` writes it, with pools: each photo predicted `offset` degrees
/// of longitude east of the truth's prediction in `PLACES`.
const PLACES: [(&str, f64, f64, f64, f64); 6] = [
    ("paris.jpg", 48.8566, 2.3522, 48.85, 2.35),
    ("tokyo.jpg", 35.6762, 139.6503, 34.69, 135.50),
    ("lima.jpg", -12.0464, -77.0428, -33.45, -70.67),
    ("cairo.jpg", 30.0444, 31.2357, 41.01, 28.98),
    ("sydney.jpg", -33.8688, 151.2093, 51.51, -0.13),
    // Across the antimeridian: drawn the short way, in two parts.
    ("suva.jpg", -18.1248, 178.4501, -13.83, -171.76),
];

fn results_csv(directory: &Path, name: &str, drift_deg: f64) -> PathBuf {
    let mut csv = String::from(
        "IMG_ID,LAT,LON,LAT_pred,LON_pred,geodesic,source,score,rejected,lost,candidates\n",
    );
    for (id, lat, lon, lat_pred, lon_pred) in PLACES {
        let lat_pred = (lat_pred + drift_deg).clamp(-89.0, 89.0);
        let pool = format!(
            "[{{\"location\":{{\"latitude\":{lat_pred},\"longitude\":{lon_pred}}},\"source\":{{\"kind\":\"generated\",\"prompt_index\":0,\"sample_index\":0}},\"score\":0.5}},{{\"location\":{{\"latitude\":{lat},\"longitude\":{lon}}},\"source\":{{\"kind\":\"retrieved\",\"key\":1,\"rank\":0,\"similarity\":0.9}},\"score\":0.4}}]"
        );
        csv.push_str(&format!(
            "{id},{lat},{lon},{lat_pred},{lon_pred},0,generated:0:0,0.5,0,0,\"{}\"\n",
            pool.replace('"', "\"\"")
        ));
    }
    let path = directory.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, csv).unwrap();
    path
}

fn g3_report(results: &[&Path], extra: &[&str], output: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_g3"))
        .arg("report")
        .args(results)
        .args(extra)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Measures, in a copy of the report with a script added at its end (the report itself runs
/// none), the smallest rendered size in CSS px of the charts' text.
fn smallest_chart_text_px(report: &Path) -> (f64, usize) {
    let html = std::fs::read_to_string(report).unwrap();
    let probe = report.with_extension("probe.html");
    let script = "<script>let smallest=1e9,texts=0;for(const t of document.querySelectorAll('figure svg text')){if(!t.textContent.trim())continue;const m=t.getScreenCTM();const size=parseFloat(getComputedStyle(t).fontSize)*Math.hypot(m.a,m.b);smallest=Math.min(smallest,size);texts++;}document.body.setAttribute('data-smallest-text-px',smallest.toFixed(2));document.body.setAttribute('data-texts',texts);</script>";
    std::fs::write(&probe, html.replace("</body>", &format!("{script}</body>"))).unwrap();
    let dom = browse(&format!("file://{}", probe.display()), "--dump-dom");
    let attribute = |name: &str| {
        let start = dom
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{name} missing"))
            + name.len()
            + 2;
        dom[start..start + dom[start..].find('"').unwrap()].to_owned()
    };
    (
        attribute("data-smallest-text-px").parse().unwrap(),
        attribute("data-texts").parse().unwrap(),
    )
}

#[test]
fn a_report_of_three_runs_labels_each_and_overlays_their_curves() {
    let directory = tempfile::tempdir().unwrap();
    let g3_run = results_csv(directory.path(), "g3/results.csv", 0.0);
    let img2loc = results_csv(directory.path(), "img2loc/results.csv", 3.0);
    let geoclip = results_csv(directory.path(), "geoclip.csv", 9.0);
    let report = directory.path().join("report.html");
    let stderr = g3_report(&[&g3_run, &img2loc, &geoclip], &[], &report);
    assert!(
        stderr.contains("3 runs: g3/results, img2loc/results, geoclip"),
        "{stderr}"
    );

    let url = format!("file://{}", report.display());
    let dom = browse(&url, "--dump-dom");
    assert!(!dom.contains("<script"), "a report runs no script");
    for label in ["g3/results", "img2loc/results", "geoclip"] {
        assert!(
            dom.contains(&format!("{label}</a></td>")),
            "{label} has no table row"
        );
        assert!(
            dom.contains(&format!("{label}: every photo")),
            "{label} has no map"
        );
        assert!(
            dom.contains(&format!("The 6 largest errors of {label}")),
            "{label} has no largest errors"
        );
    }
    // One overlaid chart: a curve per run in its colour, a legend naming each.
    let overlay_start = dom
        .find("<figure class=\"overlay\">")
        .expect("the overlaid chart");
    let overlay = dom
        [overlay_start..overlay_start + dom[overlay_start..].find("</figure>").unwrap()]
        .replace('\n', "");
    for (colour, label) in [
        ("#1C7ED6", "g3/results"),
        ("#E8590C", "img2loc/results"),
        ("#2B8A3E", "geoclip"),
    ] {
        assert!(
            overlay
                .to_uppercase()
                .contains(&format!("STROKE=\"{colour}\"")),
            "no {colour} curve"
        );
        assert!(
            overlay.contains(&format!(">{label}</text>")),
            "no legend entry {label}"
        );
    }
    // Every photo of every run on its map; the Suva track in two parts.
    assert_eq!(count(&dom, "<g class=\"photo\""), 3 * PLACES.len());
    assert!(dom.contains("M0.00 "), "a track crosses the antimeridian");
    assert!(
        count(&dom, "class=\"candidate\"") >= 2 * PLACES.len(),
        "the pools are drawn"
    );
    // The GeoGuessr score and the place accuracies are in the table.
    assert!(dom.contains("<th>GeoGuessr</th>") && dom.contains("<th>country</th>"));

    // Chart text legible at the page's width.
    let (smallest, texts) = smallest_chart_text_px(&report);
    assert!(texts > 20, "{texts} chart texts");
    assert!(smallest >= 11.0, "chart text renders at {smallest} CSS px");

    let screenshot = screenshots().join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    browse_sized(
        &url,
        &format!("--screenshot={}", screenshot.display()),
        "1280,1500",
    );
    assert!(std::fs::read(&screenshot).unwrap().starts_with(b"\x89PNG"));

    // Labels given by hand, the rest derived; one label too many is refused.
    let named = directory.path().join("named.html");
    let stderr = g3_report(
        &[&g3_run, &img2loc, &geoclip],
        &["--label", "G3", "--label", "Img2Loc", "--no-places"],
        &named,
    );
    assert!(stderr.contains("3 runs: G3, Img2Loc, geoclip"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_g3"))
        .arg("report")
        .arg(&g3_run)
        .args(["--label", "a", "--label", "b"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 labels for 1 results files"));
}
