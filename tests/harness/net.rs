//! Hosts and partitions: nodes on separate "hosts" (Linux network
//! namespaces) joined by a bridge, and links that tests cut and heal.
//!
//! ```text
//!   root namespace (the test process)         namespace of host k
//!   bridge rt<pid>b<c>  <subnet>.1/24  ---  veth rt<pid>h<c> == eth0  <subnet>.k/24
//! ```
//!
//! - [`Net::new`] makes the bridge, with an address, so the test process
//!   reaches every host over TCP. The /24 is picked inside 10.231.0.0/16 from
//!   the pid and a per-process counter, and only when no address or route on
//!   the machine overlaps it (checked and assigned under a file lock shared by
//!   every test process on the machine).
//! - [`Net::host`] makes a namespace with `lo` up and one veth pair: the root
//!   end on the bridge, the other end (`eth0`) in the namespace.
//! - [`Host::cut`] sets the root end of its veth down: the host loses its
//!   link to every other host and to the test process, while it still reaches
//!   its own address (its repmgrd still sees its own server) and unix sockets
//!   (filesystem objects) keep working across namespaces, so the socket-based
//!   query helpers still observe a cut node. [`Host::heal`] sets it up again.
//! - Commands run in a host as the unprivileged run user:
//!   [`Host::command`], [`run_as_user_on`](super::run_as_user_on).
//!
//! Traffic only goes to loopback or to addresses inside namespaces the test
//! made: the bridge is connected to nothing else and no forwarding is set up.
//!
//! Names carry the pid of the creating test process and a per-process
//! counter (`rt-<pid>-<c>-<name>` for namespaces, `rt<pid>b<c>` / `rt<pid>h<c>`
//! for interfaces, at most 15 bytes), so parallel tests and parallel test
//! processes do not collide; a name that exists anyway is skipped. The
//! bridge goes when the [`Net`] and all its hosts are dropped; a namespace
//! and its veth when the last clone of its [`Host`] is dropped (nodes and
//! daemons on a host hold a clone, so the network outlives them). Leftovers
//! of killed runs (whose pid is dead) are removed by the first `Net::new` of
//! a test process.

use super::{pid_alive, poll_until, run_user, try_poll_until};
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wait_timeout::ChildExt;

/// Every network is a /24 inside this /16.
pub const NET_PREFIX: [u8; 2] = [10, 231];

/// Deadline for one `ip` command.
const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// Deadline for the machine-wide subnet lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where network namespaces are bind-mounted by `ip netns add`.
const NETNS_DIR: &str = "/run/netns";

/// Lock file serializing subnet choice between test processes.
const SUBNET_LOCK: &str = "/tmp/.rt-net-subnet.lock";

/// Per-process counter used in every name.
fn next_counter() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed) % 100_000
}

/// Run `ip ARGS` with a deadline; Err(message) on failure. Never panics (it
/// runs from Drop too).
pub fn ip(args: &[&str]) -> Result<String, String> {
    tool("ip", args)
}

/// Run `program ARGS` (an iproute2 tool: ip, tc) with a deadline.
fn tool(program: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/");
    let label = format!("{program} {}", args.join(" "));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{label}: could not start {program} (install iproute2): {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = match child.wait_timeout(IP_TIMEOUT) {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{label}: did not finish within {IP_TIMEOUT:?}"));
        }
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{label}: {status}: {}", stderr.trim()))
    }
}

#[track_caller]
fn ip_ok(args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Fail early and plainly when namespaces cannot work here.
#[track_caller]
fn require_root() {
    assert!(
        run_user().switch,
        "network namespaces (harness::net) need the tests to run as root, as CI does"
    );
}

// ---------------------------------------------------------------- cleanup

/// Pid in a name made by [`ns_name`]: `rt-<pid>-...`.
fn ns_owner(name: &str) -> Option<i32> {
    name.strip_prefix("rt-")?.split('-').next()?.parse().ok()
}

/// Pid in an interface name made here: `rt<pid>b<c>` or `rt<pid>h<c>`.
fn if_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("rt")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let tail = &rest[digits.len()..];
    let kind = tail.chars().next()?;
    let counter = &tail[1..];
    if digits.is_empty()
        || !matches!(kind, 'b' | 'h')
        || counter.is_empty()
        || !counter.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

/// Names of the network namespaces on the machine.
pub fn netns_names() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the network interfaces of the root namespace.
pub fn link_names() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL every process in namespace `ns` (they are the test's own).
fn kill_processes_in(ns: &str) -> usize {
    let Ok(out) = ip(&["netns", "pids", ns]) else {
        return 0;
    };
    let pids: Vec<i32> = out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for &p in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

/// Remove namespaces, veths and bridges left by harness runs whose process
/// is dead (killed test runs). Objects of live processes are left alone.
pub fn cleanup_stale() {
    for ns in netns_names() {
        let Some(pid) = ns_owner(&ns) else { continue };
        if pid_alive(pid) {
            continue;
        }
        let n = kill_processes_in(&ns);
        eprintln!("[harness] removing stale network namespace {ns} (pid {pid} is gone; killed {n} processes in it)");
        if let Err(e) = ip(&["netns", "del", &ns]) {
            eprintln!("[harness] {e}");
        }
    }
    // Veths first (their bridge may still list them), then bridges.
    let mut links = link_names();
    links.sort_by_key(|l| !l.contains('h'));
    for link in links {
        let Some(pid) = if_owner(&link) else { continue };
        if pid_alive(pid) || !std::path::Path::new("/sys/class/net").join(&link).exists() {
            continue;
        }
        eprintln!("[harness] removing stale interface {link} (pid {pid} is gone)");
        if let Err(e) = ip(&["link", "del", &link]) {
            eprintln!("[harness] {e}");
        }
    }
}

fn cleanup_stale_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(cleanup_stale);
}

// ---------------------------------------------------------------- subnets

/// IPv4 networks (address, prefix length) in use on the machine: interface
/// addresses and routes more specific than /8 (the default route and wide
/// routes do not claim a /24).
fn networks_in_use() -> Vec<(u32, u8)> {
    let mut nets = Vec::new();
    let parse = |s: &str| -> Option<(u32, u8)> {
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let a: std::net::Ipv4Addr = a.parse().ok()?;
        Some((u32::from(a), p.parse().ok()?))
    };
    for line in ip_ok(&["-4", "-o", "addr", "show"]).lines() {
        let mut words = line.split_whitespace();
        if words.any(|w| w == "inet") {
            if let Some(n) = words.next().and_then(parse) {
                nets.push(n);
            }
        }
    }
    for line in ip_ok(&["-4", "route", "show", "table", "all"]).lines() {
        let mut words = line.split_whitespace();
        let mut first = words.next().unwrap_or("");
        if matches!(
            first,
            "local" | "broadcast" | "unicast" | "blackhole" | "unreachable" | "prohibit"
        ) {
            first = words.next().unwrap_or("");
        }
        if let Some((a, p)) = parse(first) {
            if p > 8 {
                nets.push((a, p));
            }
        }
    }
    nets
}

/// Does any address or route on the machine overlap `subnet` (`a.b.c.d/n`)?
pub fn subnet_in_use(subnet: &str) -> bool {
    let (a, p) = subnet.split_once('/').expect("a/n");
    let a: std::net::Ipv4Addr = a.parse().expect("an IPv4 address");
    let net = (u32::from(a), p.parse().expect("a prefix length"));
    networks_in_use().iter().any(|&n| overlaps(n, net))
}

fn overlaps((a, p): (u32, u8), (b, q): (u32, u8)) -> bool {
    let len = p.min(q).min(32);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

/// The machine-wide subnet lock (bounded wait).
fn subnet_lock() -> nix::fcntl::Flock<std::fs::File> {
    let mut file = Some(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(SUBNET_LOCK)
            .unwrap_or_else(|e| panic!("opening {SUBNET_LOCK}: {e}")),
    );
    let mut lock = None;
    poll_until(
        LOCK_TIMEOUT,
        &format!("lock {SUBNET_LOCK}"),
        || match nix::fcntl::Flock::lock(
            file.take().expect("lock file"),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        ) {
            Ok(l) => {
                lock = Some(l);
                true
            }
            Err((f, _)) => {
                file = Some(f);
                false
            }
        },
    );
    lock.expect("lock after poll")
}

// ---------------------------------------------------------------- Net

/// A bridge in the root namespace with `<subnet>.1/24`; hosts hang off it.
/// Cheap to clone handles are not offered: hand out [`Host`]s instead.
pub struct Net {
    inner: Arc<NetInner>,
}

struct NetInner {
    bridge: String,
    /// First three octets, e.g. `10.231.17`.
    prefix: String,
    next_host: AtomicU32,
}

impl fmt::Debug for NetInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Net({} {}.0/24)", self.bridge, self.prefix)
    }
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Net {
    /// A new bridge, up, with `<subnet>.1/24` on a /24 of 10.231.0.0/16 no
    /// interface or route of the machine overlaps.
    #[track_caller]
    pub fn new() -> Net {
        require_root();
        cleanup_stale_once();
        let pid = std::process::id();
        let _lock = subnet_lock();
        let in_use = networks_in_use();
        let live = link_names();
        let counter = next_counter();
        let mut bridge = None;
        for attempt in 0..1000u32 {
            let c = (counter + attempt * 7919) % 100_000;
            let name = format!("rt{pid}b{c}");
            if name.len() <= 15 && !live.contains(&name) {
                bridge = Some(name);
                break;
            }
        }
        let bridge = bridge.expect("a free bridge name");
        let start = (pid.wrapping_mul(31).wrapping_add(counter.wrapping_mul(97))) % 254;
        let third = (0..254u32)
            .map(|i| ((start + i * 37) % 254 + 1) as u8)
            .find(|&x| {
                let net = (u32::from_be_bytes([NET_PREFIX[0], NET_PREFIX[1], x, 0]), 24);
                !in_use.iter().any(|&n| overlaps(n, net))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no free /24 left in {}.{}.0.0/16 on this machine",
                    NET_PREFIX[0], NET_PREFIX[1]
                )
            });
        let prefix = format!("{}.{}.{third}", NET_PREFIX[0], NET_PREFIX[1]);
        ip_ok(&[
            "link",
            "add",
            "name",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        // From here on, Drop removes the bridge.
        let inner = Arc::new(NetInner {
            bridge,
            prefix,
            next_host: AtomicU32::new(2),
        });
        ip_ok(&[
            "addr",
            "add",
            &format!("{}.1/24", inner.prefix),
            "dev",
            &inner.bridge,
        ]);
        ip_ok(&["link", "set", &inner.bridge, "up"]);
        Net { inner }
    }

    /// Bridge interface name (root namespace).
    pub fn bridge(&self) -> &str {
        &self.inner.bridge
    }

    /// `10.231.X.0/24`.
    pub fn subnet(&self) -> String {
        self.inner.subnet()
    }

    /// Address of the test process on this network (`<subnet>.1`).
    pub fn gateway_ip(&self) -> String {
        format!("{}.1", self.inner.prefix)
    }

    /// A new host: namespace with `lo` up and `eth0` = `<subnet>.<k>/24`,
    /// linked to the bridge.
    #[track_caller]
    pub fn host(&self, name: &str) -> Host {
        let k = self.inner.next_host.fetch_add(1, Ordering::Relaxed);
        assert!(k <= 254, "more than 253 hosts on one Net");
        let pid = std::process::id();
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(24)
            .collect();
        // Namespace: a name that exists already is skipped.
        let mut made = None;
        for _ in 0..20 {
            let c = next_counter();
            let ns = format!("rt-{pid}-{c}-{clean}");
            let veth = format!("rt{pid}h{c}");
            if netns_names().contains(&ns) || link_names().contains(&veth) {
                continue;
            }
            match ip(&["netns", "add", &ns]) {
                Ok(_) => {
                    made = Some((ns, veth));
                    break;
                }
                Err(e) if e.contains("File exists") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let (ns, veth) = made.expect("a free namespace name in 20 tries");
        let ip_addr = format!("{}.{k}", self.inner.prefix);
        // From here on, Drop removes what exists.
        let inner = Arc::new(HostInner {
            name: name.to_string(),
            ns: ns.clone(),
            veth: veth.clone(),
            drops: Default::default(),
            _net: self.inner.clone(),
        });
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip_ok(&["link", "set", &veth, "master", &self.inner.bridge]);
        ip_ok(&["link", "set", &veth, "up"]);
        ip_ok(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip_addr}/24"),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        Host {
            ns,
            ip: ip_addr,
            name: name.to_string(),
            inner,
        }
    }
}

impl NetInner {
    fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }
}

impl Drop for NetInner {
    fn drop(&mut self) {
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("[harness] removing bridge {}: {e}", self.bridge);
        }
    }
}

// ---------------------------------------------------------------- Host

/// One host: a network namespace on a [`Net`]. Clones share it; the
/// namespace and its veth are removed when the last clone is dropped.
#[derive(Clone)]
pub struct Host {
    /// Namespace name (`ip netns`): `rt-<pid>-<c>-<name>`.
    pub ns: String,
    /// Its address on the bridge, e.g. `10.231.17.2`.
    pub ip: String,
    /// The name the test gave it.
    pub name: String,
    inner: Arc<HostInner>,
}

struct HostInner {
    name: String,
    ns: String,
    /// Root-side end of the veth pair (on the bridge).
    veth: String,
    /// The packets its eth0 drops on the way out.
    drops: std::sync::Mutex<Drops>,
    /// Keeps the bridge until the last host is gone.
    _net: Arc<NetInner>,
}

/// What a host's eth0 drops on the way out.
#[derive(Default)]
struct Drops {
    /// Every packet to these addresses ([`Host::drop_to`]).
    to: std::collections::BTreeSet<String>,
    /// Its SYN-ACKs ([`Host::refuse_new_connections`]).
    syn_acks: bool,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Host({} {} ns={} veth={})",
            self.name, self.ip, self.ns, self.inner.veth
        )
    }
}

impl Host {
    /// `/run/netns/<ns>`.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.ns)
    }

    /// Root-side veth interface name.
    pub fn veth(&self) -> &str {
        &self.inner.veth
    }

    /// `10.231.X.0/24` of its Net.
    pub fn subnet(&self) -> String {
        self.inner._net.subnet()
    }

    /// Do `self` and `other` hang off the same bridge?
    pub fn same_net(&self, other: &Host) -> bool {
        Arc::ptr_eq(&self.inner._net, &other.inner._net)
    }

    /// Partition: the host loses its link to every other host and to the
    /// test process (root-side veth down). Existing TCP connections stall
    /// (packets are dropped, nothing is reset); new ones time out. The host
    /// still reaches its own address, and unix sockets still work.
    #[track_caller]
    pub fn cut(&self) {
        ip_ok(&["link", "set", &self.inner.veth, "down"]);
    }

    /// A one-way cut: every packet from this host to `other` is dropped
    /// (silently, as a partition does); everything else flows. Once each
    /// way cuts only the link between the two.
    #[track_caller]
    pub fn drop_to(&self, other: &Host) {
        let mut d = self.inner.drops.lock().unwrap_or_else(|e| e.into_inner());
        d.to.insert(other.ip.clone());
        self.apply_drops(&d);
    }

    /// Lifts [`drop_to`](Self::drop_to) for `other`.
    #[track_caller]
    pub fn undrop_to(&self, other: &Host) {
        let mut d = self.inner.drops.lock().unwrap_or_else(|e| e.into_inner());
        d.to.remove(&other.ip);
        self.apply_drops(&d);
    }

    /// SYN-only loss: no new TCP connection to this host completes (its
    /// SYN-ACKs are dropped on the way out, so every connect from another
    /// host or the test process times out), while every established
    /// connection, in either direction, and every connection this host
    /// opens itself keep working. Its own address is reached over `lo`,
    /// which is untouched.
    ///
    /// Dropping the SYN-ACK at the host is what dropping the SYN at the
    /// host's door does to a connecting client, and tc can do it on the
    /// way out with the drop class [`drop_to`](Self::drop_to) already uses:
    /// dropping on the way in would need an ingress drop action (act_gact)
    /// or netfilter (nft, iptables), which CI machines need not have.
    #[track_caller]
    pub fn refuse_new_connections(&self) {
        let mut d = self.inner.drops.lock().unwrap_or_else(|e| e.into_inner());
        d.syn_acks = true;
        self.apply_drops(&d);
    }

    /// Lifts [`refuse_new_connections`](Self::refuse_new_connections).
    #[track_caller]
    pub fn accept_new_connections(&self) {
        let mut d = self.inner.drops.lock().unwrap_or_else(|e| e.into_inner());
        d.syn_acks = false;
        self.apply_drops(&d);
    }

    /// The drops as tc on the namespace's eth0 (no iptables, no drop
    /// action module needed): an htb root whose default class passes
    /// everything, and a class behind a zero-length pfifo, which drops all
    /// it is given, that a u32 filter per address (and one for SYN-ACKs)
    /// sends packets to.
    #[track_caller]
    fn apply_drops(&self, drops: &Drops) {
        let ns = self.ns.as_str();
        let _ = tool("tc", &["-n", ns, "qdisc", "del", "dev", "eth0", "root"]);
        if drops.to.is_empty() && !drops.syn_acks {
            return;
        }
        let ok = |args: &[&str]| {
            if let Err(e) = tool("tc", args) {
                panic!("{e}");
            }
        };
        let dev = ["-n", ns];
        ok(&[
            &dev[..],
            &[
                "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10",
            ],
        ]
        .concat());
        ok(&[
            &dev[..],
            &[
                "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate",
                "10gbit", "quantum", "60000",
            ],
        ]
        .concat());
        ok(&[
            &dev[..],
            &[
                "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate",
                "8bit", "quantum", "1514",
            ],
        ]
        .concat());
        ok(&[
            &dev[..],
            &[
                "qdisc", "add", "dev", "eth0", "parent", "1:20", "handle", "20:", "pfifo", "limit",
                "0",
            ],
        ]
        .concat());
        if drops.syn_acks {
            // TCP, an IP header of 20 bytes (Linux sends no IP options), and
            // SYN and ACK set in the TCP flags (byte 13 of the TCP header).
            ok(&[
                &dev[..],
                &[
                    "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
                    "u32", "match", "ip", "protocol", "6", "0xff", "match", "u8", "0x05", "0x0f",
                    "at", "0", "match", "u8", "0x12", "0x12", "at", "33", "flowid", "1:20",
                ],
            ]
            .concat());
        }
        for ip in &drops.to {
            let dst = format!("{ip}/32");
            ok(&[
                &dev[..],
                &[
                    "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
                    "u32", "match", "ip", "dst", &dst, "flowid", "1:20",
                ],
            ]
            .concat());
        }
    }

    /// Heal the partition made by [`cut`](Self::cut).
    #[track_caller]
    pub fn heal(&self) {
        ip_ok(&["link", "set", &self.inner.veth, "up"]);
    }

    /// Is the link cut now (root-side veth administratively down)?
    pub fn is_cut(&self) -> bool {
        std::fs::read_to_string(format!("/sys/class/net/{}/flags", self.inner.veth))
            .ok()
            .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
            .is_none_or(|flags| flags & 1 == 0)
    }

    /// `program ARGS` to be run inside this host as the unprivileged run
    /// user, with the harness environment (PATH with the PG bindir first,
    /// HOME/USER/LOGNAME of the user, LC_ALL=C, PG* variables removed), cwd
    /// `/`. The caller spawns it (e.g. with
    /// [`run_with_deadline`](super::run_with_deadline) or
    /// [`Daemon::spawn_on`](super::Daemon::spawn_on)).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for v in super::PG_ENV_VARS {
            cmd.env_remove(v);
        }
        cmd.env("LC_ALL", "C").env("LANG", "C").current_dir("/");
        super::run_as_user_on(&mut cmd, self);
        cmd
    }

    /// Can a TCP connection to `ip:port` be opened from the test process
    /// within `timeout`?
    pub fn tcp_reachable(ip: &str, port: u16, timeout: Duration) -> bool {
        let Ok(addr) = format!("{ip}:{port}").parse::<std::net::SocketAddr>() else {
            return false;
        };
        std::net::TcpStream::connect_timeout(&addr, timeout).is_ok()
    }
}

impl Drop for HostInner {
    fn drop(&mut self) {
        // Whatever still runs in the namespace belongs to this test (servers
        // and daemons were stopped by their own guards before).
        let n = kill_processes_in(&self.ns);
        if n > 0 {
            eprintln!(
                "[harness] host {}: killed {n} processes left in namespace {}",
                self.name, self.ns
            );
            let ns = self.ns.clone();
            try_poll_until(Duration::from_secs(5), || {
                ip(&["netns", "pids", &ns]).is_ok_and(|o| o.trim().is_empty())
            });
        }
        if std::path::Path::new("/sys/class/net")
            .join(&self.veth)
            .exists()
        {
            if let Err(e) = ip(&["link", "del", &self.veth]) {
                eprintln!("[harness] host {}: {e}", self.name);
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.ns]) {
            eprintln!("[harness] host {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_parsing() {
        assert_eq!(if_owner("rt1234b7"), Some(1234));
        assert_eq!(if_owner("rt4194304h99999"), Some(4194304));
        assert_eq!(if_owner("rtx1b1"), None);
        assert_eq!(if_owner("rt12b"), None);
        assert_eq!(if_owner("rt12q3"), None);
        assert_eq!(ns_owner("rt-99-3-node1"), Some(99));
        assert_eq!(ns_owner("other"), None);
        assert!(overlaps(
            (u32::from_be_bytes([10, 0, 0, 0]), 8),
            (u32::from_be_bytes([10, 231, 5, 0]), 24)
        ));
        assert!(!overlaps(
            (u32::from_be_bytes([10, 231, 4, 7]), 24),
            (u32::from_be_bytes([10, 231, 5, 0]), 24)
        ));
    }
}
