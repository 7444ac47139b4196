//! write-floor: the kernel's cost of SSE fan-out on this machine.
//!
//! Opens N established loopback TCP connections, then writes one ~100-byte
//! SSE-like frame to each, R rounds, and measures the CPU time this process
//! spends in the write loop only: the floor that a daemon's server CPU per
//! delivered event is compared to.
//!
//! The measured process holds the accepted (server) side of every connection
//! and writes to it, as a daemon does. The client sides live in a helper
//! process (this program re-executed with `--connect-side`), because one
//! process may hold only 20,000 descriptors here; that helper never reads
//! (each frame lands in its socket's receive buffer, which holds hundreds of
//! frames), unless `--drain` is given, when it reads with epoll as a real
//! client would (which adds the cost of waking it to the writer's side).
//!
//! CPU time is the thread's on-CPU time from /proc/thread-self/schedstat
//! (nanoseconds, read right after a sched_yield so that it is current; this
//! includes the loopback receive path, which runs in the writer's context),
//! cross-checked with utime+stime from /proc/self/stat (clock ticks). Output: per round µs of CPU and wall time per write, and
//! the median over rounds.
//!
//! Several write-floors can be set up one by one and measured together
//! (`--ready-file`, `--go-file`), each bursting at its own `--phase-ms`.
//!
//! With `--serve PORT` there is no helper: write-floor is itself an SSE
//! endpoint on `--listen`:PORT, bound with `SO_REUSEPORT` as logcast's
//! workers are, answering every connection with a 200 `text/event-stream`
//! head and then only the rounds' frames. Clients come from outside
//! (`logcast-load`), so W write-floors on one port get the very connections
//! W workers would: the same load processes, source addresses and kernel
//! tables, the same readers woken by each write. That is the floor a
//! daemon's heartbeat is compared to at a million (`scripts/c1m.sh
//! --scale-floor`): everything but the daemon's own work.
//!
//! With `--spread`, the writes of a round are not a burst but spread evenly
//! over `--pause-ms` (write one socket, sleep until the next one is due), and
//! the CPU of the whole round, sleeps and wake-ups included, is divided by
//! its writes: the floor for lines that come one at a time (1,000 logs with a
//! line each every 2 s), where a daemon wakes up for each one.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logcast::sys::{clk_tck, raise_nofile_limit as raise_nofile, thread_cpu_ns};

const USAGE: &str = "\
usage: write-floor [--sockets N | --serve PORT] [--rounds R] [--frame-bytes B] [--pause-ms MS] [--phase-ms MS] [--linger-ms MS] [--spread] [--drain] [--client-cpu N] [--client-batch] [--listen IP] [--nodelay] [--json]
  --sockets N       established loopback connections (default 10000)
  --rounds R        rounds of one write per socket (default 20)
  --frame-bytes B   bytes per write, an SSE frame (default 100; under 49, a comment
                    such as a heartbeat, 13)
  --pause-ms MS     pause between rounds, not measured (default 500: events at 2/s;
                    a longer pause leaves colder caches and costs more per write)
  --phase-ms MS     one more pause before the first round (several write-floors
                    started together then write their bursts at different times)
  --spread          spread each round's writes evenly over --pause-ms instead (one
                    write, then sleep until the next is due); CPU of the whole round,
                    wake-ups included, per write: the floor for isolated lines
  --drain           the client side reads (epoll) instead of never reading
  --nodelay         set TCP_NODELAY on the writing sockets (as logcast does)
  --client-cpu N    run the client side under `taskset -c N` (e.g. the CPU a load
                    generator uses, so that its wake-ups cost what they cost there)
  --client-batch    run the client side under `chrt --batch 0`, as scripts/c1m.sh runs
                    its load generator
  --listen IP       the loopback address to listen on (default 127.0.0.1)
  --serve PORT      no client side of its own: listen on --listen:PORT with SO_REUSEPORT
                    (several write-floors share it, as logcast's workers do), answer each
                    connection with a 200 text/event-stream head, and accept until
                    --go-file exists; the rounds then write to every connection accepted
                    (--sockets is ignored). The clients are another program's, e.g.
                    logcast-load --url http://IP:PORT/
  --linger-ms MS    after the last round (and its results printed), hold the connections
                    MS more before exiting: write-floors that started at different
                    --phase-ms then close theirs together, after every one has measured
  --source IP       the client side connects from this loopback address, on ports it
                    picks itself (the kernel's port search slows down badly when
                    hundreds of thousands of connections share one source address)
  --ready-file P    create P once every connection is set up
  --go-file P       then wait until P exists before the first round (several
                    write-floors set up one by one, then measured together)
  --json            one JSON line on stdout";

struct Opts {
    sockets: usize,
    rounds: usize,
    frame_bytes: usize,
    pause_ms: u64,
    spread: bool,
    /// Set TCP_NODELAY on the writing sockets, as logcast does on its streams.
    nodelay: bool,
    drain: bool,
    client_cpu: Option<String>,
    client_batch: bool,
    listen: std::net::IpAddr,
    /// `--serve PORT`: accept outside clients on this reuse-port port.
    serve: Option<u16>,
    linger_ms: u64,
    source: Option<Ipv4Addr>,
    phase_ms: u64,
    ready_file: Option<std::path::PathBuf>,
    go_file: Option<std::path::PathBuf>,
    json: bool,
}

fn die(msg: &str) -> ! {
    eprintln!("write-floor: {msg}");
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(opt: &str, v: Option<&String>) -> T {
    let v = v.unwrap_or_else(|| die(&format!("{opt}: missing value")));
    v.parse()
        .unwrap_or_else(|_| die(&format!("{opt}: invalid value '{v}'")))
}

/// utime + stime of this process, in clock ticks.
fn process_ticks() -> Option<u64> {
    logcast::sys::cpu_ticks(logcast::sys::Proc::Current)
}

/// A connection to `addr` from `src`, on the next free port from `port`
/// on (ports from 10,000 up, chosen here rather than by the kernel).
fn connect_from(src: Ipv4Addr, port: &mut u16, addr: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let SocketAddr::V4(dst) = addr else {
        return Err(io::Error::other("--source needs an IPv4 listener"));
    };
    for _ in 0..u16::MAX {
        let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        let p = *port;
        *port = port.checked_add(1).unwrap_or(10_000);
        match rustix::net::bind_v4(&fd, &SocketAddrV4::new(src, p)) {
            Ok(()) => {}
            Err(rustix::io::Errno::ADDRINUSE) => continue,
            Err(e) => return Err(e.into()),
        }
        rustix::net::connect_v4(&fd, &dst)?;
        return Ok(TcpStream::from(fd));
    }
    Err(io::Error::other(format!("no free port on {src}")))
}

/// The helper: connect N sockets to ADDR (from SRC, if given), say "OK",
/// hold them (optionally draining) until stdin closes.
fn connect_side(addr: SocketAddr, n: usize, drain: bool, src: Option<Ipv4Addr>) {
    raise_nofile();
    let mut socks = Vec::with_capacity(n);
    let mut port = 10_000;
    for _ in 0..n {
        let sock = match src {
            Some(src) => connect_from(src, &mut port, addr),
            None => TcpStream::connect(addr),
        };
        match sock {
            Ok(s) => socks.push(s),
            Err(e) => die(&format!("connect: {e}")),
        }
    }
    println!("OK");
    let _ = io::stdout().flush();
    if !drain {
        let mut line = String::new();
        let _ = BufReader::new(io::stdin()).read_line(&mut line);
        return;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut poll = mio::Poll::new().unwrap_or_else(|e| die(&format!("poll: {e}")));
    let waker = std::sync::Arc::new(
        mio::Waker::new(poll.registry(), mio::Token(usize::MAX))
            .unwrap_or_else(|e| die(&format!("waker: {e}"))),
    );
    {
        // the waker must outlive the wake-up: closing its fd would drop the
        // pending event from the epoll set
        let stop = stop.clone();
        let waker = waker.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(io::stdin()).read_line(&mut line);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = waker.wake();
        });
    }
    let mut msocks: Vec<mio::net::TcpStream> = socks
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true).expect("nonblocking");
            mio::net::TcpStream::from_std(s)
        })
        .collect();
    for (i, s) in msocks.iter_mut().enumerate() {
        poll.registry()
            .register(s, mio::Token(i), mio::Interest::READABLE)
            .unwrap_or_else(|e| die(&format!("register: {e}")));
    }
    let mut events = mio::Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(200)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            if let Some(s) = msocks.get_mut(ev.token().0) {
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 || k < buf.len() {
                        break;
                    }
                }
            }
        }
    }
}

/// The client side in a helper process (this program again), connected to
/// a listener of our own: the accepted (server) sides, and the helper.
fn own_clients(o: &Opts) -> (Vec<TcpStream>, Child) {
    let listener = TcpListener::bind((o.listen, 0)).unwrap_or_else(|e| die(&format!("bind: {e}")));
    let addr = listener.local_addr().expect("local_addr");
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let mut cmd = helper_command(o, &exe);
    let mut helper = cmd
        .args(["--connect-side", &addr.to_string(), &o.sockets.to_string()])
        .args(if o.drain {
            vec!["drain".to_string()]
        } else {
            vec![]
        })
        .args(o.source.map(|ip| format!("from={ip}")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| die(&format!("spawn helper: {e}")));
    let mut accepted = Vec::with_capacity(o.sockets);
    while accepted.len() < o.sockets {
        match listener.accept() {
            Ok((s, _)) => {
                if o.nodelay {
                    let _ = s.set_nodelay(true);
                }
                accepted.push(s)
            }
            Err(e) => {
                let _ = helper.kill();
                die(&format!("accept: {e}"));
            }
        }
    }
    let mut ok = String::new();
    let _ = BufReader::new(helper.stdout.take().expect("stdout")).read_line(&mut ok);
    if ok.trim() != "OK" {
        let _ = helper.kill();
        die("helper failed");
    }
    drop(listener);
    for s in &accepted {
        s.set_nonblocking(true).expect("nonblocking");
    }
    (accepted, helper)
}

/// The 200 head each `--serve` connection gets, as logcast answers a stream.
const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

/// `--serve`: accepts outside clients on a reuse-port listener, answers
/// each with [`SSE_HEAD`], until `--go-file` exists (`--ready-file` is made
/// once listening). Returns the connections, nonblocking.
fn serve_clients(o: &Opts, port: u16) -> Vec<TcpStream> {
    let addr = SocketAddr::new(o.listen, port);
    let listener =
        logcast::listener::bind(addr, true).unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
    let mut accepted = Vec::new();
    let mut go = false;
    say_ready(o);
    while !go {
        go = o.go_file.as_ref().is_none_or(|p| p.exists());
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    if let Some(s) = answer(s, o.nodelay) {
                        accepted.push(s);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => die(&format!("accept: {e}")),
            }
        }
        if !go {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    accepted
}

/// Reads what of the request has come (nothing is answered from it) and
/// writes the 200 head; `None` if the client is already gone.
fn answer(mut s: TcpStream, nodelay: bool) -> Option<TcpStream> {
    if nodelay {
        let _ = s.set_nodelay(true);
    }
    s.set_nonblocking(true).ok()?;
    let mut buf = [0u8; 1024];
    let _ = s.read(&mut buf);
    match s.write(SSE_HEAD) {
        Ok(n) if n == SSE_HEAD.len() => Some(s),
        _ => None,
    }
}

/// Says this write-floor is set up (`--ready-file`).
fn say_ready(o: &Opts) {
    if let Some(ready) = &o.ready_file {
        if let Err(e) = std::fs::write(ready, b"") {
            die(&format!("--ready-file {}: {e}", ready.display()));
        }
    }
}

/// Says this write-floor is set up (`--ready-file`), then waits for the
/// word to go (`--go-file`).
fn wait_for_go(o: &Opts) {
    say_ready(o);
    if let Some(go) = &o.go_file {
        while !go.exists() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The command that starts the client side: this program, under `taskset`
/// and `chrt --batch` as asked.
fn helper_command(o: &Opts, exe: &std::path::Path) -> Command {
    let mut wrappers: Vec<Vec<String>> = Vec::new();
    if let Some(cpu) = &o.client_cpu {
        wrappers.push(vec!["taskset".into(), "-c".into(), cpu.clone()]);
    }
    if o.client_batch {
        wrappers.push(vec!["chrt".into(), "--batch".into(), "0".into()]);
    }
    let mut argv: Vec<String> = wrappers.into_iter().flatten().collect();
    argv.push(exe.display().to_string());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// An SSE frame of about `len` bytes, shaped like logcast's; shorter than
/// an event's head, a comment (`: keepalive` is 13 bytes).
fn frame(len: usize) -> Vec<u8> {
    let head = b"id: 1234567\ndata: MARK 1700000000000000000 42 ";
    if len < head.len() + 2 {
        let mut f = b": keepalive".to_vec();
        f.resize(len.max(3) - 2, b' ');
        f.extend_from_slice(b"\n\n");
        return f;
    }
    let mut f = head.to_vec();
    while f.len() + 2 < len {
        f.push(b'x');
    }
    f.extend_from_slice(b"\n\n");
    f
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--connect-side") {
        let addr: SocketAddr = num("--connect-side", args.get(1));
        let n: usize = num("--connect-side", args.get(2));
        let drain = args[3..].iter().any(|a| a == "drain");
        let src = args[3..]
            .iter()
            .find_map(|a| a.strip_prefix("from="))
            .map(|ip| num::<Ipv4Addr>("--source", Some(&ip.to_string())));
        return connect_side(addr, n, drain, src);
    }
    let mut o = Opts {
        sockets: 10_000,
        rounds: 20,
        frame_bytes: 100,
        pause_ms: 500,
        spread: false,
        nodelay: false,
        drain: false,
        client_cpu: None,
        client_batch: false,
        listen: std::net::IpAddr::from([127, 0, 0, 1]),
        serve: None,
        linger_ms: 0,
        source: None,
        phase_ms: 0,
        ready_file: None,
        go_file: None,
        json: false,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "--sockets" => o.sockets = num(a, args.get(i)),
            "--rounds" => o.rounds = num(a, args.get(i)),
            "--frame-bytes" => o.frame_bytes = num(a, args.get(i)),
            "--pause-ms" => o.pause_ms = num(a, args.get(i)),
            "--phase-ms" => o.phase_ms = num(a, args.get(i)),
            "--listen" => o.listen = num(a, args.get(i)),
            "--linger-ms" => o.linger_ms = num(a, args.get(i)),
            "--serve" => o.serve = Some(num(a, args.get(i))),
            "--source" => o.source = Some(num(a, args.get(i))),
            "--ready-file" => o.ready_file = Some(num(a, args.get(i))),
            "--go-file" => o.go_file = Some(num(a, args.get(i))),
            "--client-batch" => {
                o.client_batch = true;
                continue;
            }
            "--client-cpu" => o.client_cpu = Some(num::<u32>(a, args.get(i)).to_string()),
            "--nodelay" => {
                o.nodelay = true;
                continue;
            }
            "--drain" => {
                o.drain = true;
                continue;
            }
            "--spread" => {
                o.spread = true;
                continue;
            }
            "--json" => {
                o.json = true;
                continue;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            _ => die(&format!("unknown option '{a}' (see --help)")),
        }
        i += 1;
    }
    if o.sockets == 0 || o.rounds == 0 || o.frame_bytes < 4 {
        die("--sockets and --rounds must be >= 1, --frame-bytes >= 4");
    }
    let soft = raise_nofile();
    if o.sockets as u64 + 64 > soft {
        die(&format!(
            "--sockets {}: over the open-file limit {soft}",
            o.sockets
        ));
    }
    // (with --serve the clients are another program's, which reads)
    if !o.drain && o.serve.is_none() && o.rounds * o.frame_bytes > 64 * 1024 {
        eprintln!("write-floor: warning: {} rounds of {} bytes may fill receive buffers that are never read; use --drain", o.rounds, o.frame_bytes);
    }

    let (accepted, mut helper) = match o.serve {
        Some(port) => (serve_clients(&o, port), None),
        None => {
            let (accepted, helper) = own_clients(&o);
            (accepted, Some(helper))
        }
    };
    if accepted.is_empty() {
        die("no connection to write to");
    }
    let f = frame(o.frame_bytes);
    let clk = clk_tck();
    let mut cpu_us = Vec::new();
    let mut wall_us = Vec::new();
    let mut short = 0u64;
    let ticks0 = process_ticks().unwrap_or(0);
    let mut total_ns = 0u64;
    let mut total_writes = 0u64;
    // one unmeasured warm-up round
    let gap = Duration::from_millis(o.pause_ms) / accepted.len() as u32;
    if o.serve.is_none() {
        wait_for_go(&o);
    }
    std::thread::sleep(Duration::from_millis(o.phase_ms));
    for round in 0..=o.rounds {
        if !o.spread {
            std::thread::sleep(Duration::from_millis(o.pause_ms));
        }
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        for (k, mut s) in accepted.iter().enumerate() {
            if o.spread {
                let at = t0 + gap * k as u32;
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            match s.write(&f) {
                Ok(k) if k == f.len() => {}
                _ => short += 1,
            }
        }
        let wall = t0.elapsed();
        let c1 = thread_cpu_ns();
        if round == 0 {
            continue;
        }
        let n = accepted.len() as f64;
        if let (Some(a), Some(b)) = (c0, c1) {
            cpu_us.push((b - a) as f64 / 1000.0 / n);
            total_ns += b - a;
        }
        total_writes += accepted.len() as u64;
        wall_us.push(wall.as_secs_f64() * 1e6 / n);
    }
    let ticks1 = process_ticks().unwrap_or(0);
    if let Some(helper) = &mut helper {
        drop(helper.stdin.take());
        let _ = helper.wait();
    }
    // ticks include the pauses (idle) and the warm-up round: a cross-check only
    let ticks_us =
        (ticks1 - ticks0) as f64 * 1e6 / clk as f64 / ((o.rounds + 1) * accepted.len()) as f64;
    let per_round: Vec<String> = cpu_us.iter().map(|v| format!("{v:.2}")).collect();
    let cpu_med = median(&mut cpu_us.clone());
    let wall_med = median(&mut wall_us.clone());
    let mean = if total_writes > 0 {
        total_ns as f64 / 1000.0 / total_writes as f64
    } else {
        0.0
    };
    if o.json {
        println!(
            "{{\"sockets\": {}, \"rounds\": {}, \"frame_bytes\": {}, \"spread\": {}, \"pause_ms\": {}, \"drain\": {}, \"client_cpu\": {}, \"cpu_us_per_write\": {:.3}, \"cpu_us_per_write_mean\": {:.3}, \"wall_us_per_write\": {:.3}, \"ticks_us_per_write\": {:.3}, \"short_writes\": {}, \"clk_tck\": {}}}",
            accepted.len(), o.rounds, f.len(), o.spread, o.pause_ms, o.drain, o.client_cpu.as_deref().unwrap_or("null"), cpu_med, mean, wall_med, ticks_us, short, clk
        );
    } else {
        println!(
            "write-floor: {} sockets x {} rounds, {}-byte frames, {}, client side {}",
            accepted.len(),
            o.rounds,
            f.len(),
            if o.spread {
                format!("writes spread over {} ms per round", o.pause_ms)
            } else {
                format!("a burst every {} ms", o.pause_ms)
            },
            if o.drain {
                "reading (epoll)"
            } else {
                "never reading"
            }
        );
        println!("  CPU us per write, by round: {}", per_round.join(" "));
        println!(
            "  median {cpu_med:.2} us CPU per write (mean {mean:.2}), {wall_med:.2} us wall; utime+stime cross-check {ticks_us:.2} us (CLK_TCK {clk}); short writes {short}"
        );
    }
    if o.linger_ms > 0 {
        let _ = io::stdout().flush();
        std::thread::sleep(Duration::from_millis(o.linger_ms));
    }
    drop(accepted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_the_asked_size_and_ends_an_event() {
        let f = frame(100);
        assert_eq!(f.len(), 100);
        assert!(f.ends_with(b"\n\n"));
        assert!(f.starts_with(b"id: "));
        assert_eq!(frame(13), b": keepalive\n\n");
        assert_eq!(frame(5), b": k\n\n");
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
