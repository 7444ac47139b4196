//! The daemon's memory and CPU over a set of processes, from the /proc
//! readers shared with the daemon ([`logcast::sys`]).

use logcast::sys::{cpu_ns, cpu_ticks, resident_kib, Proc};

pub use logcast::sys::{clk_tck, with_descendants};

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
        let p = Proc::Pid(p);
        if let (Some(r), Some(t)) = (resident_kib(p), cpu_ticks(p)) {
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

/// This process's own CPU time in clock ticks.
pub fn own_ticks() -> Option<u64> {
    cpu_ticks(Proc::Current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process() {
        let s = sample(&[std::process::id()]);
        assert_eq!(s.alive, 1);
        assert!(s.rss_kib > 0);
    }
}
