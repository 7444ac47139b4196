//! Criterion benches of the engine's hot paths, without the network where
//! possible: parsing a request head, framing a block of log lines as SSE
//! events, and fanning one block out to thousands of real (loopback TCP)
//! streams through the engine exactly as a change does.
//!
//! The fan-out bench holds both ends of every connection in this one
//! process, so the 20,000 open-file cap of these machines limits it to
//! 9,000 streams (18,000 sockets); per-stream cost is what it reports.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use logcast::conn::Conn;
use logcast::engine::{Engine, EngineConfig, Opened, WatchMode};
use logcast::http::parse_head;
use logcast::logs::LogDir;
use logcast::metrics::Metrics;
use logcast::routes::StreamRequest;
use logcast::sse::Block;
use slab::Slab;

const WRK_REQUEST: &[u8] =
    b"GET /api/logs/0b1e2f3a-1234-4bcd-9def-0123456789ab HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n";
const BROWSER_REQUEST: &[u8] = b"GET /api/logs/0b1e2f3a-1234-4bcd-9def-0123456789ab/stream HTTP/1.1\r\n\
Host: 127.0.0.1:5000\r\nConnection: keep-alive\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\
Last-Event-ID: 123456\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n\
Referer: http://127.0.0.1:5000/\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n";

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    for (name, req) in [("wrk", WRK_REQUEST), ("browser", BROWSER_REQUEST)] {
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_head(std::hint::black_box(req))));
    }
    g.finish();
}

/// 100 lines of typical log text (~80 bytes each).
fn log_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(
            format!("[2026-11-27T18:02:06.123Z] worker {i} served request in 12 ms, cache hit\n")
                .as_bytes(),
        );
    }
    out
}

fn bench_framing(c: &mut Criterion) {
    let chunk = log_lines(100);
    let mut g = c.benchmark_group("sse_frame");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    let mut block = Block::default();
    g.bench_function("100_lines", |b| {
        b.iter(|| {
            block.clear(0);
            block.frame(std::hint::black_box(&chunk), false)
        })
    });
    g.finish();
}

/// Server and client ends of `n` loopback connections, server ends as conns.
fn connections(n: usize) -> (Slab<Conn>, Vec<std::net::TcpStream>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut conns = Slab::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let client = std::net::TcpStream::connect(addr).expect("connect");
        client.set_nonblocking(true).expect("nonblocking");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        server.set_nodelay(true).expect("nodelay");
        conns.insert(Conn::new(
            mio::net::TcpStream::from_std(server),
            1,
            u64::MAX,
        ));
        clients.push(client);
    }
    (conns, clients)
}

/// Reads what every client has received; the fewest bytes one got.
fn drain(clients: &mut [std::net::TcpStream]) -> usize {
    let mut buf = [0u8; 65536];
    let mut fewest = usize::MAX;
    for c in clients {
        let mut got = 0;
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        fewest = fewest.min(got);
    }
    fewest
}

fn bench_fanout(c: &mut Criterion) {
    let dir_path = std::env::temp_dir().join(format!("logcast-bench-{}", std::process::id()));
    let dir = LogDir::open(&dir_path).expect("log dir");
    let path = dir.file_of("bench");
    std::fs::write(&path, b"").expect("create log");
    let mut g = c.benchmark_group("fanout");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    for streams in [1_000usize, 9_000] {
        let (mut conns, mut clients) = connections(streams);
        // Poll mode: the bench drives the look itself (as a simulated
        // writer's append does), with no notifications in between.
        let config = EngineConfig {
            watch: WatchMode::Poll,
            poll_interval_ms: u64::MAX / 4,
            heartbeat_interval_ms: u64::MAX / 4,
            heartbeat_burst: 16_384,
            stall_timeout_ms: u64::MAX / 4,
        };
        let mut engine = Engine::new(config, dir.clone());
        let mut metrics = Metrics::default();
        let req = StreamRequest {
            id: "bench".into(),
            resume: None,
            tail: Some(0),
            filter: Default::default(),
        };
        let Ok(Opened::Stream {
            tail,
            start,
            filter,
        }) = engine.open(&req, 0, &mut conns, &mut metrics)
        else {
            panic!("open")
        };
        let keys: Vec<usize> = conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            engine.attach(&mut conns[key], key, (tail, start, filter.clone()), 0);
        }
        engine.run(0, &mut conns, &mut metrics);
        engine.end_turn(&mut metrics, 0);
        drain(&mut clients); // the heads and anything else before the lines
        let mut file = OpenOptions::new().append(true).open(&path).expect("append");
        let line = b"[2026-11-27T18:02:06.123Z] worker 7 served request in 12 ms, cache hit\n";
        g.throughput(Throughput::Elements(streams as u64));
        g.bench_with_input(
            BenchmarkId::new("one_line_to_streams", streams),
            &streams,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        file.write_all(line).expect("write");
                        let start = Instant::now();
                        engine.file_written("bench", 0, &mut conns, &mut metrics);
                        // A fan-out wider than a turn's writes goes on in
                        // the turns that follow.
                        while engine.has_work() {
                            engine.end_turn(&mut metrics, 0);
                            engine.run(0, &mut conns, &mut metrics);
                        }
                        engine.end_turn(&mut metrics, 0);
                        total += start.elapsed();
                        assert!(engine.pop_closed().is_none());
                        // Every stream got the line (in its frame).
                        assert!(drain(&mut clients) > line.len());
                    }
                    total
                })
            },
        );
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir_path);
}

criterion_group!(benches, bench_parse, bench_framing, bench_fanout);
criterion_main!(benches);
