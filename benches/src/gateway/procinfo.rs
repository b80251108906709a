//! Facts about processes and files the gateway bench reports: resident
//! memory, stripped binary size, and small helpers to start servers.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The resident set size of process `pid`, in KiB: the `VmRSS` line of
/// `/proc/PID/status` (Linux).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| io::Error::other(format!("no VmRSS for pid {pid}")))
}

/// The `VmRSS:   1234 kB` value of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The pids whose parent is `pid` (from `/proc/*/stat`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    // The command name (field 2) may hold spaces: parse after ')'.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The RSS of `pid` plus its direct children (nginx's master and workers), in KiB.
pub fn rss_tree_kib(pid: u32) -> io::Result<u64> {
    tree_sum(pid, rss_kib)
}

/// `of(pid)` plus `of` of each of its direct children (a child that has
/// gone meanwhile counts 0).
fn tree_sum(pid: u32, of: fn(u32) -> io::Result<u64>) -> io::Result<u64> {
    let own = of(pid)?;
    Ok(own
        + children(pid)
            .into_iter()
            .filter_map(|c| of(c).ok())
            .sum::<u64>())
}

/// CPU time (user + system) process `pid` has used, all its threads, in
/// microseconds: fields 14 and 15 of `/proc/PID/stat`, in USER_HZ ticks
/// (100 per second on Linux, so 10 ms resolution).
pub fn cpu_us(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks * 10_000)
        .ok_or_else(|| io::Error::other(format!("no CPU times for pid {pid}")))
}

/// utime + stime of a `/proc/PID/stat` text, in ticks.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count fields after ')'.
    // There, field 3 (state) is index 0, so utime (14) is 11 and stime 12.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of `pid` plus its direct children, in microseconds.
pub fn cpu_tree_us(pid: u32) -> io::Result<u64> {
    tree_sum(pid, cpu_us)
}

/// The size of `bin` and of a stripped copy of it (made in `scratch` with
/// `strip`), in bytes.
pub fn stripped_size(bin: &Path, scratch: &Path) -> io::Result<(u64, u64)> {
    let size = std::fs::metadata(bin)?.len();
    let copy = scratch.join("stripped-binary");
    std::fs::copy(bin, &copy)?;
    let status = Command::new("strip").arg(&copy).status()?;
    if !status.success() {
        return Err(io::Error::other(format!("strip failed: {status}")));
    }
    let stripped = std::fs::metadata(&copy)?.len();
    std::fs::remove_file(&copy)?;
    Ok((size, stripped))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Waits until something accepts connections on `addr`, up to `timeout`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{addr} not listening: {e}"),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_the_status_text_and_from_our_own_process() {
        let text = "Name:\tdrover\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(text), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        let me = rss_kib(std::process::id()).expect("own rss");
        assert!(
            me > 100 && me < 4 << 20,
            "a test process uses between 100 KiB and 4 GiB: {me}"
        );
        assert!(rss_kib(u32::MAX).is_err());
        assert!(cpu_us(u32::MAX).is_err());
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // A name with spaces and parentheses; utime 7, stime 5.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(spin.elapsed());
        }
        let me = cpu_us(std::process::id()).expect("own cpu");
        assert!(
            me >= 10_000,
            "60 ms spinning shows at least one tick: {me} µs"
        );
    }

    #[test]
    fn children_finds_a_spawned_child() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
        let found = children(std::process::id()).contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found);
    }
}
