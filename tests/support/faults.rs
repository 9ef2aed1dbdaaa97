//! The TEST HELPER fault proxy (tests/fault-proxy) in front of the test cluster, through
//! `kubectl proxy`: for the reliability tests and the fault benchmark.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use super::kubeconfig;

/// A process killed when the test ends, however it ends.
pub struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a program that prints its address on its first line, and returns it with that line.
pub fn start(command: &mut Command) -> (Killed, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    (Killed(child), line)
}

/// `kubectl proxy` to the test cluster, then the fault proxy in front of it; a kubeconfig
/// for kubevet that points at the fault proxy.
pub struct Faulty {
    _kubectl: Killed,
    _proxy: Killed,
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
}

fn fault_proxy_binary() -> PathBuf {
    // Tests run from target/debug/deps, the benchmark from target/release/deps; tests/run
    // builds the helper in debug.
    let beside = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.join("fault-proxy")));
    let debug = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/fault-proxy");
    let found = beside.into_iter().chain([debug]).find(|b| b.is_file());
    found.unwrap_or_else(|| panic!("the fault proxy is not built: cargo build -p fault-proxy (tests/run does)"))
}

pub fn faulty(dir: &Path, args: &[&str]) -> Faulty {
    let (kubectl, line) = start(Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig()).args([
        "proxy",
        "--port=0",
        "--address=127.0.0.1",
    ]));
    let upstream = line.trim().rsplit(' ').next().expect("kubectl proxy says where it serves").to_string();
    let log = dir.join("faults.log");
    let (proxy, line) = start(
        Command::new(fault_proxy_binary())
            .args(["--upstream", &format!("http://{upstream}"), "--log"])
            .arg(&log)
            .args(args),
    );
    let address = line.trim().strip_prefix("listening on ").expect("fault proxy address").to_string();
    let config = dir.join("faulty.kubeconfig");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: faulty\n  cluster: {{server: \"http://{address}\"}}\nusers:\n- name: anonymous\n  user: {{}}\ncontexts:\n- name: faulty\n  context: {{cluster: faulty, user: anonymous}}\ncurrent-context: faulty\n"
        ),
    )
    .expect("kubeconfig");
    Faulty { _kubectl: kubectl, _proxy: proxy, kubeconfig: config, log }
}

/// Faults the proxy injected, by kind and request class (`http-503 apply`: 4).
pub fn injected(log: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let mut words = line.split(' ');
        let key = format!("{} {}", words.next().unwrap_or(""), words.next().unwrap_or(""));
        *counts.entry(key).or_default() += 1;
    }
    counts
}
