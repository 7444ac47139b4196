//! The few facts and knobs of the operating system that logcast and its load
//! kit (the `logcast-tools` crate) both need, in one place: the open-file
//! limit (raised at start, as nginx and Go do) and readers of a process's
//! memory, CPU time and descriptors from Linux `/proc`. The daemon reads its
//! own figures for `/metrics`; the load generator and `write-floor` read the
//! daemon's and their own.

use std::fs;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let target = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if setrlimit(Resource::Nofile, target).is_ok() {
        return limit.maximum.unwrap_or(u64::MAX);
    }
    limit.current.unwrap_or(u64::MAX)
}

/// The soft open-file limit as it is now.
pub fn nofile_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A process whose `/proc` files are read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    Current,
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::Current => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// Resident set size in KiB (`VmRSS`); None if the process is gone.
pub fn resident_kib(p: Proc) -> Option<u64> {
    parse_vmrss(&fs::read_to_string(p.path("status")).ok()?)
}

/// Resident set size of this process in bytes (0 if /proc cannot be read).
pub fn resident_bytes() -> u64 {
    resident_kib(Proc::Current).map_or(0, |kib| kib * 1024)
}

/// Number of open descriptors of this process. It lists `/proc/self/fd`,
/// which costs about a microsecond per descriptor: for figures wanted every
/// second, see [`FdCount`].
pub fn open_fds() -> u64 {
    fs::read_dir(Proc::Current.path("fd")).map_or(0, |d| d.count() as u64)
}

/// This process's open descriptors, for a figure published every second.
/// Listing `/proc/self/fd` then would cost 15 ms a second with 15,000
/// streams open, the better part of a core for 64 workers at a million
/// streams; so it is listed at most every [`FdCount::LIST_EVERY`], and
/// moved in between by the caller's own count of what it holds open.
#[derive(Debug, Default)]
pub struct FdCount {
    listed: u64,
    held_then: u64,
    listed_at: Option<std::time::Instant>,
}

impl FdCount {
    pub const LIST_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    /// Open descriptors now, given `held`: the connections and files the
    /// caller knows it holds (the listing's other descriptors stay).
    pub fn get(&mut self, held: u64) -> u64 {
        let due = match self.listed_at {
            Some(at) => at.elapsed() >= FdCount::LIST_EVERY,
            None => true,
        };
        if due {
            self.listed = open_fds();
            self.held_then = held;
            self.listed_at = Some(std::time::Instant::now());
        }
        (self.listed + held).saturating_sub(self.held_then)
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(p: Proc) -> Option<u64> {
    parse_stat_ticks(&fs::read_to_string(p.path("stat")).ok()?)
}

/// On-CPU nanoseconds of a process: the sum over its threads of
/// `/proc/PID/task/TID/schedstat` (exact, where utime+stime are sampled in
/// clock ticks). None when schedstat is not available.
pub fn cpu_ns(p: Proc) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for t in fs::read_dir(p.path("task")).ok()?.flatten() {
        let s = fs::read_to_string(t.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then_some(total)
}

/// On-CPU nanoseconds of the calling thread. The kernel brings a running
/// thread's count up to date only at scheduler ticks (4 ms at HZ=250) or when
/// it is switched out: `sched_yield()` first makes the reading exact.
pub fn thread_cpu_ns() -> Option<u64> {
    rustix::process::sched_yield();
    let s = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Clock ticks per second of `/proc/PID/stat` times: `getconf CLK_TCK`;
/// 100 (Linux's USER_HZ everywhere in practice) when getconf fails.
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `pid` and all its descendants (through `/proc/PID/task/TID/children`).
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                    for c in s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()) {
                        if !out.contains(&c) {
                            out.push(c);
                        }
                    }
                }
            }
        }
        i += 1;
    }
    out
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // comm may contain spaces and parentheses: fields start after the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process_facts() {
        assert!(resident_bytes() > 0);
        assert!(open_fds() >= 3);
        assert!(raise_nofile_limit() >= 1024);
        let me = Proc::Pid(std::process::id());
        assert!(resident_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_ticks(Proc::Current).is_some());
        assert!(with_descendants(std::process::id()).contains(&std::process::id()));
    }

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 1000 50 18446744073709551615";
        assert_eq!(parse_stat_ticks(s), Some(281));
    }

    #[test]
    fn parses_vmrss() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(parse_vmrss(s), Some(4321));
    }

    #[test]
    fn schedstat_advances_with_work() {
        let Some(a) = cpu_ns(Proc::Current) else {
            return; // no schedstat on this kernel
        };
        // Burn CPU until schedstat moves (it advances at scheduler ticks; on
        // a crowded machine 50 ms of wall time may hold no tick of ours).
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut advanced = false;
        while !advanced && t.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            advanced = cpu_ns(Proc::Current).is_some_and(|b| b > a);
        }
        assert!(advanced, "no CPU time counted in 10 s of spinning");
    }
}
