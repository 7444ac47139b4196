//! One test per defect, named after what it guards; each failed before its fix.

mod common;

use std::time::Duration;

use common::*;

/// `?from=` (or `Last-Event-ID`) past the end of a finished log answered 204,
/// and EventSource then stopped for good. SPEC section 3: past the end means
/// the file was replaced: replay it from 0.
#[test]
fn resume_past_the_end_of_a_finished_log_replays_it_from_zero() {
    let d = Daemon::start(&[]);
    let path = d.log_dir.join("done.log");
    std::fs::write(&path, b"x\nlast\n").expect("write");
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    std::fs::set_permissions(&path, perms).expect("chmod");
    for (target, header) in [
        ("/api/logs/done/stream?from=600", None),
        ("/api/logs/done/stream", Some("Last-Event-ID: 9")),
    ] {
        let headers: Vec<&str> = header.into_iter().collect();
        let mut s = SseStream::open(&d, target, &headers);
        assert_eq!(s.head.status, 200, "{target} {headers:?}");
        let events = s.read_to_close(Duration::from_secs(5));
        let data: Vec<&str> = events
            .iter()
            .map(|e| e.data.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(data.len(), 3, "{target}: {data:?}");
        assert_eq!(&data[..2], ["x", "last"], "{target}");
        assert!(data[2].contains("\"finished\""), "{target}: {data:?}");
    }
}
