//! `percore-kv`: the server binary (see the crate README).

use percore_kv::config::{CliError, Settings, EX_USAGE};

/// `EX_OSERR`: memcached's exit code when it cannot listen.
const EX_OSERR: i32 = 71;

fn main() {
    let settings = match Settings::parse_from(std::env::args_os()) {
        Ok(s) => s,
        Err(CliError::Info(text)) => {
            println!("{}", text.trim_end());
            return;
        }
        Err(e @ CliError::Usage(_)) => {
            eprintln!("{e}");
            std::process::exit(EX_USAGE);
        }
    };
    if let Err(e) = percore_kv::server::run(settings) {
        eprintln!("percore-kv: {e}");
        std::process::exit(match e {
            percore_kv::Error::Config(_) => EX_USAGE,
            _ => EX_OSERR,
        });
    }
}
