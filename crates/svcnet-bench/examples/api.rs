//! Runs `svcnet bench api` without the svcnet binary's command line:
//! `cargo run --release -p svcnet-bench --example api -- --svcnet-binary target/release/svcnet`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    options: svcnet_bench::ApiBenchOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SVCNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let report = svcnet_bench::run_api_bench(Cli::parse().options).await?;
    println!("{report}");
    Ok(())
}
