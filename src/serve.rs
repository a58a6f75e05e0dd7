//! The pipeline as a web service, for a user to mount in their own axum app or run as
//! `g3 serve`. [`router`] answers:
//!
//! - `POST /v1/locate`: a photo (the body, or the first file of a multipart form) → JSON:
//!   the prediction, the whole candidate pool with provenance and scores, the place name,
//!   timings and the LMM's usage;
//! - `GET /`: a page to drop a photo on and see every candidate on a world map (its files
//!   are compiled in: no request reaches the file system, nothing is fetched from elsewhere);
//! - `GET /healthz`: whether the server is up.
//!
//! Untrusted uploads meet [`ServeLimits`]: the upload size (413, a body-limit layer), the
//! image's pixel size read from its header before any decoding (422), a bounded queue (503
//! with `Retry-After` when full) in front of a fixed number of concurrent locates, and a
//! per-request timeout (504). The queue and the timeout are not tower's concurrency-limit and
//! timeout layers on purpose: a locate runs on a blocking thread that a timeout cannot
//! cancel, so its worker permit must stay with the work until the pipeline is done (else a
//! burst of timed-out requests would run more locates at once than `workers`), and only
//! `POST /v1/locate` is limited, never the page or the health check.
//!
//! ```no_run
//! # async fn demo(pipeline: g3::Pipeline) -> std::io::Result<()> {
//! use g3::serve::{ServeLimits, router};
//!
//! let app = axum::Router::new()
//!     .nest("/geo", router(pipeline, None, &ServeLimits::default()))
//!     .route("/", axum::routing::get(|| async { "my app" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use g3_core::{GeneratorDescription, ImageLimits};
use g3_data::{PlaceName, ReverseGeocoder};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::pipeline::{GenerationReport, Pipeline};
use crate::{ImageInput, Prediction};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// What the service accepts and how much work it takes on at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeLimits {
    /// Largest upload accepted, in bytes (413 above).
    pub max_upload_bytes: usize,
    /// The largest image accepted, read from the header before decoding (422 beyond): a
    /// small file can declare a huge image.
    pub image: ImageLimits,
    /// Photos located at the same time (each uses every core; more than one helps when the
    /// LMM's latency dominates).
    pub workers: usize,
    /// Requests that may wait for a worker; beyond them the service answers 503.
    pub queue: usize,
    /// Time a request may take, waiting included, before the service answers 504.
    pub timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_upload_bytes: 20 << 20,
            image: ImageLimits::default(),
            workers: 2,
            queue: 16,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The service's routes over a built pipeline; `geocoder` adds place names to answers.
/// Mount it in an axum app, or serve it alone.
pub fn router(
    pipeline: Pipeline,
    geocoder: Option<ReverseGeocoder>,
    limits: &ServeLimits,
) -> Router {
    let server = Arc::new(Server {
        pipeline,
        geocoder,
        admitted: Arc::new(Semaphore::new(limits.workers.max(1) + limits.queue)),
        working: Arc::new(Semaphore::new(limits.workers.max(1))),
        image_limits: limits.image,
        timeout: limits.timeout,
    });
    Router::new()
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
            get(|| async { page(crate::report::WORLD_MAP_PATH, "text/plain; charset=utf-8") }),
        )
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/v1/locate", post(locate))
        .layer(DefaultBodyLimit::max(limits.max_upload_bytes))
        .with_state(server)
}

/// The state every request shares.
struct Server {
    pipeline: Pipeline,
    geocoder: Option<ReverseGeocoder>,
    /// Permits for requests in the server (working or queued): `workers + queue`.
    admitted: Arc<Semaphore>,
    /// Permits for requests being located.
    working: Arc<Semaphore>,
    image_limits: ImageLimits,
    timeout: Duration,
}

/// How long a request took.
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
fn check_photo(bytes: &[u8], limits: &ImageLimits) -> Result<(), Failure> {
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
    if !limits.admits(width, height) {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the photo is {width} x {height} pixels; this server takes at most {} on a side and {} pixels in all",
                limits.max_side, limits.max_pixels
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
    check_photo(&bytes, &server.image_limits)?;
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
            crate::Error::AnswersLost { .. } | crate::Error::GenerationHalted { .. } => {
                StatusCode::BAD_GATEWAY
            }
            crate::Error::Core(g3_core::Error::Stage { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
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
