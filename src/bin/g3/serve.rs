//! `g3 serve`: the pipeline behind a small HTTP server. `POST /v1/locate` takes a photo (the
//! body, or the first file of a multipart form) and answers JSON: the prediction, the whole
//! candidate pool with provenance and scores, the place name, timings and the LMM's usage.
//! `GET /` is a page to drop a photo on and see every candidate on a world map; `GET
//! /healthz` says whether the server is up. The page's files are compiled into the binary:
//! no request reaches the file system, and nothing is fetched from elsewhere.
//!
//! Limits: the upload size (413), the image's pixel size read from its header before any
//! decoding (422), a bounded queue (503 with `Retry-After` when full) in front of a fixed
//! number of concurrent locates, and a per-request timeout (504). It binds to loopback
//! unless told otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use g3::core::GeneratorDescription;
use g3::data::ReverseGeocoder;
use g3::pipeline::{GenerationReport, Pipeline};
use g3::{ImageInput, Prediction};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::locate::PlaceName;
use crate::pipeline_args::{PipelineArgs, build_pipeline};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Address to listen on. The default answers this machine only; `0.0.0.0:8080` serves
    /// the network (put it behind a proxy with TLS and authentication).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,

    /// Largest upload accepted, in MiB.
    #[arg(long, default_value_t = 20)]
    max_upload_mib: usize,

    /// Widest or tallest image accepted, in pixels (read from the header, before decoding).
    #[arg(long, default_value_t = 12_000)]
    max_image_side: u32,

    /// Photos located at the same time (each uses every core; more than one helps when the
    /// LMM's latency dominates).
    #[arg(long, default_value_t = 2)]
    workers: usize,

    /// Requests that may wait for a worker; beyond them the server answers 503.
    #[arg(long, default_value_t = 16)]
    queue: usize,

    /// Seconds a request may take, waiting included, before the server answers 504.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,

    /// Leave out place names (no gazetteer needed).
    #[arg(long)]
    no_place_names: bool,
}

struct Server {
    pipeline: Pipeline,
    geocoder: Option<ReverseGeocoder>,
    /// Permits for requests in the server (working or queued): `workers + queue`.
    admitted: Arc<Semaphore>,
    /// Permits for requests being located.
    working: Arc<Semaphore>,
    max_image_side: u32,
    timeout: Duration,
}

#[derive(Debug, Serialize)]
struct Timings {
    queued_ms: f64,
    locate_ms: f64,
    total_ms: f64,
}

/// What `POST /v1/locate` answers.
#[derive(Debug, Serialize)]
struct Located {
    prediction: Prediction,
    place: Option<PlaceName>,
    timings: Timings,
    /// Who answers the prompts (`asks_model: false` for the offline stand-in).
    generator: Option<GeneratorDescription>,
    /// The LMM's usage since the server started (requests, tokens, cost, lost answers).
    generation: Option<GenerationReport>,
}

/// An error answer: a status and a message for the user.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            axum::Json(serde_json::json!({ "error": self.1, "status": self.0.as_u16() })),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    let config = args.pipeline.config()?;
    if args.pipeline.print_config_if_asked(&config)? {
        return Ok(());
    }
    let geocoder = PlaceName::gazetteer(args.no_place_names)?;
    let pipeline = build_pipeline(&config)?;
    let server = Arc::new(Server {
        pipeline,
        geocoder,
        admitted: Arc::new(Semaphore::new(args.workers + args.queue)),
        working: Arc::new(Semaphore::new(args.workers)),
        max_image_side: args.max_image_side,
        timeout: Duration::from_secs(args.timeout_seconds),
    });
    let app = Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/world-110m.path",
            get(|| async { page(g3::report::WORLD_MAP_PATH, "text/plain; charset=utf-8") }),
        )
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/v1/locate", post(locate))
        .layer(DefaultBodyLimit::max(args.max_upload_mib << 20))
        .with_state(server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let address = listener.local_addr()?;
        eprintln!("g3 serve: listening on http://{address} (Ctrl-C stops)");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the server stopped")
    })
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The photo of a request: the body, or the first file of a multipart form.
async fn upload(request: Request) -> Result<(String, Bytes), Failure> {
    let too_large = |error: &dyn std::fmt::Display| {
        let text = error.to_string();
        if text.contains("length limit") || text.contains("too large") {
            Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is larger than the server accepts ({text})"),
            )
        } else {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("cannot read the upload: {text}"),
            )
        }
    };
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    if !is_form {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Failure(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the upload is larger than the server accepts ({})",
                            rejection.body_text()
                        ),
                    )
                } else {
                    Failure(rejection.status(), rejection.body_text())
                }
            })?;
        return Ok(("upload".to_owned(), bytes));
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| Failure(rejection.status(), rejection.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(|error| too_large(&error))? {
        if field.file_name().is_some() || field.name() == Some("photo") {
            let name = field.file_name().unwrap_or("upload").to_owned();
            let bytes = field.bytes().await.map_err(|error| too_large(&error))?;
            return Ok((name, bytes));
        }
    }
    Err(Failure(
        StatusCode::BAD_REQUEST,
        "the form has no file: send the photo as the body or as a `photo` file field".into(),
    ))
}

/// Refuses what is not a photo, or one too large, from its header alone.
fn check_photo(bytes: &[u8], max_side: u32) -> Result<(), Failure> {
    if bytes.is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "the upload is empty: send a photo".into(),
        ));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| Failure(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    if reader.format().is_none() {
        return Err(Failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image this server reads (JPEG, PNG, WebP, GIF)".into(),
        ));
    }
    let (width, height) = reader.into_dimensions().map_err(|error| {
        Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the photo cannot be read: {error}"),
        )
    })?;
    if width > max_side || height > max_side {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the photo is {width} x {height} pixels; this server takes at most {max_side} on a side"
            ),
        ));
    }
    Ok(())
}

async fn locate(
    State(server): State<Arc<Server>>,
    request: Request,
) -> Result<axum::Json<Located>, Failure> {
    let started = Instant::now();
    let admitted = server.admitted.clone().try_acquire_owned().map_err(|_| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: every worker and queue place is taken; retry shortly".into(),
        )
    })?;
    let (name, bytes) = upload(request).await?;
    check_photo(&bytes, server.max_image_side)?;
    let work = {
        let server = server.clone();
        async move {
            let working = server.working.clone().acquire_owned().await.map_err(|_| {
                Failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is stopping".into(),
                )
            })?;
            let queued = started.elapsed();
            let blocking_server = server.clone();
            tokio::task::spawn_blocking(move || {
                // The permits go with the work: a request that timed out still holds its
                // worker until the pipeline finishes with it.
                let _permits = (admitted, working);
                let input = ImageInput::from_bytes(name, bytes.to_vec());
                let outcome = blocking_server
                    .pipeline
                    .locate_each(std::slice::from_ref(&input))
                    .and_then(|mut outcomes| outcomes.remove(0));
                (outcome, queued)
            })
            .await
            .map_err(|error| {
                Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the locate task failed: {error}"),
                )
            })
        }
    };
    let (outcome, queued) = tokio::time::timeout(server.timeout, work)
        .await
        .map_err(|_| {
            Failure(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the photo was not located within {} s",
                    server.timeout.as_secs()
                ),
            )
        })??;
    let prediction = outcome.map_err(|error| {
        let status = match &error {
            g3::Error::AnswersLost { .. } | g3::Error::GenerationHalted { .. } => {
                StatusCode::BAD_GATEWAY
            }
            g3::Error::Core(g3::core::Error::Stage { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, error.to_string())
    })?;
    let place = server
        .geocoder
        .as_ref()
        .map(|geocoder| PlaceName::nearest(geocoder, prediction.location));
    let report = server.pipeline.generation_report();
    let total = started.elapsed();
    Ok(axum::Json(Located {
        prediction,
        place,
        timings: Timings {
            queued_ms: queued.as_secs_f64() * 1e3,
            locate_ms: (total - queued).as_secs_f64() * 1e3,
            total_ms: total.as_secs_f64() * 1e3,
        },
        generator: report.as_ref().map(|report| report.generator.clone()),
        generation: report,
    }))
}
