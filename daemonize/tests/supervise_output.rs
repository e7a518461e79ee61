//! The supervisor's output relay and signal handling, seen from outside: syslog messages
//! received on a real datagram socket, log files rotated under it, signals forwarded to COMMAND,
//! and what an idle supervisor costs.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A supervisor started by `daemonize --supervise -p DIR/s.pid --child-pidfile DIR/c.pid`, with
/// guards on its process group and on COMMAND's (COMMAND runs in a group of its own).
struct Supervised {
    pid: i32,
    child: i32,
    pidfile: PathBuf,
    child_pidfile: PathBuf,
    command: String,
    _command_group: Option<SpawnedGroup>,
    _group: Option<SpawnedGroup>,
}

impl Supervised {
    fn start(dir: &TempDir, args: &[&str]) -> Supervised {
        let pidfile = dir.join("s.pid");
        let child_pidfile = dir.join("c.pid");
        let mut all = vec![
            "--supervise",
            "-p",
            path_str(&pidfile),
            "--child-pidfile",
            path_str(&child_pidfile),
        ];
        all.extend_from_slice(args);
        let command = format!("daemonize {}", show(&all));
        let output = daemonize(&all);
        // Guards first: whatever was started is killed even if an assertion below fails.
        let pid = try_pidfile(&pidfile);
        let group = pid.and_then(try_pgid).map(SpawnedGroup);
        // The child pidfile is written right after the spawn, before daemonize returns; wait
        // for it anyway, bounded.
        wait_until(Duration::from_secs(5), || try_pidfile(&child_pidfile).is_some());
        let child = try_pidfile(&child_pidfile);
        let command_group = child.and_then(try_pgid).map(SpawnedGroup);
        assert!(output.status.success(), "{}", describe(&command, &output));
        let pid = pid.unwrap_or_else(|| panic!("no supervisor pidfile: {command}"));
        let child = child.unwrap_or_else(|| panic!("no child pidfile: {command}"));
        assert!(alive(pid), "supervisor {pid} is not running: {command}");
        assert_eq!(try_pgid(child), Some(child), "COMMAND leads a process group of its own");
        Supervised {
            pid,
            child,
            pidfile,
            child_pidfile,
            command,
            _command_group: command_group,
            _group: group,
        }
    }

    /// Waits (bounded) for the supervisor to exit, and checks it removed both pidfiles.
    fn assert_exits(&self) {
        assert!(
            wait_gone(self.pid, HANDSHAKE),
            "supervisor {} still runs: {}",
            self.pid,
            self.command
        );
        assert!(!self.pidfile.exists(), "the supervisor left its pidfile: {}", self.command);
        assert!(!self.child_pidfile.exists(), "the child pidfile was left: {}", self.command);
    }
}

/// A message as the syslog crate's `Formatter3164` sends it without a hostname:
/// `<PRI>Mmm DD HH:MM:SS TAG[PID]: TEXT`.
#[derive(Debug)]
struct Message {
    pri: u32,
    tag: String,
    pid: i32,
    text: String,
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn parse_message(datagram: &[u8]) -> Message {
    let raw =
        String::from_utf8(datagram.to_vec()).unwrap_or_else(|_| panic!("not UTF-8: {datagram:?}"));
    let bad = |why: &str| -> ! { panic!("{why} in syslog message {raw:?}") };
    let rest = raw.strip_prefix('<').unwrap_or_else(|| bad("no <PRI>"));
    let (pri, rest) = rest.split_once('>').unwrap_or_else(|| bad("no <PRI>"));
    let pri: u32 = pri.parse().unwrap_or_else(|_| bad("bad PRI"));
    let stamp = rest.get(..15).unwrap_or_else(|| bad("short timestamp"));
    let s = stamp.as_bytes();
    let digits = |range: std::ops::Range<usize>| s[range].iter().all(u8::is_ascii_digit);
    // RFC 3164 pads the day with a space; the syslog crate pads it with a zero: take both.
    let day_ok = (s[4] == b' ' || s[4].is_ascii_digit()) && s[5].is_ascii_digit();
    let stamp_ok = MONTHS.contains(&&stamp[..3])
        && s[3] == b' '
        && day_ok
        && s[6] == b' '
        && digits(7..9)
        && s[9] == b':'
        && digits(10..12)
        && s[12] == b':'
        && digits(13..15);
    if !stamp_ok {
        bad("timestamp not `Mmm DD HH:MM:SS`");
    }
    let rest = rest[15..].strip_prefix(' ').unwrap_or_else(|| bad("no space after timestamp"));
    let (tag, rest) = rest.split_once('[').unwrap_or_else(|| bad("no [PID]"));
    let (pid, text) = rest.split_once("]: ").unwrap_or_else(|| bad("no ]: "));
    Message {
        pri,
        tag: tag.to_string(),
        pid: pid.parse().unwrap_or_else(|_| bad("bad PID")),
        text: text.to_string(),
    }
}

/// PRI = facility * 8 + severity.
fn pri(facility: u32, severity: u32) -> u32 {
    facility * 8 + severity
}

const LOCAL3: u32 = 19;
const DAEMON: u32 = 3;
const ERR: u32 = 3;
const WARNING: u32 = 4;
const NOTICE: u32 = 5;
const INFO: u32 = 6;

/// A syslog receiver bound at DIR/log.sock.
struct Receiver {
    path: PathBuf,
    socket: UnixDatagram,
}

impl Receiver {
    fn bind(dir: &TempDir) -> Receiver {
        let path = dir.join("log.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Receiver { path, socket }
    }

    fn recv(&self) -> Option<Message> {
        let mut buf = [0u8; 8192];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                assert!(n < buf.len(), "a syslog datagram was longer than {} bytes", buf.len());
                Some(parse_message(&buf[..n]))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("recv on {}: {e}", self.path.display()),
        }
    }

    /// Receives until `done` holds for what came, for at most `timeout`.
    fn collect(&self, timeout: Duration, mut done: impl FnMut(&[Message]) -> bool) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        while !done(&messages) && Instant::now() < deadline {
            messages.extend(self.recv());
        }
        messages
    }

    /// Whether a datagram waits in the queue (peeked, not taken).
    fn has_queued(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: one writable byte; MSG_PEEK leaves the datagram queued.
        let n = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n > 0
    }

    /// Receives until the supervisor `pid` is gone (it may block sending until it is read),
    /// for at most [`HANDSHAKE`].
    fn until_gone(&self, pid: i32) -> Vec<Message> {
        self.collect(HANDSHAKE, |_| !alive(pid))
    }

    /// Whatever is still queued, without waiting.
    fn drain(&self) -> Vec<Message> {
        self.socket.set_nonblocking(true).unwrap();
        std::iter::from_fn(|| self.recv()).collect()
    }
}

fn texts_at(messages: &[Message], pri: u32) -> Vec<&str> {
    messages.iter().filter(|m| m.pri == pri).map(|m| m.text.as_str()).collect()
}

/// Asserts that the pieces of a long line of `x` join into it again.
fn assert_all_x(pieces: &[&str], len: usize, context: &str) {
    let joined = pieces.concat();
    let other = joined.bytes().position(|b| b != b'x');
    assert!(
        joined.len() == len && other.is_none(),
        "{} pieces join into {} bytes, not {len} (other byte than x at {other:?}): {context}",
        pieces.len(),
        joined.len()
    );
}

/// The supervisor's own notices (they go where COMMAND's stderr goes: syslog here).
/// The supervisor's own messages carry its tag and pid, not COMMAND's.
fn is_notice(message: &Message) -> bool {
    message.tag == "daemonize"
}

#[test]
fn syslog_relay_sends_each_line_with_facility_priority_tag_and_command_pid() {
    let dir = TempDir::new("sup-syslog");
    let receiver = Receiver::bind(&dir);
    let mut gate = Gate::new(&dir);
    // COMMAND exits after the gate opens (rather than exec'ing a long sleep): the last line,
    // which has no newline, is only sent once its pipe closes.
    let script = format!(
        "printf 'first line\\n'; printf 'second line\\n'; printf 'to stderr\\n' >&2; \
         head -c 3000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'; \
         read go < {}",
        path_str(&gate.path)
    );
    let supervised = Supervised::start(
        &dir,
        &[
            "--syslog=local3",
            "--syslog-socket",
            path_str(&receiver.path),
            "--syslog-tag",
            "mytag",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = pri(LOCAL3, INFO);
    let err = pri(LOCAL3, ERR);
    let notice = pri(LOCAL3, NOTICE);
    // Every line but the last is relayed while COMMAND runs.
    let early = receiver
        .collect(HANDSHAKE, |m| texts_at(m, out).len() >= 5 && !texts_at(m, err).is_empty());
    gate.open();
    let mut messages = early;
    messages.extend(receiver.until_gone(supervised.pid));
    supervised.assert_exits();
    messages.extend(receiver.drain());
    let shown = format!("{}\nmessages: {messages:#?}", supervised.command);

    for message in &messages {
        if is_notice(message) {
            assert_eq!(message.pid, supervised.pid, "a notice not from the supervisor: {shown}");
        } else {
            assert_eq!(message.tag, "mytag", "{shown}");
            assert_eq!(message.pid, supervised.child, "not COMMAND's pid: {shown}");
        }
        assert!([out, err, notice].contains(&message.pri), "unexpected PRI: {shown}");
    }
    let stdout = texts_at(&messages, out);
    assert!(stdout.len() >= 4, "{shown}");
    assert_eq!(stdout[..2], ["first line", "second line"], "{shown}");
    assert_eq!(stdout[stdout.len() - 1], "no newline at the end", "{shown}");
    let pieces = &stdout[2..stdout.len() - 1];
    assert!(pieces.len() >= 3, "3000 bytes in fewer than 3 messages: {shown}");
    assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= 1024), "{shown}");
    assert_all_x(pieces, 3000, &shown);
    assert_eq!(texts_at(&messages, err), ["to stderr"], "{shown}");
    let notices: Vec<&Message> = messages.iter().filter(|m| is_notice(m)).collect();
    assert_eq!(notices.len(), 1, "one notice, COMMAND's exit: {shown}");
    assert_eq!(notices[0].pri, notice, "{shown}");
    assert!(notices[0].text.contains(&format!("pid {}", supervised.child)), "{shown}");
}

#[test]
fn syslog_priorities_are_configurable_and_bare_syslog_means_daemon_facility() {
    let dir = TempDir::new("sup-syslog-prio");
    let receiver = Receiver::bind(&dir);
    let mut gate = Gate::new(&dir);
    let script = format!("echo out; echo err >&2; read go < {}", path_str(&gate.path));
    let supervised = Supervised::start(
        &dir,
        &[
            "--syslog",
            "--syslog-socket",
            path_str(&receiver.path),
            "--syslog-stdout-priority",
            "notice",
            "--syslog-stderr-priority",
            "warning",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let mut messages = receiver.collect(HANDSHAKE, |m| m.len() >= 2);
    gate.open();
    messages.extend(receiver.until_gone(supervised.pid));
    supervised.assert_exits();
    messages.extend(receiver.drain());
    let shown = format!("{}\nmessages: {messages:#?}", supervised.command);
    let lines: Vec<(u32, &str)> =
        messages.iter().filter(|m| !is_notice(m)).map(|m| (m.pri, m.text.as_str())).collect();
    let mut sorted = lines.clone();
    sorted.sort(); // two pipes: no order between stdout and stderr
    assert_eq!(sorted, [(pri(DAEMON, WARNING), "err"), (pri(DAEMON, NOTICE), "out")], "{shown}");
    for message in messages.iter().filter(|m| !is_notice(m)) {
        assert_eq!(message.tag, "sh", "the tag defaults to COMMAND's basename: {shown}");
        assert_eq!(message.pid, supervised.child, "{shown}");
    }
}

#[test]
fn syslog_back_pressure_blocks_the_supervisor_and_loses_no_line() {
    let dir = TempDir::new("sup-syslog-pressure");
    let receiver = Receiver::bind(&dir);
    let mut gate = Gate::new(&dir);
    let script = format!("seq 1 5000; read go < {}", path_str(&gate.path));
    let supervised = Supervised::start(
        &dir,
        &["--syslog", "--syslog-socket", path_str(&receiver.path), "--", "sh", "-c", &script],
    );
    // Nothing is read until the supervisor blocks sending: the socket's queue is full.
    let blocked = wait_stalled_on_syslog(supervised.pid, &receiver);
    assert!(
        blocked,
        "the supervisor never stalled on the full syslog socket: {:?}; {}",
        blocked_in(supervised.pid),
        supervised.command
    );
    let out = pri(DAEMON, INFO);
    let mut messages = receiver.collect(HANDSHAKE, |m| texts_at(m, out).len() >= 5000);
    gate.open();
    messages.extend(receiver.until_gone(supervised.pid));
    supervised.assert_exits();
    messages.extend(receiver.drain());
    let lines = texts_at(&messages, out);
    let expected: Vec<String> = (1..=5000).map(|n| n.to_string()).collect();
    let first_wrong = lines.iter().zip(&expected).position(|(got, want)| got != want);
    assert!(
        lines.len() == 5000 && first_wrong.is_none(),
        "{} lines of 5000; first out of place at index {first_wrong:?} ({:?}); last {:?}: {}",
        lines.len(),
        first_wrong.map(|i| lines[i]),
        lines.last(),
        supervised.command
    );
}

/// Waits (bounded) until the supervisor `pid` is stalled on the syslog socket: asleep while
/// messages wait unread in `receiver`'s queue, either in a blocking send (write(2) or send(2)
/// in the kernel's wait for room in the queue, as now) or in poll(2) waiting for room. Only
/// for a COMMAND with far more lines than the queue holds (10 by default), so that a
/// supervisor asleep in poll(2) cannot be done sending.
fn wait_stalled_on_syslog(pid: i32, receiver: &Receiver) -> bool {
    wait_until(HANDSHAKE, || {
        let (state, syscall, wchan) = blocked_in(pid);
        let sending = [libc::SYS_write, libc::SYS_sendto, libc::SYS_sendmsg];
        let polling = [libc::SYS_poll, libc::SYS_ppoll];
        state == "S"
            && receiver.has_queued()
            && (wchan.contains("unix_wait_for_peer")
                || syscall.is_some_and(|s| sending.contains(&s) || polling.contains(&s)))
    })
}

#[test]
fn sigterm_stops_command_while_the_supervisor_is_blocked_on_syslog() {
    let dir = TempDir::new("sup-syslog-stuck");
    let receiver = Receiver::bind(&dir);
    let supervised = Supervised::start(
        &dir,
        &[
            "--syslog",
            "--syslog-socket",
            path_str(&receiver.path),
            "--",
            "sh",
            "-c",
            "seq 1 5000; exec sleep 1000000",
        ],
    );
    assert!(
        wait_stalled_on_syslog(supervised.pid, &receiver),
        "the supervisor never stalled on the full syslog socket: {:?}; {}",
        blocked_in(supervised.pid),
        supervised.command
    );
    // A syslog daemon that does not read (hung, or restarting) must not make the supervisor
    // deaf to a stop: SIGTERM has to reach COMMAND all the same.
    assert!(kill(supervised.pid, libc::SIGTERM));
    let stopped = wait_gone(supervised.child, HANDSHAKE);
    let state = blocked_in(supervised.pid);
    // Let it finish either way, reading what it sends.
    receiver.until_gone(supervised.pid);
    assert!(
        stopped,
        "COMMAND {} still ran {HANDSHAKE:?} after SIGTERM to its supervisor, stalled on the \
         full syslog socket (state, syscall, wchan: {state:?}); {}",
        supervised.child, supervised.command
    );
    supervised.assert_exits();
}

#[test]
fn syslog_relay_sends_a_long_line_in_pieces_before_its_newline() {
    let dir = TempDir::new("sup-syslog-longline");
    let receiver = Receiver::bind(&dir);
    let mut gate = Gate::new(&dir);
    // One line of a million bytes, its newline written only once the gate opens.
    let script =
        format!("head -c 1000000 /dev/zero | tr '\\0' x; read go < {}; echo", path_str(&gate.path));
    let supervised = Supervised::start(
        &dir,
        &["--syslog", "--syslog-socket", path_str(&receiver.path), "--", "sh", "-c", &script],
    );
    let out = pri(DAEMON, INFO);
    // Holding the line until its newline would let the supervisor's memory grow without bound.
    let mut messages = receiver.collect(HANDSHAKE, |m| !texts_at(m, out).is_empty());
    let rss = proc_status(supervised.pid).get("VmRSS").cloned().unwrap_or_default();
    assert!(
        !texts_at(&messages, out).is_empty(),
        "nothing of a 1000000-byte line was sent before its newline (supervisor VmRSS {rss}); {}",
        supervised.command
    );
    gate.open();
    messages.extend(receiver.until_gone(supervised.pid));
    supervised.assert_exits();
    messages.extend(receiver.drain());
    let pieces = texts_at(&messages, out);
    assert!(pieces.iter().all(|p| p.len() <= 1024), "a piece over 1024 bytes");
    assert_all_x(&pieces, 1_000_000, &supervised.command);
}

/// The complete lines of a file (a last line without its newline is left out).
fn whole_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end + 1]);
    complete.lines().map(str::to_string).collect()
}

#[test]
fn log_file_rotation_on_sighup_loses_and_repeats_no_line() {
    let dir = TempDir::new("sup-rotate");
    let out = dir.join("out.log");
    let rotated = dir.join("out.log.1");
    // SIGHUP is forwarded to COMMAND too: this one ignores it, or it would die of it.
    let script = "trap '' HUP; i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done";
    let supervised = Supervised::start(&dir, &["-o", path_str(&out), "--", "sh", "-c", script]);
    assert!(
        wait_until(HANDSHAKE, || whole_lines(&out).len() >= 5),
        "no output in {}: {}",
        out.display(),
        supervised.command
    );
    std::fs::rename(&out, &rotated).unwrap();
    assert!(kill(supervised.pid, libc::SIGHUP));
    assert!(
        wait_until(HANDSHAKE, || whole_lines(&out).len() >= 5),
        "{} was not reopened on SIGHUP: {}",
        out.display(),
        supervised.command
    );
    let pidfile = path_str(&supervised.pidfile);
    let stop = daemonize(&["--stop", "-p", pidfile]);
    assert!(
        stop.status.success(),
        "{}",
        describe(&format!("daemonize --stop -p {pidfile}"), &stop)
    );
    supervised.assert_exits();

    let before = std::fs::read_to_string(&rotated).unwrap();
    let after = std::fs::read_to_string(&out).unwrap();
    let shown = format!(
        "{}\n{}: {before:?}\n{}: {after:?}",
        supervised.command,
        rotated.display(),
        out.display()
    );
    assert!(!before.is_empty() && !after.is_empty(), "{shown}");
    assert!(
        !before.contains("daemonize") && !after.contains("daemonize"),
        "notices in stdout's file: {shown}"
    );
    let all = before + &after;
    assert!(all.ends_with('\n'), "{shown}");
    let numbers: Vec<&str> = all.lines().collect();
    let expected: Vec<String> = (0..numbers.len()).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "a gap, a repeat or a torn line: {shown}");
}

/// A COMMAND that traps each of `signals` by printing its name, says it is ready on fd 3 once
/// the traps are set, and waits on one long sleep (`wait` returns on each trapped signal).
fn trapping_script(signals: &[(&str, &str)]) -> String {
    let traps: String =
        signals.iter().map(|(signal, word)| format!("trap 'echo {word}' {signal}; ")).collect();
    format!("{traps}echo >&3; exec 3>&-; sleep 1000000 & while :; do wait $!; done")
}

fn count_lines(path: &Path, word: &str) -> usize {
    whole_lines(path).iter().filter(|line| *line == word).count()
}

#[test]
fn signals_sent_to_the_supervisor_reach_command_and_sigterm_stops_everything() {
    let dir = TempDir::new("sup-signals");
    let out = dir.join("out.log");
    let signals = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("WINCH", libc::SIGWINCH),
        ("CONT", libc::SIGCONT),
    ];
    let names: Vec<(&str, &str)> = signals.iter().map(|(name, _)| (*name, *name)).collect();
    let script = trapping_script(&names);
    let supervised = Supervised::start(
        &dir,
        &[
            "--wait-ready",
            "fd:3",
            "-o",
            path_str(&out),
            // With a log file, SIGHUP reaches COMMAND only when listed.
            "--forward",
            "HUP,INT,QUIT,USR1,USR2,WINCH,CONT",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    for (name, signal) in signals {
        let before = count_lines(&out, name);
        assert!(kill(supervised.pid, signal), "supervisor gone before SIG{name}");
        assert!(
            wait_until(HANDSHAKE, || count_lines(&out, name) > before),
            "SIG{name} did not reach COMMAND; output {:?}; {}",
            std::fs::read_to_string(&out),
            supervised.command
        );
    }
    let tree = daemonctx::process::descendants(supervised.pid as u32);
    assert!(tree.len() >= 2, "COMMAND and its sleep: {tree:?}");
    assert!(tree.contains(&(supervised.child as u32)), "{tree:?}");
    assert!(kill(supervised.pid, libc::SIGTERM));
    supervised.assert_exits();
    for pid in &tree {
        assert!(wait_gone(*pid as i32, HANDSHAKE), "{pid} outlived the supervisor: {tree:?}");
    }
    assert_eq!(daemonctx::process::group_members((supervised.child) as u32), Vec::<u32>::new());
}

/// What `pid` has open, sorted, whatever the descriptor numbers (a reopened file may get
/// another one).
fn open_files(pid: i32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = proc_fds(pid).into_iter().map(|(_, path)| path).collect();
    files.sort();
    files
}

#[test]
fn signal_storm_keeps_supervisor_and_command_alive_and_lines_whole() {
    let dir = TempDir::new("sup-storm");
    let out = dir.join("out.log");
    // The traps as in trapping_script, plus a background writer of numbered lines (its
    // subshell has default dispositions, but signals go to COMMAND only): a reopen on each
    // SIGHUP must lose none of them.
    let script = "trap 'echo HUP' HUP; trap 'echo USR1' USR1; trap 'echo END' USR2; \
                  (i=0; while :; do echo n$i; i=$((i+1)); sleep 0.01; done) 3>&- & \
                  echo >&3; exec 3>&-; sleep 1000000 & while :; do wait $!; done";
    let supervised = Supervised::start(
        &dir,
        &[
            "--wait-ready",
            "fd:3",
            "-o",
            path_str(&out),
            "--forward",
            "HUP,USR1,USR2",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let written = || numbered(&std::fs::read_to_string(&out).unwrap_or_default(), "n").len();
    assert!(wait_until(HANDSHAKE, || written() >= 5), "the writer never wrote");
    // Once idle: the channel to the launcher may close just after daemonize returned.
    assert!(wait_polling(supervised.pid), "{:?}", blocked_in(supervised.pid));
    let fds_before = open_files(supervised.pid);
    for i in 0..1000 {
        let signal = if i % 2 == 0 { libc::SIGHUP } else { libc::SIGUSR1 };
        assert!(kill(supervised.pid, signal), "supervisor gone after {i} signals");
    }
    assert!(kill(supervised.pid, libc::SIGUSR2));
    assert!(
        wait_until(HANDSHAKE, || count_lines(&out, "END") == 1),
        "SIGUSR2 after the storm did not reach COMMAND: {:?}; {}",
        std::fs::read_to_string(&out),
        supervised.command
    );
    // The writer went on through the storm: some of its lines come after it.
    let after_storm = written();
    assert!(wait_until(HANDSHAKE, || written() > after_storm + 5), "the writer stopped");
    assert!(alive(supervised.pid), "the supervisor died in the storm");
    assert!(alive(supervised.child), "COMMAND died in the storm");
    assert_eq!(try_pidfile(&supervised.child_pidfile), Some(supervised.child), "COMMAND restarted");
    assert!(
        wait_until(HANDSHAKE, || open_files(supervised.pid) == fds_before),
        "reopening leaked descriptors: {fds_before:?} then {:?}",
        open_files(supervised.pid)
    );
    assert!(kill(supervised.pid, libc::SIGTERM));
    supervised.assert_exits();

    let text = std::fs::read_to_string(&out).unwrap();
    let shown = format!("{}\noutput: {text:?}", supervised.command);
    assert!(text.ends_with('\n'), "{shown}");
    let lines: Vec<&str> = text.lines().collect();
    let whole = |line: &&str| {
        ["HUP", "USR1", "END"].contains(line)
            || line.strip_prefix('n').is_some_and(|n| n.parse::<u64>().is_ok())
    };
    assert!(lines.iter().all(whole), "torn line: {shown}");
    assert!(
        lines.contains(&"HUP") && lines.contains(&"USR1"),
        "HUP or USR1 never arrived: {shown}"
    );
    let numbers = numbered(&text, "n");
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "a numbered line was lost or repeated: {shown}");
}

#[test]
fn idle_supervisor_never_wakes_up() {
    let dir = TempDir::new("sup-idle");
    let supervised = Supervised::start(
        &dir,
        &[
            "-o",
            path_str(&dir.join("out")),
            "-e",
            path_str(&dir.join("err")),
            "--",
            "sleep",
            "1000",
        ],
    );
    assert!(
        wait_polling(supervised.pid),
        "the supervisor never waited in poll: {:?}",
        blocked_in(supervised.pid)
    );
    // The measurement window: the 10 idle seconds.
    let (t0, t1) = activity_over(supervised.pid, Duration::from_secs(10));
    let rss = proc_status(supervised.pid).get("VmRSS").cloned().unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "idle supervisor {}: VmRSS {rss}", supervised.pid);
    assert_eq!(t1.0, t0.0, "the idle supervisor was scheduled: context switches {t0:?} -> {t1:?}");
    assert_eq!(t1.1, t0.1, "the idle supervisor used CPU: ticks {t0:?} -> {t1:?}");
}

/// Whether a relayed pipe can be made to hold 1 MiB (`F_SETPIPE_SZ`): as root, or within
/// `/proc/sys/fs/pipe-max-size`.
fn pipes_hold_a_mebibyte() -> bool {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap_or_default();
    is_root() || max.trim().parse::<u64>().is_ok_and(|max| max >= 1 << 20)
}

/// The state letter of `pid` (`T` stopped, `Z` zombie), empty once it is gone.
fn state_of(pid: i32) -> String {
    blocked_in(pid).0
}

/// COMMAND writes 588,895 bytes (`seq 1 100000`, more than one read of the relay) and exits
/// while the supervisor is stopped, so that the supervisor wakes up to its exit and a full
/// pipe at once: every line, in order and whole, comes before the notice of its exit (stdout
/// and stderr in one file, where the notices go too).
#[test]
fn the_exit_notice_comes_after_everything_command_wrote() {
    if !pipes_hold_a_mebibyte() {
        skip("the_exit_notice_comes_after_everything_command_wrote needs pipe-max-size >= 1 MiB");
        return;
    }
    let dir = TempDir::new("sup-exit-order");
    let out = dir.join("out.log");
    let mut gate = Gate::new(&dir);
    let script = format!("read go < {}; seq 1 100000", gate.path.display());
    let log = path_str(&out);
    let args = ["--restart", "no", "-o", log, "-e", log, "--", "sh", "-c", &script];
    let supervised = Supervised::start(&dir, &args);
    assert!(wait_polling(supervised.pid), "{:?}", blocked_in(supervised.pid));
    assert!(kill(supervised.pid, libc::SIGSTOP));
    let stopped = wait_until(HANDSHAKE, || state_of(supervised.pid) == "T");
    if stopped {
        gate.open();
    }
    // The pipe takes all of it: COMMAND exits, a zombie until the supervisor goes on.
    let exited = stopped && wait_until(HANDSHAKE, || state_of(supervised.child) == "Z");
    assert!(kill(supervised.pid, libc::SIGCONT));
    assert!(stopped, "the supervisor never stopped: {}", supervised.command);
    assert!(exited, "COMMAND never exited: {:?}", blocked_in(supervised.child));
    supervised.assert_exits();

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let shown = |what: &str| {
        format!("{what}: {}; last lines {:?}", supervised.command, {
            let from = lines.len().saturating_sub(3);
            &lines[from..]
        })
    };
    assert!(text.ends_with('\n'), "{}", shown("a torn last line"));
    let notice = lines.iter().position(|l| l.contains("exited with status 0"));
    assert_eq!(notice, Some(lines.len() - 1), "{}", shown("the exit notice is not last"));
    let numbers: Vec<&str> =
        lines.iter().filter(|l| !l.starts_with("daemonize: ")).copied().collect();
    let expected: Vec<String> = (1..=100_000).map(|n| n.to_string()).collect();
    assert!(numbers == expected, "{}", shown("a line lost, torn or out of order"));
}

/// After relaying a stream (a full pipe's worth of reads), an idle supervisor again never
/// wakes up: nothing is left armed, and every line arrived whole and in order.
#[test]
fn idle_after_a_stream_supervisor_never_wakes_up() {
    let dir = TempDir::new("sup-idle-stream");
    let out = dir.join("out");
    let script = "seq 1 100000; exec sleep 1000";
    let supervised = Supervised::start(&dir, &["-o", path_str(&out), "--", "sh", "-c", script]);
    let all_there = || std::fs::read_to_string(&out).is_ok_and(|t| t.ends_with("\n100000\n"));
    assert!(wait_until(HANDSHAKE, all_there), "the stream never arrived: {}", supervised.command);
    assert!(
        wait_polling(supervised.pid),
        "the supervisor never waited in poll: {:?}",
        blocked_in(supervised.pid)
    );
    let (t0, t1) = activity_over(supervised.pid, Duration::from_secs(2));
    assert_eq!(t1.0, t0.0, "the idle supervisor was scheduled: context switches {t0:?} -> {t1:?}");
    assert_eq!(t1.1, t0.1, "the idle supervisor used CPU: ticks {t0:?} -> {t1:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let expected: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    assert!(text == expected, "a line lost, torn or out of order: {}", supervised.command);
}

/// COMMAND's last line without its newline and the supervisor's notice of its exit, in one
/// file (`-o F -e F`): the notice starts a line of its own, neither line is torn.
#[test]
fn the_exit_notice_never_joins_a_last_line_without_its_newline() {
    let dir = TempDir::new("sup-partial-line");
    let out = dir.join("out.log");
    let log = path_str(&out);
    let mut gate = Gate::new(&dir);
    let script = format!("read go < {}; printf 'no newline'", gate.path.display());
    let args = ["--restart", "no", "-o", log, "-e", log, "--", "sh", "-c", &script];
    let supervised = Supervised::start(&dir, &args);
    gate.open();
    supervised.assert_exits();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"no newline"), "{}: {text:?}", supervised.command);
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("daemonize: ") && l.contains("exited")),
        "{}: {text:?}",
        supervised.command
    );
    assert!(text.ends_with('\n'), "{}: {text:?}", supervised.command);
}
