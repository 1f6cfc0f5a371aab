//! `picolm-server MODEL.gguf`: an OpenAI-compatible HTTP server over picolm-core, so OpenAI clients and
//! PicoClaw run on PicoLM.

mod args;
mod engine;
mod error;
mod queue;
mod request;
mod response;
mod routes;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use picolm_core::{Model, ModelParams};

use args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("picolm-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let params = ModelParams { n_ctx: args.n_ctx, n_threads: args.threads, ..Default::default() };
    let model = Model::load(&args.model, &params).map_err(|e| format!("{}: {e}", args.model.display()))?;
    for w in model.warnings() {
        eprintln!("picolm-server: warning: {w}");
    }
    let model = Arc::new(model);
    let n_ctx = model.n_ctx();
    let slots = usize::from(args.parallel);
    let engine = engine::Engine::new(model, n_ctx, slots).map_err(|e| e.to_string())?;
    let name = args.alias.clone().unwrap_or_else(|| {
        let stem = args.model.file_stem().map(|s| s.to_string_lossy().into_owned());
        stem.unwrap_or_else(|| "picolm".into())
    });
    let scheduler = queue::Scheduler::new(Arc::new(engine), slots, args.queue);
    let state = Arc::new(routes::AppState::new(scheduler, name.clone(), args.api_key.clone()));
    let router = routes::router(state, args.max_body_bytes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async move {
        let addr = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "picolm-server: serving {name} on http://{local}/v1 (context {n_ctx}, {slots} slot(s), queue {}, api key {})",
            args.queue,
            if args.api_key.is_some() { "required" } else { "off" }
        );
        tokio::select! {
            _ = serve::serve(listener, router, Duration::from_secs(args.read_timeout.max(1))) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("picolm-server: interrupted, stopping"),
        }
        Ok::<(), String>(())
    })
}
