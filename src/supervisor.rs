//! `--workers N`: several single-threaded reactors as processes (never
//! threads), sharing the port through `SO_REUSEPORT`. Filled in by the
//! scale-out work; until then more than one worker is refused.

use crate::config::Config;

/// This process was started by a supervisor as one of its workers.
pub fn is_worker() -> bool {
    std::env::var_os("LOGCAST_WORKER").is_some()
}

pub fn run(_config: Config) -> Result<(), String> {
    Err("logcast: --workers above 1 is not available in this build".to_string())
}

pub fn run_worker(_config: Config) -> Result<(), String> {
    Err("logcast: worker mode is not available in this build".to_string())
}
