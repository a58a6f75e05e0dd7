//! The G3 web service mounted inside your own axum app: `g3::serve`'s router under `/geo`,
//! beside the app's own routes, with its upload and concurrency limits.
//!
//! ```sh
//! cargo run --release --features serve --example serve_in_app -- pipeline.toml [127.0.0.1:8080]
//! curl --data-binary @photo.jpg http://127.0.0.1:8080/geo/v1/locate
//! ```
//!
//! `pipeline.toml` is a pipeline configuration (`g3 locate --print-config` writes one).

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use g3::PipelineConfig;
use g3::serve::{ServeLimits, router};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some(config_path) = arguments.first() else {
        return Err("usage: serve_in_app PIPELINE.toml [ADDRESS]".into());
    };
    let address = arguments.get(1).map_or("127.0.0.1:8080", String::as_str);

    // The pipeline is built once (models loaded, database opened) and shared by requests.
    let config = PipelineConfig::from_toml_file(config_path.as_ref())?;
    let pipeline = config.build(&mut |step| eprintln!("{step}"))?;
    let limits = ServeLimits {
        max_upload_bytes: 8 << 20,
        workers: 1,
        queue: 4,
        timeout: Duration::from_secs(120),
        ..ServeLimits::default()
    };
    let app = Router::new()
        .route(
            "/",
            get(|| async { "my app; the geolocator is under /geo/" }),
        )
        .nest("/geo", router(pipeline, None, &limits));

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address).await?;
        eprintln!("listening on http://{}/geo/", listener.local_addr()?);
        axum::serve(listener, app).await
    })?;
    Ok(())
}
