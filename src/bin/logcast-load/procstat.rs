//! Reading another process's memory and CPU time from /proc.

use std::fs;

/// Clock ticks per second of /proc/PID/stat times: `getconf CLK_TCK`, read
/// once; 100 (Linux's USER_HZ everywhere in practice) when getconf fails.
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

/// Resident set size in KiB (VmRSS), None if the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&s)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&s)
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

/// On-CPU nanoseconds of a process: the sum over its threads of
/// /proc/PID/task/TID/schedstat (exact, where utime+stime are sampled in
/// clock ticks). None when schedstat is not available.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(t.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then_some(total)
}

/// `pid` and all its descendants (through /proc/PID/task/TID/children).
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let path = t.path().join("children");
                if let Ok(s) = fs::read_to_string(path) {
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

/// A snapshot over a set of processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub ticks: u64,
    /// On-CPU ns from schedstat; None if any process lacked it.
    pub ns: Option<u64>,
    pub alive: usize,
}

impl Sample {
    /// CPU seconds from `self` to `later`: schedstat when both have it,
    /// else clock ticks.
    pub fn cpu_secs_until(&self, later: &Sample, clk: u64) -> f64 {
        match (self.ns, later.ns) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
            _ => later.ticks.saturating_sub(self.ticks) as f64 / clk as f64,
        }
    }

    pub fn ticks_secs_until(&self, later: &Sample, clk: u64) -> f64 {
        later.ticks.saturating_sub(self.ticks) as f64 / clk as f64
    }
}

pub fn sample(pids: &[u32]) -> Sample {
    let mut s = Sample {
        ns: Some(0),
        ..Sample::default()
    };
    for &p in pids {
        if let (Some(r), Some(t)) = (rss_kib(p), cpu_ticks(p)) {
            s.rss_kib += r;
            s.ticks += t;
            s.ns = match (s.ns, cpu_ns(p)) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            s.alive += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(cpu_ticks(me).is_some());
        if let Some(a) = cpu_ns(me) {
            // burn ~50 ms: schedstat advances at scheduler ticks
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed() < std::time::Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            assert!(cpu_ns(me).unwrap() > a);
        }
        assert!(with_descendants(me).contains(&me));
    }
}
