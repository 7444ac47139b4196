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
    /// `--heartbeat-burst`: heartbeats one log's group gets in one burst at most.
    pub heartbeat_burst: usize,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub max_writers: usize,
    pub workers: Workers,
    pub watch: WatchMode,
    pub stall_timeout_ms: u64,
    pub retain: Retention,
    pub read_only: bool,
    /// `--token-file`: the bearer token POST and DELETE need.
    pub token: Option<Secret>,
    /// `--cors-origin`: origins answered with CORS headers (`*` = any).
    pub cors_origins: Vec<String>,
}

/// How many finished logs that logcast created are kept (`--retain-*`);
/// 0 means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub files: u64,
    pub bytes: u64,
    pub age_ms: u64,
}

impl Retention {
    pub fn is_unlimited(&self) -> bool {
        self.files == 0 && self.bytes == 0 && self.age_ms == 0
    }
}

/// A value that must never be logged: its `Debug` says only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
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
            heartbeat_burst: 16_384,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 100_000,
            max_writers: 1_000,
            workers: Workers::Count(1),
            watch: WatchMode::Auto,
            stall_timeout_ms: 300_000,
            retain: Retention {
                files: 10_000,
                bytes: 0,
                age_ms: 0,
            },
            read_only: false,
            token: None,
            cors_origins: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Boxed: a `Config` is far larger than the other answers.
    Run(Box<Config>),
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
    --heartbeat-burst N          heartbeats one log's silent streams get in one burst at
                                 most; a larger group gets them in even slices over the
                                 interval [default: 16384]
    --header-timeout-ms N        a request head must be complete within this [default: 10000]
    --idle-timeout-ms N          idle keep-alive connections are closed after this [default: 60000]
    --max-connections N          beyond it new connections get 503 [default: 100000]
    --max-writers N              simulated writers at once; beyond it POST gets 503 [default: 1000]
    --workers N|auto             worker processes sharing the port (SO_REUSEPORT) [default: 1]
    --watch auto|poll            how tails learn of new bytes: auto = change notification
                                 (inotify) where the file system gives it, polling elsewhere;
                                 poll = the --poll-interval-ms stat poll only [default: auto]
    --stall-timeout-ms N         a stream whose socket takes no byte this long is closed
                                 [default: 300000]
    --retain-files N             keep at most N finished logs logcast created; oldest go
                                 first (0 = no limit) [default: 10000]
    --retain-bytes SIZE          keep those logs under SIZE bytes in all: 512M, 2G
                                 (0 = no limit) [default: 0]
    --retain-age DURATION        delete those logs once this old: 90s, 30m, 12h, 7d
                                 (0 = never) [default: 0]
    --read-only                  nothing is created or deleted (POST, DELETE get 403)
    --token-file PATH            POST and DELETE need `Authorization: Bearer <first line>`
    --cors-origin ORIGIN         answer CORS for this origin on /api/ (repeatable; * = any)
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
        if SWITCHES.contains(&name.as_str()) && inline.is_none() {
            apply_switch(&mut config, &name);
            continue;
        }
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
    Ok(Command::Run(Box::new(config)))
}

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["--read-only"];

fn apply_switch(c: &mut Config, name: &str) {
    if name == "--read-only" {
        c.read_only = true;
    }
}

const FLAGS: [&str; 19] = [
    "--bind",
    "--port",
    "--log-dir",
    "--write-interval-ms",
    "--poll-interval-ms",
    "--heartbeat-interval-ms",
    "--heartbeat-burst",
    "--header-timeout-ms",
    "--idle-timeout-ms",
    "--max-connections",
    "--max-writers",
    "--workers",
    "--watch",
    "--stall-timeout-ms",
    "--retain-files",
    "--retain-bytes",
    "--retain-age",
    "--token-file",
    "--cors-origin",
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
        "--heartbeat-burst" => c.heartbeat_burst = count(name, value, 1_000_000_000)? as usize,
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
        "--stall-timeout-ms" => c.stall_timeout_ms = millis(name, value)?,
        "--retain-files" => {
            c.retain.files = limit(name, value, "a number (0 = no limit)", plain_number)?
        }
        "--retain-bytes" => {
            c.retain.bytes = limit(name, value, "a size: 512, 64K, 512M, 2G", parse_size)?
        }
        "--retain-age" => {
            c.retain.age_ms = limit(
                name,
                value,
                "a duration: 90s, 30m, 12h, 7d",
                parse_duration_ms,
            )?
        }
        "--token-file" => c.token = Some(read_token(name, value)?),
        "--cors-origin" => c.cors_origins.push(origin(name, value)?),
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

/// A limit (`0` is none) that `parse` reads.
fn limit(
    name: &str,
    value: &str,
    expected: &str,
    parse: fn(&str) -> Option<u64>,
) -> Result<u64, ArgError> {
    parse(value).ok_or_else(|| invalid(name, value, expected))
}

fn split_unit(value: &str) -> Option<(u64, &str)> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let n = value[..digits].parse().ok()?;
    Some((n, &value[digits..]))
}

fn plain_number(value: &str) -> Option<u64> {
    value.parse().ok()
}

/// `512`, `64K`, `512M`, `2G`, `1T` (binary units) to bytes.
pub fn parse_size(value: &str) -> Option<u64> {
    let (n, unit) = split_unit(value)?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `90s`, `30m`, `12h`, `7d` (a bare number is seconds) to milliseconds.
pub fn parse_duration_ms(value: &str) -> Option<u64> {
    let (n, unit) = split_unit(value)?;
    let scale: u64 = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The token is the file's first line; an unreadable or empty file is an
/// error naming the flag (never the token).
fn read_token(name: &str, path: &str) -> Result<Secret, ArgError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ArgError(format!("logcast: {name}: cannot read '{path}': {e}")))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ArgError(format!(
            "logcast: {name}: '{path}' has no token on its first line"
        )));
    }
    Ok(Secret(token.to_string()))
}

/// `*` or a serialized origin: `scheme://host[:port]`, no path.
fn origin(name: &str, value: &str) -> Result<String, ArgError> {
    let valid = value == "*"
        || value.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', ' '])
        });
    if valid {
        Ok(value.to_string())
    } else {
        Err(invalid(
            name,
            value,
            "an origin like https://dash.example:8443, or *",
        ))
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
            Command::Run(c) => Ok(*c),
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
            (&["--retain-bytes", "12Q"][..], "--retain-bytes"),
            (&["--retain-age", "5x"][..], "--retain-age"),
            (&["--retain-files", "-1"][..], "--retain-files"),
            (&["--stall-timeout-ms", "0"][..], "--stall-timeout-ms"),
            (&["--heartbeat-burst", "0"][..], "--heartbeat-burst"),
            (&["--cors-origin", "dash.example"][..], "--cors-origin"),
            (&["--token-file", "/nonexistent/token"][..], "--token-file"),
        ] {
            let err = run(args).expect_err("must fail");
            assert!(err.0.contains(flag), "{err} should name {flag}");
            assert!(!err.0.contains('\n'));
        }
    }

    #[test]
    fn limits_switches_and_repeats() {
        let c = run(&[
            "--retain-bytes",
            "2G",
            "--retain-age=12h",
            "--retain-files",
            "0",
            "--read-only",
            "--cors-origin",
            "https://a.example",
            "--cors-origin=*",
        ])
        .expect("ok");
        assert_eq!(c.retain.bytes, 2 << 30);
        assert_eq!(c.retain.age_ms, 12 * 3_600_000);
        assert_eq!(c.retain.files, 0);
        assert!(c.read_only);
        assert_eq!(c.cors_origins, ["https://a.example", "*"]);
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64K"), Some(65_536));
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms("7w"), None);
    }

    #[test]
    fn a_token_is_never_shown() {
        let path = std::env::temp_dir().join(format!("logcast-token-{}", std::process::id()));
        std::fs::write(&path, "s3cret-token\nignored\n").expect("write");
        let c = run(&["--token-file", path.to_str().expect("utf-8")]).expect("ok");
        let _ = std::fs::remove_file(&path);
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("s3cret-token"));
        assert!(!format!("{c:?}").contains("s3cret"));
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
