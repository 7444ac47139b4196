//! write-floor's `--serve` mode over real sockets: it answers outside
//! clients as an SSE endpoint would, writes every round's frame to each of
//! them, and reports the connections it wrote to.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_for(path: &Path, what: &str) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{what} never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads exactly `n` bytes (or fails after 10 s).
fn read_exact_within(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

#[test]
fn serve_answers_outside_clients_and_writes_each_round_to_every_one() {
    let dir = std::env::temp_dir().join(format!("write-floor-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (ready, go) = (dir.join("ready"), dir.join("go"));
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_write-floor"))
        .args(["--serve", &port.to_string(), "--frame-bytes", "13"])
        .args(["--rounds", "2", "--pause-ms", "50", "--json"])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--go-file")
        .arg(&go)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn write-floor");
    wait_for(&ready, "the ready file");

    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"GET /floor HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("request");
            assert_eq!(read_exact_within(&mut s, head.len()), head, "the head");
            s
        })
        .collect();
    std::fs::write(&go, b"").expect("go");

    // a warm-up round and two measured ones: three heartbeats each
    for s in &mut clients {
        let got = read_exact_within(s, 3 * 13);
        assert_eq!(got, b": keepalive\n\n".repeat(3), "the frames");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "exit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"sockets\": 3,"), "the report: {json}");
    assert!(json.contains("\"short_writes\": 0,"), "the report: {json}");
    // then it is gone, and so are its connections
    for s in &mut clients {
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)), "still open");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
