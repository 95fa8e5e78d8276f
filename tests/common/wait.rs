//! Waiting in tests: one helper that polls a condition until a deadline (failing with what
//! the caller says was going on), and a guard that kills a spawned process when the test
//! panics, so that no evtship outlives a failed test.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Polls `done` every 50 ms until it holds, for at most `limit`; on timeout the test fails
/// with `what` and `why()`. Returns how long it took.
pub fn until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    why: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}: {}",
            why()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// A spawned process, killed (and reaped) when dropped unless it was waited for.
pub struct Guard(Option<Child>);

impl Guard {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(cmd.spawn().expect("spawning a process")))
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// The process, for waiting on it or writing to it.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        let pid = nix::unistd::Pid::from_raw(self.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }

    /// Waits for it to exit, for at most `limit` (then the test fails and it is killed);
    /// returns its exit code and how long the wait took.
    pub fn wait_within(&mut self, limit: Duration) -> (i32, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                self.0 = None;
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the process did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_kib(&self) -> u64 {
        peak_kib(self.id())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The peak resident memory of a running process, in KiB (`VmHWM`); the test fails when the
/// process is gone.
pub fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone ({e})"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a VmHWM line")
}
