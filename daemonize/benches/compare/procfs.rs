//! Reading processes from /proc: what the library's `daemonctx::process` does not offer
//! (argv, children, schedstat, context switches).

use std::fs;

/// The argv of `pid` (`/proc/PID/cmdline`); empty for a zombie or a kernel thread.
pub fn argv(pid: u32) -> Option<Vec<Vec<u8>>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args: Vec<Vec<u8>> = raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if args.last().is_some_and(Vec::is_empty) {
        args.pop();
    }
    Some(args)
}

/// The pids, other than ours, whose argv `matches`.
pub fn pids_where(matches: impl Fn(&[Vec<u8>]) -> bool) -> Vec<u32> {
    let ours = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != ours && argv(*pid).is_some_and(|argv| matches(&argv)))
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name: state is field 0, ppid 1.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| !matches!(fields[0].as_str(), "Z" | "X" | "x"))
}

/// Whether `pid` has descriptor `fd` open (`/proc/PID/fd/FD`).
pub fn has_fd(pid: u32, fd: i32) -> bool {
    fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_ok()
}

/// The children of `pid`, all its threads' (`/proc/PID/task/TID/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let lists =
        tasks.filter_map(|task| fs::read_to_string(task.ok()?.path().join("children")).ok());
    lists
        .flat_map(|list| {
            list.split_whitespace().filter_map(|pid| pid.parse().ok()).collect::<Vec<_>>()
        })
        .collect()
}

pub fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Time on a CPU (ns) and times put on a CPU, summed over the threads' schedstat
/// (`/proc/PID/task/TID/schedstat`: on-CPU ns, run-queue wait ns, run count). `None`
/// when no thread has one (a kernel without `CONFIG_SCHED_INFO`).
pub fn schedstat(pid: u32) -> Option<crate::supervisor::Schedstat> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum: Option<crate::supervisor::Schedstat> = None;
    for task in tasks.filter_map(Result::ok) {
        let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else { continue };
        let fields: Vec<u64> =
            text.split_whitespace().filter_map(|field| field.parse().ok()).collect();
        let [cpu_ns, _, runs] = fields[..] else { continue };
        let total = sum.get_or_insert(crate::supervisor::Schedstat { cpu_ns: 0, runs: 0 });
        total.cpu_ns += cpu_ns;
        total.runs += runs;
    }
    sum
}

/// A numeric field of `/proc/PID/status` (`VmRSS`, `Threads`, ...), without its unit.
pub fn status_field(pid: u32, name: &str) -> Option<u64> {
    field_in(&format!("/proc/{pid}/status"), name)
}

/// A numeric field of `/proc/PID/task/TID/status` (`voluntary_ctxt_switches`, ...),
/// summed over the process's threads.
pub fn task_status_sum(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .map(|task| task.path().join("status"))
        .map(|path| field_in(&path.to_string_lossy(), name).unwrap_or(0))
        .sum()
}

pub fn field_in(path: &str, name: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.split(':').next() == Some(name))?;
    line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// How many processes the host runs: the numeric entries of /proc.
pub fn process_count() -> usize {
    let Ok(entries) = fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
        .count()
}
