//! `g3 serve`: the library's web service ([`g3::serve`]) on a socket: flags become its
//! limits, Ctrl-C stops it. It binds to loopback unless told otherwise.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use g3::core::ImageLimits;
use g3::serve::{ServeLimits, router};

use crate::common::gazetteer;
use crate::pipeline_args::{PipelineArgs, build_pipeline};

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

    /// Widest or tallest image accepted, in pixels (read from the header, before decoding;
    /// images of more than 89,478,485 pixels are refused too, as everywhere g3 decodes).
    #[arg(long, default_value_t = ImageLimits::default().max_side)]
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

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    let config = args.pipeline.config()?;
    if args.pipeline.print_config_if_asked(&config)? {
        return Ok(());
    }
    let geocoder = gazetteer(args.no_place_names)?;
    let pipeline = build_pipeline(&config)?;
    let limits = ServeLimits {
        max_upload_bytes: args.max_upload_mib << 20,
        image: ImageLimits {
            max_side: args.max_image_side,
            ..ImageLimits::default()
        },
        workers: args.workers,
        queue: args.queue,
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    let app = router(pipeline, geocoder, &limits);
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
