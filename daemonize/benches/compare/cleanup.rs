//! Cleanup: every process a run started is killed by pid, pinned with a pidfd; never by name.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{DEADLINE, procfs, sys};

/// The processes of one run: when dropped, every process with an argument equal to the tag is
/// killed by pid (pinned with a pidfd), awaited (bounded) and reaped. Scans again afterwards, in
/// case a supervisor restarted its child meanwhile. A guard that was [disarmed](Self::disarm)
/// does nothing.
pub struct RunGuard {
    pub tag: OsString,
    armed: bool,
}

impl RunGuard {
    pub fn new(tag: &OsStr) -> RunGuard {
        RunGuard { tag: tag.to_os_string(), armed: true }
    }

    /// No scan of /proc when dropped: for a run whose only process left running was seen
    /// exited through its pidfd. Every panic before the call still leaves the guard armed.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let tag = self.tag.as_bytes();
        kill_matching(|argv| argv.iter().any(|arg| arg == tag));
    }
}

/// The scratch directory: when dropped, kills anything left with one of this bench's tags or
/// paths in its argv, reaps orphans, and removes the directory.
pub struct Scratch {
    pub path: PathBuf,
    /// The type of the file system `path` is on (`tmpfs`, `ext4`).
    pub fs: String,
    /// What every tag of this bench starts with: `1000.` and our pid on 7 digits.
    pub tag_prefix: String,
}

impl Scratch {
    /// Creates `base/daemonctx-bench-PID`, empty.
    pub fn create(base: &Path) -> Scratch {
        let pid = std::process::id();
        let path = base.join(format!("daemonctx-bench-{pid}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Scratch { fs: scratch_fs(&path), path, tag_prefix: format!("1000.{pid:07}") }
    }

    /// How the tables name this directory: path and file system.
    pub fn describe(&self) -> String {
        format!("`{}` ({})", self.path.display(), self.fs)
    }
}

/// The directory the runs' pidfiles go in: `BENCH_DIR`, else `/dev/shm` when it is a tmpfs (as
/// `/run` is on systemd machines, where pidfiles live), else the temporary directory.
pub fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_DIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && scratch_fs(shm) == "tmpfs" {
        return shm.into();
    }
    std::env::temp_dir()
}

/// The type of the file system `path` is on (`tmpfs`, `ext4`): the last-mounted entry of
/// `/proc/self/mountinfo` whose mount point is the longest prefix of the path.
pub fn scratch_fs(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER-OPTIONS
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|field| *field == "-") else { continue };
        let (Some(mount), Some(fs_type)) = (fields.get(4), fields.get(dash + 1)) else { continue };
        if path.starts_with(mount) && best.is_none_or(|(length, _)| mount.len() >= length) {
            best = Some((mount.len(), fs_type));
        }
    }
    best.map_or_else(|| "unknown file system".into(), |(_, fs_type)| fs_type.to_string())
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (prefix, path) = (self.tag_prefix.as_bytes(), self.path.as_os_str().as_bytes());
        let left = kill_matching(|argv| {
            argv.iter().any(|arg| arg.starts_with(prefix) || arg.starts_with(path))
        });
        if left > 0 {
            eprintln!("compare: killed {left} leftover process(es)");
        }
        sys::reap_orphans();
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Kills every process whose argv `matches`, by pid: `pidfd_open(2)`, the argv checked again on
/// the pinned process, `pidfd_send_signal(2)` `SIGKILL`, `poll(2)` until gone (bounded), then
/// reaped if it is our child. Up to three scans. Returns how many were killed.
pub fn kill_matching(matches: impl Fn(&[Vec<u8>]) -> bool) -> usize {
    let mut killed = 0;
    for _ in 0..3 {
        let pids = procfs::pids_where(&matches);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let Ok(pidfd) = daemonctx::process::pidfd_open(pid) else { continue };
            if !procfs::argv(pid).is_some_and(|argv| matches(&argv)) {
                continue; // gone, or a new process under a recycled pid
            }
            if daemonctx::process::pidfd_send_signal(&pidfd, libc::SIGKILL).is_ok() {
                killed += 1;
                if !daemonctx::process::wait_exit(&pidfd, Instant::now() + DEADLINE) {
                    eprintln!("compare: pid {pid} still there {DEADLINE:?} after SIGKILL");
                }
                sys::reap(pid);
            }
        }
    }
    killed
}
