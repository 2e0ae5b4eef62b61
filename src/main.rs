//! `huying`: runs the server. With no configuration it serves the embedded
//! default (SQLite under ./huying-data) on 127.0.0.1:50051. `huying admin …`
//! is the staff client; `huying bootstrap-admin …` creates the first
//! system administrator.

use std::sync::Arc;

use anyhow::Context;
use huying::clock::SystemClock;
use huying::config::Config;
use huying::startup::Application;

/// How long unary calls in flight may take to finish on shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("admin") {
        args.remove(0);
        if let Err(error) = huying::cli::run(args).await {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("bootstrap-admin") {
        args.remove(0);
        if let Err(error) = huying::bootstrap::run(args).await {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
        return Ok(());
    }

    let config = Config::from_env().context("Failed to read the configuration")?;
    huying::telemetry::init(config.log_format);

    let embedded = config.is_embedded();
    let mut app = Application::start(config, Arc::new(SystemClock)).await?;
    print_welcome(app.address(), embedded);

    tokio::select! {
        signal = shutdown_signal() => signal?,
        // Only a failure ends the server before a signal does.
        failure = app.finished() => return failure,
    }
    tracing::info!("shutting down");
    match tokio::time::timeout(SHUTDOWN_GRACE, app.stop()).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("calls still open after the grace period; exiting");
            Ok(())
        }
    }
}

fn print_welcome(address: std::net::SocketAddr, embedded: bool) {
    println!("Huying is listening on {address} (gRPC, and gRPC-Web over HTTP/1.1 and HTTP/2).");
    println!("  list the API:   grpcurl -plaintext {address} list");
    if embedded {
        println!(
            "  sign in:        grpcurl -plaintext -d '{{\"dev\":{{\"subject\":\"alice\",\"role\":\"ROLE_CITIZEN\"}}}}' {address} huying.v1.AuthService/SignIn"
        );
        println!("  (embedded mode: data in ./huying-data, development sign-in enabled)");
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("Failed to listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("Failed to listen for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("Failed to listen for Ctrl-C")?;
    Ok(())
}
