//! The `svcnet` binary: argument parsing and wiring only; each subcommand runs one part.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: under the API benchmark glibc spent a visible share of the
/// server's CPU consolidating and trimming per-thread arenas (malloc_consolidate, mprotect),
/// which showed up as watch-delivery tail latency on a 2-core machine. Built without its
/// transparent huge pages (`no_thp`): with them every fresh 2 MiB of heap was zeroed at once on
/// first touch, again after each purge, which made the slowest of twenty 10,000-Service lists
/// 49-63 ms instead of 24-30 ms, and every pod's short-lived shim paid for pages it never used.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "svcnet", version, about = "Kubernetes Service networking, in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kubernetes-compatible API server (with the controllers, unless disabled).
    Server(ServerArgs),
    /// Run the controllers against any Kubernetes API server.
    Controllers(ControllersArgs),
    /// Whole-system benchmarks against peers (not tests: run them by hand).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Build a multi-node lab of network namespaces and run its cluster in the foreground.
    Up(svcnet_lab::UpArgs),
    /// Remove a lab (also after a crash of `svcnet up`).
    Down(svcnet_lab::DownArgs),
    /// Run the node agent (kubelet + CNI) inside a node's network namespace.
    Agent(svcnet_node::agent::AgentArgs),
    /// The built-in workload: answers on TCP, HTTP and UDP ports with who it is and who asked.
    Echo(svcnet_node::echo::EchoArgs),
    /// Run a command inside a pod's, a node's or the internet client's namespaces.
    Exec(svcnet_node::cli::ExecArgs),
    /// Print a container's output.
    Logs(svcnet_node::cli::LogsArgs),
    /// Run the cluster DNS: Services and pods by name, from the API, over UDP and TCP.
    Dns(svcnet_dns::cli::DnsArgs),
    /// The node proxy: run it alone, or print a node's live nftables table.
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// The parent of one container process (started by the agent).
    #[command(hide = true)]
    Shim(svcnet_node::shim::ShimArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Create, list and watch Services over HTTP, side by side with the same creates on etcd.
    Api(svcnet_bench::ApiBenchOptions),
    /// Time `svcnet up` until all nodes are Ready, and pod create -> Ready in a lab.
    Lab(svcnet_lab::BenchLabArgs),
    /// The node proxy's sync time and first-packet latency, beside kube-proxy's iptables layout.
    Proxy(svcnet_proxy::bench::BenchProxyArgs),
    /// svcnet dns against NSD and unbound with dnsperf, each pinned to one core.
    Dns(svcnet_dns::bench::BenchDnsArgs),
    /// Network programming latency in a lab: readiness flip -> first connection to the new backend.
    Programming(svcnet_lab::BenchProgrammingArgs),
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Run the node proxy in the current network namespace (`svcnet agent` runs it by default).
    Run(svcnet_proxy::cli::RunArgs),
    /// Print a node's live `ip svcnet` table.
    Rules(svcnet_proxy::cli::RulesArgs),
}

#[derive(clap::Args)]
struct ControllersArgs {
    /// URL of the API server.
    #[arg(long, env = "SVCNET_SERVER", default_value = "http://127.0.0.1:6443")]
    server: String,
    #[command(flatten)]
    controllers: ControllerFlags,
}

#[derive(clap::Args, Clone)]
struct ControllerFlags {
    /// Endpoints per EndpointSlice (upstream --max-endpoints-per-slice).
    #[arg(long, env = "SVCNET_MAX_ENDPOINTS_PER_SLICE", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_endpoints_per_slice: u16,
    /// Seconds without a node lease renewal before the node is Unknown (upstream
    /// --node-monitor-grace-period).
    #[arg(long, env = "SVCNET_NODE_MONITOR_GRACE_PERIOD", default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Pod network, handed out to nodes in /24s.
    #[arg(long, env = "SVCNET_CLUSTER_CIDR", default_value = "10.244.0.0/16")]
    cluster_cidr: String,
}

impl ControllerFlags {
    fn config(&self) -> svcnet_controllers::ControllerConfig {
        svcnet_controllers::ControllerConfig {
            max_endpoints_per_slice: usize::from(self.max_endpoints_per_slice),
            node_monitor_grace_period: std::time::Duration::from_secs(self.node_monitor_grace_period),
            cluster_cidr: self.cluster_cidr.clone(),
            ..Default::default()
        }
    }
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
    /// Run only the API server, without the in-process controllers.
    #[arg(long, env = "SVCNET_NO_CONTROLLERS")]
    no_controllers: bool,
    #[command(flatten)]
    controllers: ControllerFlags,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SVCNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Errors end the process with one line (the error and its causes), never a backtrace: that is
/// what a user of the CLI reads.
fn main() {
    if let Err(error) = run() {
        eprintln!("Error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    // Built only for the commands that run async code: the shim (one per container) and the
    // other synchronous commands start no worker threads, and the built-in echo workload (one
    // per pod) runs on one thread.
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match cli.command {
        Command::Server(args) => runtime()?.block_on(server(args)),
        Command::Bench(BenchCommand::Api(options)) => runtime()?.block_on(async move {
            let report = svcnet_bench::run_api_bench(options).await?;
            println!("{report}");
            Ok(())
        }),
        Command::Up(args) => runtime()?.block_on(svcnet_lab::up(args)),
        Command::Down(args) => svcnet_lab::down(args),
        Command::Bench(BenchCommand::Lab(args)) => runtime()?.block_on(async move {
            print!("{}", svcnet_lab::bench_lab(args).await?);
            Ok(())
        }),
        Command::Controllers(args) => runtime()?.block_on(async move {
            let client = svcnet_controllers::client_for(&args.server)?;
            svcnet_controllers::run_all(client, args.controllers.config()).await
        }),
        Command::Agent(args) => runtime()?.block_on(svcnet_node::agent::run(args)),
        Command::Echo(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(svcnet_node::echo::run(args)),
        Command::Exec(args) => runtime()?.block_on(svcnet_node::cli::exec(args)),
        Command::Logs(args) => runtime()?.block_on(svcnet_node::cli::logs(args)),
        Command::Bench(BenchCommand::Proxy(args)) => {
            print!("{}", svcnet_proxy::bench::run(args)?);
            Ok(())
        }
        Command::Proxy(ProxyCommand::Run(args)) => runtime()?.block_on(svcnet_proxy::cli::run(args)),
        Command::Proxy(ProxyCommand::Rules(args)) => svcnet_proxy::cli::rules(&args, svcnet_node::lab_prefix),
        Command::Shim(args) => std::process::exit(svcnet_node::shim::run(args)?),
        Command::Dns(args) => runtime()?.block_on(svcnet_dns::cli::run(args)),
        Command::Bench(BenchCommand::Dns(args)) => runtime()?.block_on(async move {
            print!("{}", svcnet_dns::bench::run(args).await?);
            Ok(())
        }),
        Command::Bench(BenchCommand::Programming(args)) => runtime()?.block_on(async move {
            print!("{}", svcnet_lab::bench_programming(args).await?);
            Ok(())
        }),
    }
}

/// The API server, and the controllers as its clients over loopback.
async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let config = svcnet_apiserver::Config {
        data_dir: args.data_dir,
        listen: args.listen,
        service_network: svcnet_apiserver::services::ServiceNetwork {
            cidrs: args.service_cidr,
            node_ports: args.service_node_port_range,
        },
    };
    let listener = svcnet_apiserver::Listener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let api = svcnet_apiserver::serve(config, listener);
    if args.no_controllers {
        return api.await;
    }
    let client = svcnet_controllers::client_for(&format!("http://{address}"))?;
    let controllers = svcnet_controllers::run_all(client, args.controllers.config());
    tokio::try_join!(api, controllers)?;
    Ok(())
}
