//! The tools compared, and the command lines each runs: start, stop, supervise.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::OURS;
use crate::procfs;
use crate::wait::{find_tagged_sleep, running_pid_in, tagged_sleep_below, wait_for};

/// The programs compared, found at their Debian paths; `None` when not installed.
pub struct Tools {
    pub setsid: Option<PathBuf>,
    pub start_stop_daemon: Option<PathBuf>,
    /// daemonize(1): `/usr/sbin/daemonize` upstream, `/usr/bin/daemonize` in Debian 12.
    pub daemonize1: Option<PathBuf>,
    /// libslack's daemon(1).
    pub libslack: Option<PathBuf>,
    /// `benches/floor.c`, compiled with the system `cc` (see [`build_floor`]).
    pub floor: Option<PathBuf>,
    /// Our `daemonize` linked statically (`+crt-static`), as `setup.sh` builds it for release.
    pub ours_static: Option<PathBuf>,
    /// Why a tool of ours is missing, for the notes.
    pub why_missing: Vec<String>,
}

impl Tools {
    pub fn detect() -> Tools {
        let mut why_missing = Vec::new();
        let floor = build_floor().map_err(|why| why_missing.push(why)).ok();
        let ours_static = static_build().map_err(|why| why_missing.push(why)).ok();
        Tools {
            floor,
            ours_static,
            why_missing,
            setsid: first_existing(&["/usr/bin/setsid", "/bin/setsid"]),
            start_stop_daemon: first_existing(&[
                "/usr/sbin/start-stop-daemon",
                "/sbin/start-stop-daemon",
            ]),
            daemonize1: first_existing(&["/usr/sbin/daemonize", "/usr/bin/daemonize"]),
            libslack: first_existing(&["/usr/bin/daemon", "/usr/sbin/daemon"]),
        }
    }
}

/// Compiles `benches/floor.c` with `cc -O2` into the bench's scratch target directory.
///
/// # Errors
/// Why it could not: no `cc`, or the compiler's complaint.
pub fn build_floor() -> Result<PathBuf, String> {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/floor.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("floor");
    let result = Command::new("cc").args(["-O2", "-o"]).arg(&out).arg(source).output();
    match result {
        Ok(output) if output.status.success() => Ok(out),
        Ok(output) => Err(format!(
            "floor: `cc -O2 -o {} {source}` failed: {}",
            out.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => Err(format!("floor: cannot run `cc` ({e}): its rows are left out")),
    }
}

/// A C hello world (`puts`), compiled with `cc -O2` into the bench's scratch target directory:
/// the start-up cost of a small dynamically linked C program.
///
/// # Errors
/// Why it could not: no `cc`, or the compiler's complaint.
pub fn build_hello() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join("hello.c");
    std::fs::write(&source, "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")
        .map_err(|e| format!("hello: cannot write {}: {e}", source.display()))?;
    let out = dir.join("hello");
    match Command::new("cc").args(["-O2", "-o"]).arg(&out).arg(&source).output() {
        Ok(output) if output.status.success() => Ok(out),
        Ok(output) => {
            Err(format!("hello: cc failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
        Err(e) => Err(format!("hello: cannot run `cc` ({e}): its row is left out")),
    }
}

/// Our `daemonize` as `setup.sh` builds it for release, statically linked (`-C
/// target-feature=+crt-static`, `--target HOST`): `target/static/HOST/release/daemonize`, when it
/// is no older than the dynamically linked `target/release/daemonize` cargo just built.
///
/// # Errors
/// Why it is left out: not built, or stale.
pub fn static_build() -> Result<PathBuf, String> {
    let ours = Path::new(OURS);
    let target = ours.parent().and_then(Path::parent).ok_or("no target directory")?;
    let base = target.join("static");
    let found = std::fs::read_dir(&base)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("release/daemonize"))
        .find(|path| path.is_file());
    let Some(path) = found else {
        return Err(format!(
            "daemonize (ours, static): not built under {} (run `bash daemonize/benches/setup.sh`)",
            base.display()
        ));
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&path) < modified(ours) {
        return Err(format!(
            "daemonize (ours, static): {} is older than {OURS}: stale, left out (run `bash daemonize/benches/setup.sh` again)",
            path.display()
        ));
    }
    Ok(path)
}

pub fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|path| path.is_file())
}

/// The files and names of one run: a directory of its own, the pidfile, and the tag.
pub struct Run {
    pub dir: PathBuf,
    pub pidfile: PathBuf,
    /// The unique argument of `sleep` (`1000.<bench pid><run number>`), which finds the daemon.
    pub tag: String,
    /// The instance name libslack's daemon requires for a pidfile.
    pub name: String,
}

impl Run {
    /// What the tables show in place of the run's pidfile, tag and name.
    pub fn placeholder() -> Run {
        Run {
            dir: PathBuf::new(),
            pidfile: PathBuf::from("F"),
            tag: "1000".into(),
            name: "NAME".into(),
        }
    }
}

/// Builds a command's arguments for a run.
pub type Args = fn(&Run) -> Vec<OsString>;

/// How a tool's pidfile names the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// No pidfile (setsid).
    Nothing,
    /// The pid of `sleep` itself.
    Daemon,
    /// The pid of the supervisor whose child is `sleep`.
    Supervisor,
}

/// A command that starts `sleep TAG` as a daemon.
pub struct Starter {
    pub label: &'static str,
    pub program: PathBuf,
    /// What the tables call the program: ours is `daemonize`, the others their full path.
    pub shown_as: String,
    pub args: Args,
    pub names: Names,
}

/// The processes a start left running.
pub struct Started {
    /// The pid of `sleep TAG`.
    pub sleep: u32,
    /// The pid the pidfile names, if the tool writes one.
    pub named: Option<u32>,
}

impl Starter {
    /// The floor: `floor PIDFILE sleep TAG`.
    pub fn floor(program: &Path) -> Starter {
        Starter {
            label: "floor (benches/floor.c)",
            program: program.into(),
            shown_as: "floor".into(),
            args: floor_start,
            names: Names::Daemon,
        }
    }

    /// Our statically linked build.
    pub fn ours_static(program: &Path, args: Args, names: Names) -> Starter {
        Starter {
            label: "daemonize (ours, static)",
            program: program.into(),
            shown_as: "daemonize".into(),
            args,
            names,
        }
    }

    pub fn ours(args: Args, names: Names) -> Starter {
        Starter {
            label: "daemonize (ours)",
            program: OURS.into(),
            shown_as: "daemonize".into(),
            args,
            names,
        }
    }

    pub fn theirs(label: &'static str, program: &Path, args: Args, names: Names) -> Starter {
        Starter {
            label,
            program: program.into(),
            shown_as: program.display().to_string(),
            args,
            names,
        }
    }

    /// The command for `run`, with no standard input or output and stderr to a file.
    pub fn command(&self, run: &Run) -> Command {
        quiet_command(&self.program, (self.args)(run), run)
    }

    /// The command line as the tables show it.
    pub fn shown(&self) -> String {
        shown(&self.shown_as, &(self.args)(&Run::placeholder()))
    }

    /// Whether the daemon runs `sleep TAG` (has been executed, not merely forked) and, for the
    /// tools that write one, the pidfile names it or its supervisor. Cheap enough to poll: it
    /// reads only our children and grandchildren (as a subreaper, the bench adopts daemons).
    pub fn ready(&self, run: &Run) -> bool {
        let Some(sleep) = tagged_sleep_below(std::process::id(), &run.tag) else {
            return false;
        };
        match self.names {
            Names::Nothing => true,
            Names::Daemon => running_pid_in(&run.pidfile) == Some(sleep),
            Names::Supervisor => running_pid_in(&run.pidfile) == procfs::ppid(sleep),
        }
    }

    /// Checks, after the start, that `sleep TAG` runs and that the pidfile names it (or its
    /// supervisor), waiting a bounded time for tools that write the pidfile late.
    ///
    /// # Panics
    /// When the daemon or a valid pidfile does not appear within [`DEADLINE`].
    pub fn check_started(&self, run: &Run) -> Started {
        let what = format!("{}: `sleep {}`", self.label, run.tag);
        let sleep = wait_for(|| find_tagged_sleep(&run.tag))
            .unwrap_or_else(|| panic!("{what} is not running after the start"));
        let named = match self.names {
            Names::Nothing => None,
            Names::Daemon | Names::Supervisor => Some(
                wait_for(|| running_pid_in(&run.pidfile))
                    .unwrap_or_else(|| panic!("{what}: pidfile never named a running process")),
            ),
        };
        let expected = match self.names {
            Names::Nothing => None,
            Names::Daemon => Some(sleep),
            Names::Supervisor => procfs::ppid(sleep),
        };
        assert_eq!(named, expected, "{what}: the pidfile names another process");
        Started { sleep, named }
    }
}

/// A command with stdin and stdout on `/dev/null` and stderr to `run.dir/stderr`.
pub fn quiet_command(program: &Path, args: Vec<OsString>, run: &Run) -> Command {
    let stderr = File::create(run.dir.join("stderr")).expect("create the run's stderr file");
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    command
}

/// A command line for the tables: program and arguments, separated by spaces.
pub fn shown(program: &str, args: &[OsString]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Turns a list of arguments into the `Vec<OsString>` a [`Command`] takes.
pub fn os_args<const N: usize>(args: [&OsStr; N]) -> Vec<OsString> {
    args.iter().map(|arg| arg.to_os_string()).collect()
}

pub fn ours_start(run: &Run) -> Vec<OsString> {
    os_args(["-p".as_ref(), run.pidfile.as_ref(), "sleep".as_ref(), run.tag.as_ref()])
}

pub fn floor_start(run: &Run) -> Vec<OsString> {
    os_args([run.pidfile.as_ref(), "sleep".as_ref(), run.tag.as_ref()])
}

pub fn ours_stop(run: &Run) -> Vec<OsString> {
    os_args(["--stop".as_ref(), "-p".as_ref(), run.pidfile.as_ref()])
}

pub fn ours_supervise(run: &Run) -> Vec<OsString> {
    let (pidfile, tag) = (run.pidfile.as_ref(), run.tag.as_ref());
    os_args(["--supervise".as_ref(), "-p".as_ref(), pidfile, "--".as_ref(), "sleep".as_ref(), tag])
}

pub fn setsid_start(run: &Run) -> Vec<OsString> {
    os_args(["-f".as_ref(), "sleep".as_ref(), run.tag.as_ref()])
}

pub fn ssd_start(run: &Run) -> Vec<OsString> {
    let (pidfile, tag) = (run.pidfile.as_ref(), run.tag.as_ref());
    let options: [&OsStr; 5] = [
        "--start".as_ref(),
        "--background".as_ref(),
        "--make-pidfile".as_ref(),
        "--pidfile".as_ref(),
        pidfile,
    ];
    let mut args = os_args(options);
    args.extend(os_args(["--exec".as_ref(), "/bin/sleep".as_ref(), "--".as_ref(), tag]));
    args
}

pub fn ssd_stop(run: &Run) -> Vec<OsString> {
    let options: [&OsStr; 5] = [
        "--stop".as_ref(),
        "--pidfile".as_ref(),
        run.pidfile.as_ref(),
        "--retry".as_ref(),
        "TERM/5".as_ref(),
    ];
    os_args(options)
}

pub fn daemonize1_start(run: &Run) -> Vec<OsString> {
    os_args(["-p".as_ref(), run.pidfile.as_ref(), "/bin/sleep".as_ref(), run.tag.as_ref()])
}

/// libslack's daemon writes a pidfile only for a named instance: `--pidfile` needs `--name`.
pub fn libslack_start(run: &Run) -> Vec<OsString> {
    libslack_args(run, &[])
}

pub fn libslack_respawn(run: &Run) -> Vec<OsString> {
    libslack_args(run, &["--respawn"])
}

pub fn libslack_args(run: &Run, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = extra.iter().map(OsString::from).collect();
    args.push(format!("--name={}", run.name).into());
    args.push(format!("--pidfile={}", run.pidfile.display()).into());
    args.extend(os_args(["--".as_ref(), "/bin/sleep".as_ref(), run.tag.as_ref()]));
    args
}

/// A start command, and the stop command of the same tool.
pub struct Stopper {
    pub start: Starter,
    pub stop_args: Args,
}

impl Stopper {
    pub fn command(&self, run: &Run) -> Command {
        quiet_command(&self.start.program, (self.stop_args)(run), run)
    }

    pub fn shown(&self) -> String {
        shown(&self.start.shown_as, &(self.stop_args)(&Run::placeholder()))
    }
}
