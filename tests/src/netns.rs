//! Several hosts on one machine, for the multi-host tests: each host is a network namespace
//! with its own address, and the services run in them as separate processes. Where
//! namespaces cannot be made (not root, no `ip netns`), every host is 127.0.0.1 instead, so
//! that the same test still runs and asserts everything, only without the isolation.
//!
//! Layout with namespaces (`ID` is random, so that concurrent runs do not meet):
//!
//! ```text
//!  test process (root namespace)  dwIDup 10.A.B.1/24
//!        |  veth
//!  dw-ID-sw: bridge br0  (its own namespace: a fresh, empty firewall, whatever the
//!        |               machine's FORWARD policy is, as on a Docker host)
//!        +-- veth -- dw-ID-ts   eth0 10.A.B.2/24
//!        +-- veth -- dw-ID-web  eth0 10.A.B.3/24
//!        ...
//! ```

use std::ffi::OsStr;
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set (to anything) to skip namespaces and run on loopback addresses, as on a machine
/// where they cannot be made.
pub const NO_NETNS_VAR: &str = "TEST_NO_NETNS";

/// How long a service may take to answer after its start.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// The iproute2 binary (`/usr/sbin` is not on every root's `PATH`).
fn ip_binary() -> &'static str {
    if Path::new("/usr/sbin/ip").exists() {
        "/usr/sbin/ip"
    } else {
        "ip"
    }
}

/// Runs `ip ARGS`; its stderr as the error.
fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new(ip_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// One host: a namespace with an address, or the local machine.
#[derive(Debug, Clone)]
pub struct Host {
    /// The name the test gave it.
    pub name: String,
    /// Its address, reachable from the test process and from every other host.
    pub ip: IpAddr,
    netns: Option<String>,
}

impl Host {
    /// A command that runs `program` on this host (`ip netns exec NS program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.netns {
            Some(netns) => {
                let mut command = Command::new(ip_binary());
                command.args(["netns", "exec", netns]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// An address on this host for a listener. The port is free on the local machine, so
    /// that on loopback the services do not collide; a fresh namespace has every port free.
    pub fn free_addr(&self) -> SocketAddr {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        SocketAddr::new(self.ip, port)
    }
}

/// The hosts of one test, removed (namespaces, links) when dropped.
#[derive(Debug)]
pub struct Net {
    hosts: Vec<Host>,
    /// Every namespace made, the switch's included, in order of creation.
    namespaces: Vec<String>,
    /// The root namespace's end of the link to the switch.
    uplink: Option<String>,
    subnet: Option<[u8; 3]>,
}

impl Net {
    /// Namespaces if they can be made, otherwise loopback addresses, saying so on stderr.
    /// Under CI (`CI` set, where `.ci/run` runs as root) namespaces that cannot be made are a
    /// failure, unless `TEST_NO_NETNS` asks for loopback: a green CI means several hosts ran.
    pub fn namespaces_or_loopback(names: &[&str]) -> Net {
        let attempt = if std::env::var_os(NO_NETNS_VAR).is_some() {
            Err(format!("{NO_NETNS_VAR} is set"))
        } else {
            Net::namespaces(names).inspect_err(|reason| {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "network namespaces are expected under CI: {reason}"
                );
            })
        };
        attempt.unwrap_or_else(|reason| {
            eprintln!("skipped namespaces: {reason}; running on loopback addresses");
            Net::loopback(names)
        })
    }

    /// Every host on 127.0.0.1.
    pub fn loopback(names: &[&str]) -> Net {
        let hosts = names
            .iter()
            .map(|name| Host {
                name: (*name).to_owned(),
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                netns: None,
            })
            .collect();
        Net {
            hosts,
            namespaces: Vec::new(),
            uplink: None,
            subnet: None,
        }
    }

    /// One namespace per name, on a bridge the test process reaches too. On any failure,
    /// what was made is removed and the reason returned.
    pub fn namespaces(names: &[&str]) -> Result<Net, String> {
        if names.len() > 250 {
            return Err("too many hosts for a /24".into());
        }
        let subnet = free_subnet()?;
        let id = format!("{:04x}", rand::random::<u16>());
        let mut net = Net {
            hosts: Vec::new(),
            namespaces: Vec::new(),
            uplink: None,
            subnet: Some(subnet),
        };
        // On an early return `net` is dropped, which removes what was made so far.
        net.build(&id, subnet, names)?;
        Ok(net)
    }

    fn build(&mut self, id: &str, [a, b, c]: [u8; 3], names: &[&str]) -> Result<(), String> {
        let switch = format!("dw-{id}-sw");
        self.add_namespace(&switch)?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;

        let uplink = format!("dw{id}up");
        ip(&[
            "link", "add", &uplink, "type", "veth", "peer", "name", "root0", "netns", &switch,
        ])?;
        self.uplink = Some(uplink.clone());
        ip(&["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", &uplink])?;
        ip(&["link", "set", &uplink, "up"])?;
        ip(&["-n", &switch, "link", "set", "root0", "master", "br0"])?;
        ip(&["-n", &switch, "link", "set", "root0", "up"])?;

        for (i, name) in names.iter().enumerate() {
            let netns = format!("dw-{id}-{name}");
            self.add_namespace(&netns)?;
            let port = format!("h{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            let host = u8::try_from(i + 2).map_err(|_| "too many hosts".to_owned())?;
            let address = format!("{a}.{b}.{c}.{host}/24");
            ip(&["-n", &netns, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            // Services listen on their own address, but clients inside a host (gRPC health
            // probes, for one) may use 127.0.0.1.
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            self.hosts.push(Host {
                name: (*name).to_owned(),
                ip: IpAddr::V4(Ipv4Addr::new(a, b, c, host)),
                netns: Some(netns),
            });
        }
        Ok(())
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Whether the hosts are namespaces (and not all 127.0.0.1).
    pub fn uses_namespaces(&self) -> bool {
        self.subnet.is_some()
    }

    /// "network namespaces on 10.A.B.0/24" or "loopback addresses", for the test's output.
    pub fn describe(&self) -> String {
        match self.subnet {
            Some([a, b, c]) => format!("network namespaces on {a}.{b}.{c}.0/24"),
            None => "loopback addresses (every host is 127.0.0.1)".into(),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The test stops its services first; anything left in a namespace (started there
        // by this test) would keep it, and its links, alive after `netns del`.
        for netns in self.namespaces.iter().rev() {
            if let Ok(pids) = ip(&["netns", "pids", netns]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            if let Err(e) = ip(&["netns", "del", netns]) {
                eprintln!("could not remove namespace {netns}: {e}");
            }
        }
        // Its peer went with the switch's namespace; this is for a switch that was never
        // made.
        if let Some(uplink) = &self.uplink {
            let _ = ip(&["link", "del", uplink]);
        }
    }
}

/// A random 10.A.B.0/24 (A in 200..=250) that no local interface is on.
fn free_subnet() -> Result<[u8; 3], String> {
    let in_use = ip(&["-4", "-o", "addr", "show"])?;
    for _ in 0..20 {
        let a = 200 + rand::random::<u8>() % 51;
        let b = rand::random::<u8>();
        let prefix = format!(" 10.{a}.{b}.");
        if !in_use.contains(&prefix) {
            return Ok([10, a, b]);
        }
    }
    Err("no free 10.x.y.0/24 found".into())
}

/// `name` in the cargo target folder's `debug` (as `cargo build --workspace` leaves it;
/// `CARGO_TARGET_DIR` is honoured). Panics if it is not there.
pub fn workspace_binary(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."))
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace.join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A folder for one test's files, removed when the test passes and kept (with its path
/// printed) when it fails, for the logs.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new, empty folder under the system's temporary folder.
    pub fn new(label: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "doorward-{label}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("could not create {}: {e}", path.display()));
        Scratch { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside it, created as a folder.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("could not create {}: {e}", dir.display()));
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for its logs", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A service running as a child process, its output in a log file. Dropping it kills it;
/// when the test is failing, the end of its log is printed first.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `command` (from [`Host::command`]) with its stdout and stderr in
    /// `log_dir/NAME.log`.
    pub fn start(name: &str, mut command: Command, log_dir: &Path) -> Service {
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let stderr = file
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
        Service {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `ready` until it says yes, for at most 30 s; panics, with the log's end, if
    /// the process exits or the deadline passes. `ready` returns why not, for the panic.
    pub async fn wait_ready<F, Fut>(&mut self, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before it was ready", self.name);
            }
            let last = match ready().await {
                Ok(()) => return,
                Err(why) => why,
            };
            if Instant::now() > deadline {
                panic!(
                    "{} not ready after {}s: {last}",
                    self.name,
                    READY_DEADLINE.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ({}) ---\n{}\n---",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
    }
}
