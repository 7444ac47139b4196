//! Command-line flags to a validated [`Config`], in two stages (as ripgrep
//! does): [`parse_args`] reads raw flags and checks each value, naming the flag
//! in every error; the result is a `Config` the rest of the daemon can trust.
//! No flag-parsing crate: the grammar is `--name VALUE` or `--name=VALUE`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

pub use crate::engine::WatchMode;

/// Everything the daemon needs to know from its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub log_dir: PathBuf,
    pub write_interval_ms: u64,
    pub poll_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub max_writers: usize,
    pub workers: Workers,
    pub watch: WatchMode,
}

/// How many reactor processes serve the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Count(usize),
    /// One per core.
    Auto,
}

impl Workers {
    pub fn resolve(self) -> usize {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 5000,
            log_dir: PathBuf::from("./logs"),
            write_interval_ms: 500,
            poll_interval_ms: 100,
            heartbeat_interval_ms: 15_000,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 100_000,
            max_writers: 1_000,
            workers: Workers::Count(1),
            watch: WatchMode::Auto,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
    Version,
}

/// A command-line error; its text names the flag. Exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
logcast - stream log files to browsers and tools over Server-Sent Events

USAGE:
    logcast [OPTIONS]

OPTIONS:
    --bind ADDR                  listen address [default: 127.0.0.1] (0.0.0.0 or :: to expose)
    --port N                     listen port [default: 5000]; 0 picks a free port
    --log-dir DIR                directory of log files, created if missing [default: ./logs]
    --write-interval-ms N        simulated writer period [default: 500]
    --poll-interval-ms N         file tail poll period [default: 100]
    --heartbeat-interval-ms N    `: keepalive` after this much silence on a stream [default: 15000]
    --header-timeout-ms N        a request head must be complete within this [default: 10000]
    --idle-timeout-ms N          idle keep-alive connections are closed after this [default: 60000]
    --max-connections N          beyond it new connections get 503 [default: 100000]
    --max-writers N              simulated writers at once; beyond it POST gets 503 [default: 1000]
    --workers N|auto             worker processes sharing the port (SO_REUSEPORT) [default: 1]
    --watch auto|poll            how tails learn of new bytes: auto = change notification
                                 (inotify) where the file system gives it, polling elsewhere;
                                 poll = the --poll-interval-ms stat poll only [default: auto]
    -h, --help                   print this help
    -V, --version                print the version

ENVIRONMENT:
    RUST_LOG                     log filter for stderr [default: info]
";

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = Config::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "-V" || arg == "--version" {
            return Ok(Command::Version);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if !is_known(&name) {
            return Err(ArgError(format!(
                "logcast: unknown option '{arg}' (see --help)"
            )));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(ArgError(format!("logcast: {name}: missing value"))),
        };
        apply(&mut config, &name, &value)?;
    }
    Ok(Command::Run(config))
}

const FLAGS: [&str; 12] = [
    "--bind",
    "--port",
    "--log-dir",
    "--write-interval-ms",
    "--poll-interval-ms",
    "--heartbeat-interval-ms",
    "--header-timeout-ms",
    "--idle-timeout-ms",
    "--max-connections",
    "--max-writers",
    "--workers",
    "--watch",
];

fn is_known(name: &str) -> bool {
    FLAGS.contains(&name)
}

fn apply(c: &mut Config, name: &str, value: &str) -> Result<(), ArgError> {
    match name {
        "--bind" => {
            c.bind = value
                .parse()
                .map_err(|_| invalid(name, value, "an IP address"))?
        }
        "--port" => {
            c.port = value
                .parse()
                .map_err(|_| invalid(name, value, "a number 0..=65535"))?
        }
        "--log-dir" if value.is_empty() => return Err(invalid(name, value, "a directory path")),
        "--log-dir" => c.log_dir = PathBuf::from(value),
        "--write-interval-ms" => c.write_interval_ms = millis(name, value)?,
        "--poll-interval-ms" => c.poll_interval_ms = millis(name, value)?,
        "--heartbeat-interval-ms" => c.heartbeat_interval_ms = millis(name, value)?,
        "--header-timeout-ms" => c.header_timeout_ms = millis(name, value)?,
        "--idle-timeout-ms" => c.idle_timeout_ms = millis(name, value)?,
        "--max-connections" => c.max_connections = count(name, value, 1_000_000_000)? as usize,
        "--max-writers" => c.max_writers = count(name, value, 1_000_000)? as usize,
        "--workers" if value == "auto" => c.workers = Workers::Auto,
        "--workers" => c.workers = Workers::Count(count(name, value, 256)? as usize),
        "--watch" => {
            c.watch = match value {
                "auto" => WatchMode::Auto,
                "poll" => WatchMode::Poll,
                _ => return Err(invalid(name, value, "auto or poll")),
            }
        }
        _ => {
            return Err(ArgError(format!(
                "logcast: unknown option '{name}' (see --help)"
            )))
        }
    }
    Ok(())
}

/// A period in milliseconds: 1 ms up to one day.
fn millis(name: &str, value: &str) -> Result<u64, ArgError> {
    match value.parse::<u64>() {
        Ok(n) if (1..=86_400_000).contains(&n) => Ok(n),
        _ => Err(invalid(name, value, "milliseconds 1..=86400000")),
    }
}

/// A positive count up to `max`.
fn count(name: &str, value: &str, max: u64) -> Result<u64, ArgError> {
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(name, value, &format!("a number 1..={max}"))),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> ArgError {
    ArgError(format!(
        "logcast: {name}: invalid value '{value}' (expected {expected})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ArgError> {
        match parse_args(args.iter().copied())? {
            Command::Run(c) => Ok(c),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = run(&[]).expect("defaults");
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 5000);
        assert_eq!(c.log_dir, PathBuf::from("./logs"));
    }

    #[test]
    fn both_value_forms_are_accepted() {
        let c = run(&[
            "--port",
            "0",
            "--poll-interval-ms=20",
            "--workers",
            "auto",
            "--watch=poll",
        ])
        .expect("ok");
        assert_eq!(c.watch, WatchMode::Poll);
        assert_eq!(c.port, 0);
        assert_eq!(c.poll_interval_ms, 20);
        assert_eq!(c.workers, Workers::Auto);
    }

    #[test]
    fn errors_name_the_flag() {
        for (args, flag) in [
            (&["--port", "abc"][..], "--port"),
            (&["--port", "70000"][..], "--port"),
            (&["--write-interval-ms", "0"][..], "--write-interval-ms"),
            (&["--workers", "0"][..], "--workers"),
            (&["--watch", "inotify"][..], "--watch"),
            (&["--bind", "localhost"][..], "--bind"),
            (&["--port"][..], "--port"),
            (&["--bogus"][..], "--bogus"),
        ] {
            let err = run(args).expect_err("must fail");
            assert!(err.0.contains(flag), "{err} should name {flag}");
            assert!(!err.0.contains('\n'));
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_args(["--help"]), Ok(Command::Help));
        assert_eq!(parse_args(["-V"]), Ok(Command::Version));
        for flag in FLAGS {
            assert!(USAGE.contains(flag), "usage lists {flag}");
        }
    }
}
