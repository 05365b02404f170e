//! The server processes `percore-bench kv` measures: finding the binaries,
//! starting one on a free loopback port with the same settings for both,
//! waiting until it answers `version`, its CPU time and resident memory
//! from /proc, and killing it.
//!
//! A [`Server`] is a guard: dropping it (at the end of a measurement, on an
//! error, or while a panic unwinds) kills the process and reaps it. Should
//! this process itself die, the child gets SIGKILL too
//! (`PR_SET_PDEATHSIG`, set between fork and exec), so no server outlives
//! the bench.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `version` after it was started.
const READY: Duration = Duration::from_secs(10);

/// The two implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
    /// `/usr/bin/memcached` (or `$MEMCACHED_BIN`).
    Memcached,
    /// `percore-kv` next to this executable (or `$PERCORE_KV_BIN`).
    PercoreKv,
}

impl Impl {
    /// The `impl` of its report rows: percore's side is "percore", as in
    /// every other subsystem, so the tables show the ratio against it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Memcached => "memcached",
            Impl::PercoreKv => "percore",
        }
    }

    /// Its name in messages for people.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Impl::Memcached => "memcached",
            Impl::PercoreKv => "percore-kv",
        }
    }

    /// The binary, or why there is none (a message for people).
    pub(crate) fn locate(self) -> Result<PathBuf, String> {
        match self {
            Impl::Memcached => {
                let p = std::env::var_os("MEMCACHED_BIN").map_or_else(|| "/usr/bin/memcached".into(), PathBuf::from);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "memcached not found at {} (set MEMCACHED_BIN): measuring percore-kv alone",
                        p.display()
                    ))
                }
            }
            Impl::PercoreKv => {
                let p = match std::env::var_os("PERCORE_KV_BIN") {
                    Some(p) => PathBuf::from(p),
                    None => std::env::current_exe()
                        .map_err(|e| format!("cannot find this executable: {e}"))?
                        .with_file_name("percore-kv"),
                };
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "percore-kv not found at {} (run `cargo build --release -p percore-kv`, or set PERCORE_KV_BIN): skipped",
                        p.display()
                    ))
                }
            }
        }
    }
}

/// The settings both servers get.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Worker threads (`-t`).
    pub(crate) threads: usize,
    /// Item memory in MiB (`-m`).
    pub(crate) memory_mib: usize,
    /// Connection limit (`-c`).
    pub(crate) conn_limit: usize,
    /// Run the whole process on this CPU only.
    pub(crate) cpu: Option<usize>,
}

/// A running server; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// Its stdout and stderr, shown when it fails.
    log: PathBuf,
}

impl Server {
    /// Starts `imp` from `bin` with `spec` and waits until it answers
    /// `version`. `Err`: a message saying why it cannot be measured.
    pub(crate) fn start(imp: Impl, bin: &PathBuf, spec: Spec) -> Result<Server, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::env::temp_dir().join(format!("percore-bench-kv-{}-{port}.log", std::process::id()));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        let n = |x: usize| x.to_string();
        cmd.args(["-p", &n(port.into()), "-U", "0", "-l", "127.0.0.1"]);
        cmd.args(["-t", &n(spec.threads), "-m", &n(spec.memory_mib), "-c", &n(spec.conn_limit)]);
        // SAFETY: geteuid has no preconditions.
        if imp == Impl::Memcached && unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]); // memcached refuses to run as root without it
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if let Some(cpu) = spec.cpu {
            if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
                return Err(format!("CPU {cpu} is beyond the affinity mask's capacity"));
            }
            // SAFETY: `cpu` was checked against the set's capacity above.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        let pin = spec.cpu.is_some();
        // SAFETY: the closure runs between fork and exec and only makes two
        // async-signal-safe system calls on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if pin && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut s = Server { child, addr, log };
        s.wait_ready().map_err(|e| format!("{} ({}): {e}{}", imp.label(), bin.display(), s.log_tail()))?;
        Ok(s)
    }

    /// Polls `version` until it answers, the process exits, or [`READY`]
    /// passes.
    fn wait_ready(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| format!("wait: {e}"))? {
                return Err(format!("exited ({status}) before answering `version`"));
            }
            match version(self.addr) {
                Ok(v) => return Ok(v),
                Err(VersionError::NotYet) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(VersionError::NotYet) => return Err(format!("did not answer `version` in {} s", READY.as_secs())),
                Err(VersionError::Bad(e)) => return Err(e),
            }
        }
    }

    /// Fails if the process is gone (it crashed during a measurement).
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited ({status}){}", self.log_tail())),
            Err(e) => Err(format!("wait: {e}")),
        }
    }

    /// User + system CPU time of the whole process (every thread), from
    /// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
    pub(crate) fn cpu_time(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // The command name (field 2) may hold spaces: fields count from
        // after its closing parenthesis, where field 3 is.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| format!("{path}: no `)`"))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick =
            |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| format!("{path}: field {}", i + 3));
        let ticks = tick(14 - 3)? + tick(15 - 3)?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
    }

    /// Resident memory (`VmRSS` of `/proc/<pid>/status`) in KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .ok_or_else(|| format!("{path}: no VmRSS"))
    }

    /// The process id.
    #[cfg(test)]
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server printed, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n    ");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; it printed:\n    {tail}")
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

enum VersionError {
    /// Not listening yet (or not answering yet): try again.
    NotYet,
    /// It answered something else.
    Bad(String),
}

/// One `version` round trip: the version string.
fn version(addr: SocketAddr) -> Result<String, VersionError> {
    let not_yet = |_| VersionError::NotYet;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(not_yet)?;
    s.set_read_timeout(Some(Duration::from_millis(500))).map_err(not_yet)?;
    s.write_all(b"version\r\n").map_err(not_yet)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(not_yet)?;
    match line.strip_prefix("VERSION ").and_then(|v| v.strip_suffix("\r\n")) {
        Some(v) => Ok(v.to_string()),
        None if line.is_empty() => Err(VersionError::NotYet),
        None => Err(VersionError::Bad(format!("answered `{}` to `version`", line.escape_default()))),
    }
}
