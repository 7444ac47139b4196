//! Counters and gauges, and their Prometheus text exposition (format 0.0.4:
//! `# HELP`, `# TYPE`, counters ending in `_total`). Plain integers updated
//! in place by the reactor: one thread, so no atomics; rendering is a few
//! hundred bytes, cheap enough to scrape every second under full load.

use std::fmt::Write as _;

use crate::http::Method;

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub connections_open: u64,
    pub streams_open: u64,
    pub writers_active: u64,
    pub logs_tailed: u64,
    /// Indexed by [`method_index`] then status class 1..=5 (index 0..=4).
    pub requests: [[u64; 5]; 6],
    pub events_sent: u64,
    pub bytes_sent: u64,
    pub connections_refused: u64,
    pub accept_errors: u64,
    pub header_timeouts: u64,
    pub idle_timeouts: u64,
    pub stall_timeouts: u64,
    pub logs_retired: u64,
    pub tail_polls: u64,
    pub tail_reads: u64,
    pub catchup_reads: u64,
    pub connections_accepted: u64,
    /// Most bytes of file that stream work read in one reactor turn, in
    /// this process (a bound, not a sum: not shared between workers).
    pub turn_read_max: u64,
    /// The longest reactor turn (µs), in this process: from `poll`
    /// returning to the next `poll`, everything one turn did.
    pub turn_us_max: u64,
    /// Most socket writes of fan-outs and heartbeats in one reactor turn,
    /// in this process: at most the engine's `TURN_WRITES`, log streams
    /// and `/api/events` subscribers together.
    pub turn_writes_max: u64,
    /// Those writes in the turn under way (the server folds them into
    /// `turn_writes_max` when the turn ends).
    pub turn_writes: u64,
    /// Times this worker closed its listener because it was full.
    pub listen_stops: u64,
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "DELETE", "OPTIONS", "other"];

/// Row of [`Metrics::requests`] for a method.
pub fn method_index(method: &Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Head => 1,
        Method::Post => 2,
        Method::Delete => 3,
        Method::Options => 4,
        Method::Other(_) => 5,
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn count_request(&mut self, method: Option<&Method>, status: u16) {
        let row = method.map_or(5, method_index);
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.requests[row][class] += 1;
    }

    /// Every counter and gauge as numbers in a fixed order: what a worker
    /// publishes so that any worker can describe the whole daemon.
    pub fn to_values(&self) -> Vec<u64> {
        let mut v = vec![
            self.connections_open,
            self.streams_open,
            self.writers_active,
            self.logs_tailed,
            self.events_sent,
            self.bytes_sent,
            self.connections_refused,
            self.accept_errors,
            self.header_timeouts,
            self.idle_timeouts,
            self.stall_timeouts,
            self.logs_retired,
            self.tail_polls,
            self.tail_reads,
            self.catchup_reads,
            self.connections_accepted,
            self.listen_stops,
        ];
        v.extend(self.requests.iter().flatten());
        v
    }

    /// Adds another worker's [`Metrics::to_values`] to these.
    pub fn add_values(&mut self, values: &[u64]) {
        let mut other = values.iter().copied();
        let mut next = || other.next().unwrap_or(0);
        for field in [
            &mut self.connections_open,
            &mut self.streams_open,
            &mut self.writers_active,
            &mut self.logs_tailed,
            &mut self.events_sent,
            &mut self.bytes_sent,
            &mut self.connections_refused,
            &mut self.accept_errors,
            &mut self.header_timeouts,
            &mut self.idle_timeouts,
            &mut self.stall_timeouts,
            &mut self.logs_retired,
            &mut self.tail_polls,
            &mut self.tail_reads,
            &mut self.catchup_reads,
            &mut self.connections_accepted,
            &mut self.listen_stops,
        ] {
            *field += next();
        }
        for cell in self.requests.iter_mut().flatten() {
            *cell += next();
        }
    }

    /// The exposition text; `rss` and `fds` come from the process.
    pub fn render(&self, rss_bytes: u64, open_fds: u64) -> String {
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "logcast_connections_open",
            "Open client connections.",
            self.connections_open,
        );
        gauge(
            &mut out,
            "logcast_streams_open",
            "Open event streams.",
            self.streams_open,
        );
        gauge(
            &mut out,
            "logcast_writers_active",
            "Simulated writers running.",
            self.writers_active,
        );
        gauge(
            &mut out,
            "logcast_logs_tailed",
            "Logs being polled for their streams.",
            self.logs_tailed,
        );
        self.render_requests(&mut out);
        counter(
            &mut out,
            "logcast_connections_accepted_total",
            "Connections accepted.",
            self.connections_accepted,
        );
        counter(
            &mut out,
            "logcast_events_sent_total",
            "SSE events written to streams.",
            self.events_sent,
        );
        counter(
            &mut out,
            "logcast_bytes_sent_total",
            "Bytes written to clients.",
            self.bytes_sent,
        );
        counter(
            &mut out,
            "logcast_connections_refused_total",
            "Connections refused over --max-connections.",
            self.connections_refused,
        );
        counter(
            &mut out,
            "logcast_accept_errors_total",
            "Failed accept() calls.",
            self.accept_errors,
        );
        counter(
            &mut out,
            "logcast_listen_stops_total",
            "Times a full worker closed its listener so that others take new connections.",
            self.listen_stops,
        );
        out.push_str("# HELP logcast_timeouts_total Connections closed by a timeout.\n");
        out.push_str("# TYPE logcast_timeouts_total counter\n");
        let _ = writeln!(
            out,
            "logcast_timeouts_total{{kind=\"header\"}} {}",
            self.header_timeouts
        );
        let _ = writeln!(
            out,
            "logcast_timeouts_total{{kind=\"idle\"}} {}",
            self.idle_timeouts
        );
        let _ = writeln!(
            out,
            "logcast_timeouts_total{{kind=\"stall\"}} {}",
            self.stall_timeouts
        );
        counter(
            &mut out,
            "logcast_logs_retired_total",
            "Finished logs removed by retention.",
            self.logs_retired,
        );
        counter(
            &mut out,
            "logcast_tail_polls_total",
            "Polls of followed logs (one per log per tick).",
            self.tail_polls,
        );
        counter(
            &mut out,
            "logcast_tail_reads_total",
            "File reads by shared tails.",
            self.tail_reads,
        );
        counter(
            &mut out,
            "logcast_catchup_reads_total",
            "File reads by streams behind their tail.",
            self.catchup_reads,
        );
        gauge(
            &mut out,
            "logcast_turn_max_microseconds",
            "The longest reactor turn of this process, in microseconds (every other connection waited that long).",
            self.turn_us_max,
        );
        gauge(
            &mut out,
            "logcast_turn_writes_max",
            "Most socket writes of fan-outs, directory changes and heartbeats in one reactor turn of this process, log streams and /api/events subscribers together (more goes on over the next turns).",
            self.turn_writes_max,
        );
        gauge(
            &mut out,
            "logcast_turn_read_bytes_max",
            "Most bytes of file read by stream work (catch-up, start scans, line counts) in one reactor turn of this process.",
            self.turn_read_max,
        );
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss_bytes,
        );
        gauge(
            &mut out,
            "process_open_fds",
            "Open file descriptors.",
            open_fds,
        );
        out
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP logcast_requests_total Requests answered, by method and status class.\n",
        );
        out.push_str("# TYPE logcast_requests_total counter\n");
        for (m, row) in METHODS.iter().zip(self.requests.iter()) {
            for (class, n) in row.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "logcast_requests_total{{method=\"{m}\",class=\"{}xx\"}} {n}",
                    class + 1
                );
            }
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "gauge", value);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "counter", value);
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_add() {
        let mut a = Metrics {
            streams_open: 3,
            bytes_sent: 10,
            ..Metrics::default()
        };
        a.count_request(Some(&Method::Post), 201);
        let b = a.clone();
        a.add_values(&b.to_values());
        assert_eq!(a.streams_open, 6);
        assert_eq!(a.bytes_sent, 20);
        assert_eq!(a.requests[2][1], 2);
        assert_eq!(a.to_values().len(), b.to_values().len());
    }

    #[test]
    fn exposition_format() {
        let mut m = Metrics::default();
        m.count_request(Some(&Method::Get), 200);
        m.count_request(None, 400);
        let text = m.render(1024, 7);
        assert!(text.contains("logcast_requests_total{method=\"GET\",class=\"2xx\"} 1\n"));
        assert!(text.contains("logcast_requests_total{method=\"other\",class=\"4xx\"} 1\n"));
        assert!(text.contains("# TYPE logcast_events_sent_total counter\n"));
        assert!(text.contains("process_open_fds 7\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(!name.is_empty() && value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
