//! Attacks by a hostile local user on the paths root opens and the pids root signals: links
//! planted in a service's directory, a symbolic link renamed over a pidfile while `--stop`
//! reads it, a lock holder that left the daemon's group, a pid reused before the KILL step,
//! and hosts with many processes that `--status` and `--stop` must not scan for nothing.
//!
//! The attacker is `nobody` (tests that need root to play it skip loudly otherwise); the
//! pid-reuse and group-reuse tests run in a private pid namespace (`unshare`), skipped where
//! refused.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// uid and gid of `nobody`, who plays the service user, or `None` (after saying so).
fn nobody(test: &str) -> Option<(u32, u32)> {
    if skip_unless_root(test) {
        return None;
    }
    // SAFETY: getpwnam takes a NUL-terminated name; the entry is read before any other call.
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if entry.is_null() {
        skip(&format!("{test} needs a user nobody"));
        return None;
    }
    // SAFETY: entry is a valid passwd entry (checked above).
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

fn chown(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// A root-only file with known content, in a root-only directory, the attacker's target.
fn secret(dir: &TempDir) -> std::path::PathBuf {
    let vault = dir.join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = vault.join("shadow");
    std::fs::write(&secret, "secret\n").unwrap();
    secret
}

/// The service's own directory: belongs to `nobody`, who plants links in it.
fn service_dir(dir: &TempDir, owner: (u32, u32)) -> std::path::PathBuf {
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    chown(&app, owner);
    app
}

fn assert_refused(args: &[&str], expected_code: i32, expected: &str) {
    let output = daemonize(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = describe(&format!("daemonize {}", show(args)), &output);
    assert_eq!(code(&output.status), expected_code, "{context}");
    assert!(stderr.contains(expected), "{context}");
}

#[test]
fn output_links_planted_by_the_service_user_are_refused() {
    let test = "output_links_planted_by_the_service_user_are_refused";
    let Some(owner) = nobody(test) else { return };
    let dir = TempDir::new("hostile-output");
    let secret = secret(&dir);
    let app = service_dir(&dir, owner);
    // The service plants a link to the secret as its log, and a link to the vault as a
    // directory on the way to another.
    let out = app.join("out.log");
    std::os::unix::fs::symlink(&secret, &out).unwrap();
    chown(&out, owner);
    let sub = app.join("sub");
    std::os::unix::fs::symlink(secret.parent().unwrap(), &sub).unwrap();
    chown(&sub, owner);
    let pidfile = dir.join("d.pid");
    let _guard = guard_pidfile(&pidfile);
    let common = ["-p", path_str(&pidfile), "-u", "nobody"];
    let planted_file = [&common[..], &["-o", path_str(&out), "--", "echo", "pwned"]].concat();
    assert_refused(&planted_file, 5, "symbolic link");
    let created = sub.join("new.log");
    let planted_dir = [&common[..], &["-e", path_str(&created), "--", "echo", "pwned"]].concat();
    assert_refused(&planted_dir, 5, "symbolic link");
    let supervised =
        [&common[..], &["--supervise", "-o", path_str(&out), "--", "echo", "pwned"]].concat();
    assert_refused(&supervised, 5, "symbolic link");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n", "the secret was written");
    assert!(!secret.with_file_name("new.log").exists(), "a file was created in the vault");
    // A hard link to the secret (fs.protected_hardlinks=0 lets nobody make one): refused too.
    std::fs::remove_file(&out).unwrap();
    std::fs::hard_link(&secret, &out).unwrap();
    assert_refused(&planted_file, 5, "hard links");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n", "the secret was written");
    // The service's own plain log file is fine, and so is a link in a root-only directory.
    std::fs::remove_file(&out).unwrap();
    let trusted_link = dir.join("log-link");
    std::os::unix::fs::symlink(&out, &trusted_link).unwrap();
    let honest = [&common[..], &["-o", path_str(&trusted_link), "--", "echo", "honest"]].concat();
    let output = daemonize(&honest);
    assert!(output.status.success(), "{}", describe("daemonize -o (honest)", &output));
    let written = wait_until(COMMAND_TIMEOUT, || {
        std::fs::read_to_string(&out).is_ok_and(|text| text == "honest\n")
    });
    assert!(written, "the honest log was not written through the trusted link");
}

// Review of item 1: with -o and -e naming the same file, exec mode opened it once with a plain
// open(2) as root, following the service user's link, and truncated the secret.
#[test]
fn output_shared_by_o_and_e_is_opened_as_safely_as_either_alone() {
    let test = "output_shared_by_o_and_e_is_opened_as_safely_as_either_alone";
    let Some(owner) = nobody(test) else { return };
    let dir = TempDir::new("hostile-shared-output");
    let secret = secret(&dir);
    let app = service_dir(&dir, owner);
    let out = app.join("out.log");
    std::os::unix::fs::symlink(&secret, &out).unwrap();
    chown(&out, owner);
    let pidfile = dir.join("d.pid");
    let _guard = guard_pidfile(&pidfile);
    let out = path_str(&out);
    for append in [false, true] {
        let mut args = vec!["-p", path_str(&pidfile), "-u", "nobody", "-o", out, "-e", out];
        if append {
            args.push("-a");
        }
        args.extend(["--", "echo", "pwned"]);
        assert_refused(&args, 5, "symbolic link");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n", "the secret was written");
    }
}

#[test]
fn pidfile_with_other_links_or_another_owner_or_a_planted_directory_is_refused() {
    let dir = TempDir::new("hostile-pidfile");
    let precious = dir.join("precious");
    std::fs::write(&precious, "keep\n").unwrap();
    let pidfile = dir.join("d.pid");
    std::fs::hard_link(&precious, &pidfile).unwrap();
    let _guard = guard_pidfile(&pidfile);
    assert_refused(&["-p", path_str(&pidfile), "--", "sleep", "1000"], 6, "hard links");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep\n", "the linked file changed");
    let test = "pidfile_with_other_links_or_another_owner_or_a_planted_directory_is_refused";
    let Some(owner) = nobody(test) else { return };
    let theirs = dir.join("theirs.pid");
    std::fs::write(&theirs, "").unwrap();
    chown(&theirs, owner);
    assert_refused(&["-p", path_str(&theirs), "--", "sleep", "1000"], 6, "another user");
    // A directory on the way that the service user planted as a link to another daemon's.
    let app = service_dir(&dir, owner);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let sub = app.join("sub");
    std::os::unix::fs::symlink(&elsewhere, &sub).unwrap();
    chown(&sub, owner);
    let through_link = sub.join("d.pid");
    assert_refused(&["-p", path_str(&through_link), "--", "sleep", "1000"], 6, "symbolic link");
    assert!(!elsewhere.join("d.pid").exists(), "a pidfile was created through the link");
    assert_refused(&["--stop", "-p", path_str(&through_link)], 3, "symbolic link");
    // The daemon's own user may own it.
    let _guard = guard_pidfile(&theirs);
    let output = daemonize(&["-p", path_str(&theirs), "-u", "nobody", "--", "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("daemonize -u nobody", &output));
    let _guard = SpawnedGroup(pgid_of(read_pidfile(&theirs)));
}

/// Waits until `pid` has `file` open (a descriptor in `/proc/PID/fd` names it).
fn wait_open(pid: i32, file: &Path) -> bool {
    wait_until(COMMAND_TIMEOUT, || proc_fds(pid).iter().any(|(_, target)| target == file))
}

#[test]
fn stop_acts_on_the_pidfile_it_inspected_not_a_link_renamed_over_it() {
    // The attacker holds the lock of an empty pidfile in its directory; once --stop has opened
    // it (and waits up to 1 s for a pid), it renames a symbolic link to the victim's pidfile
    // over the path and writes the victim's pid into its own locked file.
    let dir = TempDir::new("hostile-rename");
    let victim_pidfile = dir.join("victim.pid");
    let victim_guard = guard_pidfile(&victim_pidfile);
    let output = daemonize(&["-p", path_str(&victim_pidfile), "--", "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("daemonize (victim)", &output));
    let victim = read_pidfile(&victim_pidfile);
    let _victim_guard = victim_guard.unwrap_or(SpawnedGroup(pgid_of(victim)));
    let pidfile = dir.join("app.pid");
    let output = daemonize(&["-l", path_str(&pidfile), "--", "sleep", "1000"]);
    assert!(output.status.success(), "{}", describe("daemonize -l (attacker)", &output));
    assert!(wait_until(COMMAND_TIMEOUT, || !lock_holders(&pidfile).is_empty()));
    let attacker = lock_holders(&pidfile)[0] as i32;
    let _attacker_guard = SpawnedGroup(pgid_of(attacker));
    let locked_file = std::fs::OpenOptions::new().write(true).open(&pidfile).unwrap();
    let stop = Command::new(daemonize_bin())
        .args(["--stop", "-p", path_str(&pidfile), "--retry", "TERM/5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stop_guard = Spawned::new(stop.id() as i32);
    assert!(wait_open(stop.id() as i32, &pidfile), "--stop never opened the pidfile");
    let link = dir.join("app.pid.new");
    std::os::unix::fs::symlink(&victim_pidfile, &link).unwrap();
    std::fs::rename(&link, &pidfile).unwrap();
    std::os::unix::fs::FileExt::write_at(&locked_file, format!("{victim}\n").as_bytes(), 0)
        .unwrap();
    let output = stop.wait_with_output().unwrap();
    drop(stop_guard);
    let context = describe("daemonize --stop (raced)", &output);
    assert!(alive(victim), "--stop killed the victim named through the link: {context}");
    assert!(wait_gone(attacker, COMMAND_TIMEOUT), "the lock holder was not stopped: {context}");
}

/// Starts `daemonize -p DIR/d.pid -- sh -c SCRIPT` and waits for a lock holder other than the
/// daemon (what SCRIPT moved out of the group); returns (daemon, holder, guards).
fn start_with_escaped_holder(dir: &TempDir, script: &str) -> (i32, i32, Vec<Spawned>) {
    let pidfile = dir.join("d.pid");
    let output = daemonize(&["-p", path_str(&pidfile), "--", "sh", "-c", script]);
    assert!(output.status.success(), "{}", describe("daemonize", &output));
    let daemon = read_pidfile(&pidfile);
    let mut guards = vec![Spawned::new(daemon)];
    let group = pgid_of(daemon);
    // A holder that has called setsid: the forked shell holds the lock before it execs setsid.
    let escaped = || {
        let holders = lock_holders(&pidfile).into_iter().map(|pid| pid as i32);
        holders.filter(|pid| *pid != daemon).find(|pid| try_pgid(*pid).is_some_and(|g| g != group))
    };
    assert!(wait_until(COMMAND_TIMEOUT, || escaped().is_some()), "no escaped lock holder");
    let holder = escaped().unwrap();
    guards.push(Spawned::new(holder));
    (daemon, holder, guards)
}

#[test]
fn stop_reaches_a_lock_holder_that_left_the_group() {
    let dir = TempDir::new("hostile-escaped");
    let pidfile = dir.join("d.pid");
    // It obeys SIGTERM: the default schedule's signal reaches it, and the stop succeeds.
    let (_, holder, _guards) =
        start_with_escaped_holder(&dir, "setsid sleep 1000 & exec sleep 1001");
    let output = daemonize(&["--stop", "-p", path_str(&pidfile)]);
    let context = describe("daemonize --stop", &output);
    assert_eq!(code(&output.status), 0, "{context}");
    assert!(wait_gone(holder, COMMAND_TIMEOUT), "the escaped holder survived: {context}");
    assert!(!pidfile.exists(), "{context}");
    // It ignores SIGTERM: without KILL the stop says it is still running (2); KILL reaches it.
    let script = "trap '' TERM; setsid sleep 1000 & trap - TERM; exec sleep 1001";
    let (_, holder, _guards) = start_with_escaped_holder(&dir, script);
    let output = daemonize(&["--stop", "-p", path_str(&pidfile), "--retry", "TERM/1"]);
    let context = describe("daemonize --stop --retry TERM/1", &output);
    assert_eq!(code(&output.status), 2, "{context}");
    assert!(alive(holder), "{context}");
    let output = daemonize(&["--stop", "-p", path_str(&pidfile), "--retry", "TERM/1/KILL/5"]);
    let context = describe("daemonize --stop --retry TERM/1/KILL/5", &output);
    assert_eq!(code(&output.status), 0, "{context}");
    assert!(wait_gone(holder, COMMAND_TIMEOUT), "KILL did not reach the holder: {context}");
    assert!(!pidfile.exists(), "{context}");
}

#[test]
fn kill_step_never_reaches_the_children_of_a_reused_pid() {
    let test = "kill_step_never_reaches_the_children_of_a_reused_pid";
    if skip_unless_root(test) {
        return;
    }
    let dir = TempDir::new("hostile-reuse");
    let helper = example("recycle_pid");
    let output = run(Command::new("unshare").args(["--pid", "--fork", "--mount-proc"]).args([
        helper.as_os_str(),
        daemonize_bin().as_os_str(),
        dir.path().as_os_str(),
    ]));
    let context = describe("unshare --pid --fork --mount-proc recycle_pid", &output);
    match code(&output.status) {
        0 => {}
        4 => skip(&format!("{test} needs the pid to be reused: {context}")),
        1 => panic!("the KILL step killed the child of the process that reused the pid: {context}"),
        _ if String::from_utf8_lossy(&output.stderr).contains("unshare") => {
            skip(&format!("{test} needs a private pid namespace: {context}"))
        }
        _ => panic!("{context}"),
    }
}

// Review of item 3: once the daemon was reaped, --stop still took its process group's number
// for the daemon's: a process that got that number as its pid and called setsid(2) before the
// stop looked (here: reaped at once by a pid 1 that outranks the stop) lost its whole group.
#[test]
fn stop_never_takes_a_reused_group_number_for_the_daemons_group() {
    let test = "stop_never_takes_a_reused_group_number_for_the_daemons_group";
    if skip_unless_root(test) {
        return;
    }
    let dir = TempDir::new("hostile-group-reuse");
    let helper = example("recycle_group");
    let output = run(Command::new("unshare").args(["--pid", "--fork", "--mount-proc"]).args([
        helper.as_os_str(),
        daemonize_bin().as_os_str(),
        dir.path().as_os_str(),
    ]));
    let context = describe("unshare --pid --fork --mount-proc recycle_group", &output);
    match code(&output.status) {
        0 => {}
        4 => skip(&format!("{test} needs SCHED_FIFO and the group's number reused: {context}")),
        1 => panic!("the stop killed a group that reused the daemon's group number: {context}"),
        _ if String::from_utf8_lossy(&output.stderr).contains("unshare") => {
            skip(&format!("{test} needs a private pid namespace: {context}"))
        }
        _ => panic!("{context}"),
    }
}

#[test]
fn status_and_stop_do_not_scan_every_process_in_the_common_case() {
    // In a private pid namespace whose init (sh) reaps at once, as a real init does: until its
    // zombie is reaped, a stopped daemon still counts as a member of its process group.
    let test = "status_and_stop_do_not_scan_every_process_in_the_common_case";
    if skip_unless_root(test) {
        return;
    }
    if !Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        skip(&format!("{test} needs strace"));
        return;
    }
    let dir = TempDir::new("hostile-scan");
    let pidfile = dir.join("d.pid");
    let strace = "strace -f -qq -e trace=openat,open -o";
    let script = format!(
        "d={daemonize} p={pidfile} t={dir}
         $d -p $p -- sleep 1000 || exit 10
         {strace} $t/status.trace $d --status -p $p || exit 11
         {strace} $t/stop.trace $d --stop -p $p || exit 12",
        daemonize = daemonize_bin().display(),
        pidfile = pidfile.display(),
        dir = dir.path().display(),
    );
    let output =
        run(Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script]));
    let context = describe(&format!("unshare --pid --fork --mount-proc sh -c {script:?}"), &output);
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("unshare") {
        skip(&format!("{test} needs a private pid namespace: {context}"));
        return;
    }
    if code(&output.status) == 11 && std::fs::metadata(dir.join("status.trace")).is_err() {
        skip(&format!("{test} needs strace to trace (ptrace refused?): {context}"));
        return;
    }
    assert!(output.status.success(), "{context}");
    for name in ["status.trace", "stop.trace"] {
        let trace = std::fs::read_to_string(dir.join(name)).unwrap();
        let scans = trace.lines().filter(|line| line.contains("\"/proc\"")).count();
        assert_eq!(scans, 0, "{name}: /proc was listed: {context}\n{trace}");
    }
}

#[test]
fn command_inherits_the_lock_on_a_read_only_pidfile() {
    // COMMAND looks for the pidfile among its descriptors and writes another pid through it.
    let dir = TempDir::new("hostile-rdonly");
    let pidfile = dir.join("d.pid");
    let marker = dir.join("tried");
    let script = format!(
        "for fd in /proc/self/fd/*; do
           [ \"$(readlink $fd)\" = {pidfile} ] && echo 1 2>/dev/null >&${{fd##*/}}
         done
         : > {marker}; exec sleep 1000",
        pidfile = pidfile.display(),
        marker = marker.display(),
    );
    let output = daemonize(&["-p", path_str(&pidfile), "--", "sh", "-c", &script]);
    assert!(output.status.success(), "{}", describe("daemonize", &output));
    let daemon = read_pidfile(&pidfile);
    let _guard = SpawnedGroup(pgid_of(daemon));
    assert!(wait_until(COMMAND_TIMEOUT, || marker.exists()), "COMMAND never tried");
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text, format!("{daemon}\n"), "COMMAND rewrote the pidfile");
    let output = daemonize(&["--status", "-p", path_str(&pidfile)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, format!("running (pid {daemon})\n"), "{}", describe("status", &output));
    // The read lock still keeps every other start out.
    let output = daemonize(&["-p", path_str(&pidfile), "--", "sleep", "1000"]);
    assert_eq!(code(&output.status), 1, "{}", describe("second start", &output));
}
