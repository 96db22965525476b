//! The official Kubernetes Python client (the version pinned in tests/python/requirements.txt)
//! drives a real svcnet server through tests/python/client_scenario.py: CRUD, lists with
//! selectors, patches of every type, watches, errors, namespace deletion and the other served
//! kinds, all through the client's strict models.
//!
//! The interpreter is `$SVCNET_PYTHON` (scripts/test sets it), else `<workspace>/.venv/bin/python`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound of one scenario run; its watches time out after 15 s at most.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/client_scenario.py"
    ))
}

/// The Python interpreter with the client installed; fails the test (never skips) without one.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("SVCNET_PYTHON").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        assert!(
            python.exists(),
            "SVCNET_PYTHON={} does not exist; run scripts/test, which creates the venv with the Kubernetes Python client",
            python.display()
        );
        return python;
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the Kubernetes client: SVCNET_PYTHON is unset and {} does not exist; run scripts/test \
         (or: python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt)",
        venv.display()
    );
    venv
}

/// The client version tests/python/requirements.txt pins.
fn pinned_client_version() -> String {
    let path = workspace_root().join("tests/python/requirements.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    text.lines()
        .find_map(|line| line.trim().strip_prefix("kubernetes=="))
        .map(|version| version.trim().to_string())
        .unwrap_or_else(|| panic!("{} does not pin kubernetes==<version>", path.display()))
}

/// Checks that the interpreter has the pinned client, with a clear message when it does not.
fn check_client_installed(python: &Path) {
    let out = Command::new(python)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", python.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} cannot import the Kubernetes Python client; run scripts/test (or .venv/bin/pip install -r \
         tests/python/requirements.txt):\n{stderr}",
        python.display()
    );
    let installed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pinned = pinned_client_version();
    assert_eq!(
        installed,
        pinned,
        "{} has kubernetes {installed}, tests/python/requirements.txt pins {pinned}; reinstall the requirements",
        python.display()
    );
}

/// Runs a command to completion within `timeout`, killing it on expiry; returns (success,
/// stdout, stderr, timed out).
fn run_with_timeout(mut command: Command, timeout: Duration) -> (bool, String, String, bool) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python scenario");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stdout.read_to_string(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for the Python scenario") {
            break (Some(status), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (status.is_some_and(|s| s.success()), stdout, stderr, timed_out)
}

#[test]
fn python_client_scenario() {
    let python = python();
    check_client_installed(&python);
    let server = common::Server::start();
    let mut command = Command::new(&python);
    command
        .arg(scenario_path())
        .arg(&server.url)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The client would otherwise pick up a proxy or a kubeconfig from the environment.
        .env_remove("KUBECONFIG")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .current_dir(workspace_root());
    let (ok, stdout, stderr, timed_out) = run_with_timeout(command, SCENARIO_TIMEOUT);
    assert!(
        !timed_out,
        "the Python client scenario did not finish within {SCENARIO_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        ok,
        "the Python client scenario failed against {} (run it alone with \
         `.venv/bin/python tests/python/client_scenario.py --keep-going URL` to see every failing check)\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        server.url
    );
    assert!(
        stdout.contains("ALL CHECKS PASSED"),
        "the scenario exited 0 without finishing:\n{stdout}"
    );
}
