//! Shared harness of the integration suites: a real `svcnet server` on a free loopback port with
//! its own data dir (killed and removed on drop), and the real kubectl with a fresh HOME.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running API server; the process is killed when this is dropped, also on test failure.
pub struct Server {
    child: Child,
    pub url: String,
    pub port: u16,
    pub data_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub fn start() -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_in(data_dir)
    }

    /// Starts a server with extra flags (e.g. `--service-cidr`).
    pub fn start_with(args: &[&str]) -> Server {
        Self::launch(tempfile::tempdir().unwrap(), args)
    }

    /// Starts a server on an existing data dir (restart tests).
    pub fn start_in(data_dir: tempfile::TempDir) -> Server {
        Self::launch(data_dir, &[])
    }

    fn launch(data_dir: tempfile::TempDir, args: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_svcnet"))
            .args(["server", "--data-dir"])
            .arg(data_dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("SVCNET_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start svcnet server");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(body) = http_get(self.port, "/readyz") {
                if body.ends_with("ok") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("svcnet server did not become ready on port {}", self.port);
    }

    /// Kills the server with SIGKILL and hands back its data dir.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.data_dir, dir)
    }
}

/// A minimal HTTP/1.0 GET on loopback, enough for readiness checks.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

/// Where the versioned kubectl binaries live (beside the dispatcher on PATH).
pub fn kubectl_binary(minor: u32) -> PathBuf {
    let dispatcher = which("kubectl").expect("kubectl on PATH");
    let real = std::fs::canonicalize(&dispatcher).unwrap_or(dispatcher);
    let candidate = real.parent().unwrap().join(format!("kubectl.1.{minor}"));
    assert!(candidate.exists(), "{} is missing", candidate.display());
    candidate
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

/// The real kubectl of one version with its own HOME (kubectl caches discovery there).
pub struct Kubectl {
    pub binary: PathBuf,
    pub server: String,
    pub home: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(minor: u32, server: &Server) -> Kubectl {
        Kubectl {
            binary: kubectl_binary(minor),
            server: server.url.clone(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .arg("--server")
            .arg(&self.server)
            .args(args)
            .current_dir(self.home.path());
        cmd
    }

    /// Runs kubectl, optionally with stdin, and returns its output.
    pub fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = input {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, None)
    }

    pub fn ok_with_input(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run_with_input(args, input);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        stdout
    }

    /// Runs kubectl and insists on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        self.fails_with_input(args, None)
    }

    pub fn fails_with_input(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run_with_input(args, input);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stderr
    }

    /// Writes a manifest into the kubectl HOME and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// Whether the tests run as root (lab, agent and proxy tests need network namespaces).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `svcnet down --data-dir DIR`, for drop guards: it removes whatever a lab left, also when a test
/// failed half-way.
pub fn svcnet_down(data_dir: &Path) {
    let _ = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .arg("down")
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .status();
}
