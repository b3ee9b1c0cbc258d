//! Strangers at the hub's door, against a real `bftswarm hub` on loopback:
//! what a connection that has not proved a committee key may cost the hub
//! (memory, places, log lines), and that a refusal from a peer that has not
//! proved the hub's key does not end a node.
//!
//! The scenarios run one at a time: each floods the loopback interface.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bftswarm");
const MIB: usize = 1024 * 1024;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A testnet of four node processes; its hub and nodes are killed when it ends.
struct Net {
    dir: tempfile::TempDir,
    hub: Option<Child>,
    hub_stderr: Arc<Mutex<Vec<String>>>,
    nodes: Vec<Option<Child>>,
}

impl Net {
    fn write() -> Net {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let written = Command::new(BIN)
            .args(["testnet", "--validators", "4", "--listen", "127.0.0.1:0", "--output"])
            .arg(dir.path())
            .output()
            .expect("bftswarm testnet runs");
        assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
        Net { dir, hub: None, hub_stderr: Arc::default(), nodes: (0..4).map(|_| None).collect() }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Starts the hub (serving, no workload); returns its address once it listens.
    fn start_hub(&mut self) -> String {
        let mut child = Command::new(BIN)
            .args(["hub", "--wait-secs", "600", "--home"])
            .arg(self.path("hub"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hub starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let seen = self.hub_stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line);
            }
        });
        self.hub = Some(child);
        wait_until("the hub listens", Duration::from_secs(20), || self.hub_said("hub listening on") > 0);
        std::fs::read_to_string(self.path("hub/hub.addr")).expect("the hub wrote hub.addr")
    }

    fn hub_pid(&self) -> u32 {
        self.hub.as_ref().expect("the hub runs").id()
    }

    /// How many of the hub's stderr lines contain `needle`.
    fn hub_said(&self, needle: &str) -> usize {
        self.hub_stderr.lock().unwrap().iter().filter(|line| line.contains(needle)).count()
    }

    fn start_node(&mut self, index: usize, hub: &str) {
        let name = format!("bft-agent-{}", index + 1);
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).expect("a node log");
        let child = Command::new(BIN)
            .args(["node", "--no-fsync", "--hub", hub, "--home"])
            .arg(self.path(&name))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the node starts");
        self.nodes[index] = Some(child);
    }

    fn node_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.path(&format!("bft-agent-{}.log", index + 1))).unwrap_or_default()
    }

    fn kill_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill_node(index);
        }
        if let Some(mut hub) = self.hub.take() {
            let _ = hub.kill();
            let _ = hub.wait();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A field of /proc/<pid>/status in KiB (VmRSS now, VmHWM the peak).
fn memory_kib(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    let line = status.lines().find(|line| line.starts_with(field)).expect("the field exists");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number of KiB")
}

#[test]
fn strangers_announcing_64_mib_frames_cost_the_hub_little_memory() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Net::write();
    let hub = net.start_hub();
    let idle_kib = memory_kib(net.hub_pid(), "VmRSS");
    // Each announces the largest frame a member may send and sends all but 1 MiB of it.
    let strangers: Vec<_> = (0..24)
        .map(|_| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&hub).expect("the hub accepts");
                let chunk = vec![0xA5u8; MIB];
                let sent = stream.write_all(&(64 * MIB as u32).to_be_bytes());
                let sent = (0..63).try_fold((), |(), _| stream.write_all(&chunk)).and(sent);
                (stream, sent.is_ok())
            })
        })
        .collect();
    let strangers: Vec<_> = strangers.into_iter().map(|s| s.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let peak_kib = memory_kib(net.hub_pid(), "VmHWM");
    eprintln!("hub RSS idle {} MiB, peak {} MiB under 24 strangers", idle_kib / 1024, peak_kib / 1024);
    assert!(peak_kib < 300 * 1024, "the hub grew to {} MiB (idle: {} MiB)", peak_kib / 1024, idle_kib / 1024);
    let accepted = strangers.iter().filter(|(_, sent)| *sent).count();
    assert_eq!(accepted, 0, "the hub read {accepted} strangers' 63 MiB instead of hanging up");
}

/// Keeps `count` idle connections open to `hub`, opening a new one whenever the hub drops one.
fn flood(hub: &str, count: usize, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let (hub, stop) = (hub.to_string(), stop.clone());
            let idle = move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(&hub) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut byte = [0u8; 1];
                    while !stop.load(Ordering::Relaxed) {
                        match stream.read(&mut byte) {
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            _ => break,
                        }
                    }
                }
            };
            std::thread::Builder::new().stack_size(64 * 1024).spawn(idle).expect("a flooding thread")
        })
        .collect()
}

#[test]
fn a_member_node_rejoins_within_seconds_during_a_flood_of_idle_strangers() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Net::write();
    let hub = net.start_hub();
    for index in 0..4 {
        net.start_node(index, &hub);
    }
    for index in 0..4 {
        wait_until("every node joins", Duration::from_secs(30), || net.node_log(index).contains("joined the hub"));
    }
    // A member goes down; strangers flood the hub; the member comes back in the middle of the flood.
    net.kill_node(1);
    // Whatever the hub says of the lost connection is said before the flood.
    std::thread::sleep(Duration::from_secs(1));
    let warnings_before = net.hub_said("WARN");
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(&hub, 600, &stop);
    // The hub warns once the flood has taken every place it has for strangers.
    wait_until("the flood fills the hub", Duration::from_secs(20), || net.hub_said("WARN") > warnings_before);
    std::thread::sleep(Duration::from_secs(1));
    net.start_node(1, &hub);
    let start = Instant::now();
    while !net.node_log(1).contains("joined the hub") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rejoined = start.elapsed();
    assert!(rejoined < Duration::from_secs(5), "bft-agent-2 did not rejoin within 5 s:\n{}", net.node_log(1));
    eprintln!("bft-agent-2 rejoined {} ms after its restart, during the flood", rejoined.as_millis());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for thread in flooding {
        thread.join().unwrap();
    }
    let warnings = net.hub_said("WARN") - warnings_before;
    let dropped = net.hub_said("dropped connections that did not prove");
    assert!(
        dropped >= 1,
        "the hub said nothing of the strangers it dropped:\n{}",
        net.hub_stderr.lock().unwrap().join("\n")
    );
    assert!(warnings <= 10, "{warnings} warnings during the flood:\n{}", net.hub_stderr.lock().unwrap().join("\n"));
}

/// A listener that answers every Hello with a refusal whose text holds a terminal escape.
fn impostor() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut length = [0u8; 4];
            if stream.read_exact(&mut length).is_err() {
                continue;
            }
            let mut hello = vec![0u8; u32::from_be_bytes(length) as usize];
            let _ = stream.read_exact(&mut hello);
            let reason = "\u{1b}[2J\u{1b}[31mgo away\u{7}".to_string();
            let refused = bftswarm::transport::Frame::Refused { reason }.encode().unwrap();
            let _ = stream.write_all(&(refused.len() as u32).to_be_bytes());
            let _ = stream.write_all(&refused);
        }
    });
    address
}

#[test]
fn a_refusal_from_a_peer_that_has_not_proved_the_hub_key_does_not_end_the_node() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = Net::write();
    let address = impostor();
    net.start_node(0, &address);
    wait_until("the node hears the refusal", Duration::from_secs(20), || net.node_log(0).contains("go away"));
    std::thread::sleep(Duration::from_secs(1));
    let exited = net.nodes[0].as_mut().unwrap().try_wait().unwrap();
    let log = net.node_log(0);
    assert!(exited.is_none(), "the node believed a stranger's refusal and exited ({exited:?}):\n{log}");
    assert!(log.contains("not believed"), "{log}");
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{7}'),
        "the stranger's control characters reached the terminal:\n{log:?}"
    );
    assert!(log.contains("\\u{1b}[31mgo away\\u{7}"), "{log}");
}
