//! Command line and settings, in memcached's spelling.
//!
//! ```
//! use percore_kv::config::Settings;
//!
//! let s = Settings::parse_from(["percore-kv", "-p", "11311", "-m", "128", "-I", "2m", "-o", "idle_timeout=30"]).unwrap();
//! assert_eq!(s.port, 11311);
//! assert_eq!(s.memory_limit, 128 << 20);
//! assert_eq!(s.max_item_size, 2 << 20);
//! assert_eq!(s.idle_timeout, Some(std::time::Duration::from_secs(30)));
//! assert!(Settings::parse_from(["percore-kv", "--bogus"]).is_err());
//! ```

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

/// The exit code for a bad command line (`EX_USAGE`, as memcached).
pub const EX_USAGE: i32 = 64;

/// The command line, as clap sees it.
#[derive(Parser, Debug)]
#[command(
    name = "percore-kv",
    version,
    about = "A memcached-compatible cache server on the percore runtime",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Cli {
    /// TCP port to listen on (0 = off)
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    port: u16,
    /// UDP port to listen on (0 = off, the default)
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    udp_port: u16,
    /// Interface to listen on
    #[arg(short = 'l', long = "listen", default_value = "127.0.0.1")]
    listen: String,
    /// Number of workers (default: one per CPU)
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    memory_limit: u64,
    /// Max simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    conn_limit: usize,
    /// Max item size (k and m suffixes; default 1m, min 1k, max 1024m)
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    max_item_size: String,
    /// Enable the `shutdown` command
    #[arg(short = 'A', long = "enable-shutdown")]
    enable_shutdown: bool,
    /// Verbose (-vv: very verbose)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
    /// Extended options, comma separated: idle_timeout=<secs>, pin_workers=<0|1>
    #[arg(short = 'o', long = "extended")]
    extended: Vec<String>,
    /// Print this help and exit
    #[arg(short = 'h', long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Print the version and exit
    #[arg(short = 'V', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
}

/// The server's settings (what `stats settings` reports).
#[derive(Clone, Debug)]
pub struct Settings {
    /// TCP port (0: no TCP listener).
    pub port: u16,
    /// UDP port (0: off).
    pub udp_port: u16,
    /// The address to listen on.
    pub listen: IpAddr,
    /// Workers (one OS thread each; see `pin_workers`).
    pub threads: usize,
    /// Item memory in bytes (`-m` is in megabytes).
    pub memory_limit: usize,
    /// Max simultaneous connections.
    pub conn_limit: usize,
    /// Max item size in bytes.
    pub max_item_size: usize,
    /// Whether `shutdown` is allowed.
    pub enable_shutdown: bool,
    /// Verbosity (0, 1, 2).
    pub verbose: u8,
    /// Close connections idle for longer than this.
    pub idle_timeout: Option<Duration>,
    /// Whether each worker is pinned to its own CPU (`-o pin_workers=1`;
    /// default off).
    pub pin_workers: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            port: 11211,
            udp_port: 0,
            listen: IpAddr::from([127, 0, 0, 1]),
            threads: default_threads(),
            memory_limit: 64 << 20,
            conn_limit: 1024,
            max_item_size: 1 << 20,
            enable_shutdown: false,
            verbose: 0,
            idle_timeout: None,
            pin_workers: PIN_WORKERS_DEFAULT,
        }
    }
}

/// Workers float (the kernel places them, as memcached's threads) unless
/// `-o pin_workers=1`: on a machine shared with other processes a pinned
/// worker cannot leave a busy CPU (measured in docs/BENCHMARKS.md, "Pinned or
/// not: percore-kv's workers").
const PIN_WORKERS_DEFAULT: bool = false;

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Why the command line was refused; `Display` is the message to print.
#[derive(Debug)]
pub enum CliError {
    /// `--help` or `--version`: print the text to stdout and exit 0.
    Info(String),
    /// A bad command line: print to stderr and exit [`EX_USAGE`].
    Usage(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Info(s) | CliError::Usage(s) => f.write_str(s.trim_end()),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses a size with an optional `k` / `m` / `g` suffix (as memcached's
/// `-I`).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(mult)
}

impl Settings {
    /// Parses a command line (the first item is the program name).
    pub fn parse_from<I, T>(args: I) -> Result<Settings, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                CliError::Info(e.to_string())
            }
            _ => CliError::Usage(e.to_string()),
        })?;
        let usage = |m: String| CliError::Usage(format!("percore-kv: {m}"));
        let listen: IpAddr =
            cli.listen.parse().map_err(|_| usage(format!("-l: '{}' is not an IP address", cli.listen)))?;
        let threads = cli.threads.unwrap_or_else(default_threads);
        if threads == 0 || threads > 1024 {
            return Err(usage(format!("-t: number of threads must be 1..=1024, not {threads}")));
        }
        if cli.memory_limit == 0 {
            return Err(usage("-m: the memory limit must be at least 1 (megabyte)".into()));
        }
        let memory_limit =
            usize::try_from(cli.memory_limit).ok().and_then(|m| m.checked_mul(1 << 20)).ok_or_else(|| {
                usage(format!("-m: {} megabytes is more than this machine can address", cli.memory_limit))
            })?;
        if cli.conn_limit == 0 {
            return Err(usage("-c: the connection limit must be at least 1".into()));
        }
        let max_item_size =
            parse_size(&cli.max_item_size).ok_or_else(|| usage(format!("-I: bad size '{}'", cli.max_item_size)))?;
        if max_item_size < 1024 {
            return Err(usage("Item max size cannot be less than 1024 bytes.".into()));
        }
        if max_item_size > 1 << 30 {
            return Err(usage("Cannot set item size limit higher than a gigabyte.".into()));
        }
        if max_item_size > memory_limit / 2 {
            return Err(usage("Cannot set item size limit higher than 1/2 of memory max.".into()));
        }
        let mut idle_timeout = None;
        let mut pin_workers = PIN_WORKERS_DEFAULT;
        for opt in cli.extended.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k {
                "idle_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| usage(format!("-o idle_timeout: bad number '{v}'")))?;
                    idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "pin_workers" => {
                    pin_workers = match v {
                        "1" => true,
                        "0" => false,
                        _ => return Err(usage(format!("-o pin_workers: expected 0 or 1, not '{v}'"))),
                    }
                }
                _ => {
                    return Err(usage(format!(
                        "-o: illegal suboption \"{opt}\" (known: idle_timeout=<secs>, pin_workers=<0|1>)"
                    )))
                }
            }
        }
        Ok(Settings {
            port: cli.port,
            udp_port: cli.udp_port,
            listen,
            threads,
            memory_limit,
            conn_limit: cli.conn_limit,
            max_item_size,
            enable_shutdown: cli.enable_shutdown,
            verbose: cli.verbose.min(2),
            idle_timeout,
            pin_workers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(args: &[&str]) -> String {
        match Settings::parse_from(std::iter::once("percore-kv").chain(args.iter().copied())) {
            Err(CliError::Usage(m)) => m,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::parse_from(["percore-kv"]).unwrap();
        assert_eq!(s.port, 11211);
        assert_eq!(s.listen, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.memory_limit, 64 << 20);
        assert_eq!(s.conn_limit, 1024);
        assert_eq!(s.max_item_size, 1 << 20);
        assert_eq!(s.udp_port, 0);
        assert!(!s.enable_shutdown);
        assert!(!s.pin_workers, "workers float unless -o pin_workers=1");
        assert!(s.threads >= 1);
    }

    #[test]
    fn pin_workers_is_an_extended_option() {
        let s = Settings::parse_from(["percore-kv", "-o", "pin_workers=1"]).unwrap();
        assert!(s.pin_workers);
        let s = Settings::parse_from(["percore-kv", "-o", "pin_workers=1,idle_timeout=5,pin_workers=0"]).unwrap();
        assert!(!s.pin_workers, "the last one counts");
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(5)));
        assert!(usage(&["-o", "pin_workers=yes"]).contains("pin_workers: expected 0 or 1"));
        assert!(usage(&["-o", "pin"]).contains("pin_workers=<0|1>"));
    }

    #[test]
    fn memcached_spelling() {
        let s = Settings::parse_from([
            "percore-kv",
            "-p11311",
            "-l",
            "::1",
            "-t",
            "3",
            "-c",
            "9",
            "-A",
            "-vv",
            "-I",
            "64k",
        ])
        .unwrap();
        assert_eq!((s.port, s.threads, s.conn_limit, s.verbose, s.max_item_size), (11311, 3, 9, 2, 64 << 10));
        assert!(s.enable_shutdown);
        assert_eq!(s.listen, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_lines_are_usage_errors() {
        assert!(usage(&["--bogus"]).contains("--bogus"));
        assert!(usage(&["-p", "70000"]).contains("70000"));
        assert!(usage(&["-l", "nowhere"]).contains("nowhere"));
        assert!(usage(&["-t", "0"]).contains("threads"));
        assert!(usage(&["-I", "12q"]).contains("12q"));
        assert_eq!(usage(&["-I", "512"]), "percore-kv: Item max size cannot be less than 1024 bytes.");
        assert!(usage(&["-m", "1", "-I", "1m"]).contains("1/2 of memory"));
        assert!(usage(&["-o", "nope=1"]).contains("nope"));
        assert!(usage(&["-o", "idle_timeout=x"]).contains("idle_timeout"));
    }

    #[test]
    fn help_and_version_are_information() {
        assert!(matches!(Settings::parse_from(["percore-kv", "--help"]), Err(CliError::Info(_))));
        assert!(matches!(Settings::parse_from(["percore-kv", "--version"]), Err(CliError::Info(_))));
    }
}
