//! `logcast`: options -> config -> server -> exit code. Everything else is
//! in the library (see its crate documentation for a tour).
//!
//! Exit codes: 0 after a graceful stop, 1 when the daemon cannot start (port
//! in use, log dir unusable), 2 for a bad command line.

use std::process::ExitCode;

use logcast::config::{self, Command, Config};

fn main() -> ExitCode {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format_target(false)
        .init();
    let command = match config::parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("logcast {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => *config,
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    if logcast::supervisor::is_worker() {
        return logcast::supervisor::run_worker(config);
    }
    let dir = logcast::logs::LogDir::open(&config.log_dir)?;
    if !dir.is_writable() {
        log::warn!(
            "log dir {}: not writable; serving it read-only (POST and DELETE answer 403)",
            config.log_dir.display()
        );
    }
    let limit = logcast::sys::raise_nofile_limit();
    // The limit is per process: with workers, each holds its share.
    let workers = config.workers.resolve();
    let per_process = config.max_connections.div_ceil(workers);
    if limit < per_process as u64 + 64 {
        log::warn!(
            "open-file limit is {limit}, below the {per_process} connections each of {workers} process(es) may hold under --max-connections {}: connections beyond the limit will be refused",
            config.max_connections
        );
    }
    if workers > 1 {
        return logcast::supervisor::run(config);
    }
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = logcast::listener::bind(addr, false)
        .map_err(|e| logcast::listener::bind_error_message(addr, &e))?;
    let mut server =
        logcast::server::Server::new(config, dir, listener).map_err(|e| format!("logcast: {e}"))?;
    let local = server.local_addr().map_err(|e| format!("logcast: {e}"))?;
    logcast::announce(local);
    server
        .run()
        .map_err(|e| format!("logcast: reactor failed: {e}"))
}
