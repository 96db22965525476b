//! What `svcnet bench api` takes on its command line.

use std::path::PathBuf;
use std::time::Duration;

/// Options of the API benchmark; every count is bounded and every phase has a time limit.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiBenchOptions {
    /// Services to create (named svc-00000, svc-00001, ...).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub services: u32,
    /// Clients creating at the same time, each on its own connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub concurrency: u32,
    /// Watches held open on the Services while they are created.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub watchers: u32,
    /// Times the full list is fetched as JSON.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub lists: u32,
    /// Times the full list is fetched as a Table (`kubectl get svc`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub table_lists: u32,
    /// The svcnet binary to run as `server` (default: this executable).
    #[arg(long)]
    pub svcnet_binary: Option<PathBuf>,
    /// Run the server with its in-process controllers (EndpointSlices for every Service and so
    /// on); by default the API server runs alone, as kube-apiserver does next to etcd.
    #[arg(long)]
    pub with_controllers: bool,
    /// The etcd binary to compare with (Debian package etcd-server).
    #[arg(long, default_value = "etcd")]
    pub etcd_binary: PathBuf,
    /// Skip the etcd comparison.
    #[arg(long)]
    pub no_etcd: bool,
    /// Where the temporary data dirs of both servers go (the same disk for both).
    #[arg(long, default_value = "/var/tmp")]
    pub work_dir: PathBuf,
    /// Time limit of each phase (start, create, watch drain, list), in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub phase_timeout_secs: u64,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        ApiBenchOptions {
            services: 10_000,
            concurrency: 32,
            watchers: 100,
            lists: 20,
            table_lists: 5,
            svcnet_binary: None,
            with_controllers: false,
            etcd_binary: PathBuf::from("etcd"),
            no_etcd: false,
            work_dir: PathBuf::from("/var/tmp"),
            phase_timeout_secs: 300,
        }
    }
}

impl ApiBenchOptions {
    pub(crate) fn phase_timeout(&self) -> Duration {
        Duration::from_secs(self.phase_timeout_secs)
    }

    /// The command line that reproduces these options (for the report).
    pub fn command_line(&self) -> String {
        let defaults = ApiBenchOptions::default();
        let mut line = String::from("svcnet bench api");
        let mut push = |flag: &str, value: String, default: String| {
            if value != default {
                line.push_str(&format!(" --{flag} {value}"));
            }
        };
        push("services", self.services.to_string(), defaults.services.to_string());
        push(
            "concurrency",
            self.concurrency.to_string(),
            defaults.concurrency.to_string(),
        );
        push("watchers", self.watchers.to_string(), defaults.watchers.to_string());
        push("lists", self.lists.to_string(), defaults.lists.to_string());
        push(
            "table-lists",
            self.table_lists.to_string(),
            defaults.table_lists.to_string(),
        );
        push(
            "work-dir",
            self.work_dir.display().to_string(),
            defaults.work_dir.display().to_string(),
        );
        if self.with_controllers {
            line.push_str(" --with-controllers");
        }
        if self.no_etcd {
            line.push_str(" --no-etcd");
        }
        line
    }
}
