//! The `svcnet` binary: argument parsing and wiring only; each subcommand runs one part.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "svcnet", version, about = "Kubernetes Service networking, in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kubernetes-compatible API server.
    Server(ServerArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Directory holding the embedded store.
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = "/var/lib/svcnet")]
    data_dir: PathBuf,
    /// Address to serve the API on (plain HTTP).
    #[arg(long, env = "SVCNET_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Service IP range; a second, comma-separated CIDR of the other family makes the cluster
    /// dual-stack.
    #[arg(
        long,
        env = "SVCNET_SERVICE_CIDR",
        default_value = "10.96.0.0/12",
        value_delimiter = ','
    )]
    service_cidr: Vec<String>,
    /// Port range for NodePort Services.
    #[arg(long, env = "SVCNET_SERVICE_NODE_PORT_RANGE", default_value = "30000-32767")]
    service_node_port_range: String,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SVCNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(svcnet_apiserver::run(svcnet_apiserver::Config {
            data_dir: args.data_dir,
            listen: args.listen,
            service_network: svcnet_apiserver::services::ServiceNetwork {
                cidrs: args.service_cidr,
                node_ports: args.service_node_port_range,
            },
        })),
    }
}
