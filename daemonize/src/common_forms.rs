//! The everyday command lines, read without building clap's definition: `[-p FILE] [-o FILE]
//! [-e FILE] [-a] [-u USER] ... [--] COMMAND [ARG]...`, `--stop -p FILE`, `--status -p FILE`.
//!
//! Building clap's definition of `daemonize` (some 40 options and their help) and parsing with
//! it cost more than all the rest of a start before the fork: about 160 µs of a 2 ms start on
//! the benchmark's machine, mostly allocations and first touches of memory (see the README's
//! benchmark section). The forms above are read here instead, by a scan of the arguments
//! against a short table, into the [`Cli`] clap would build ([`Cli::with_defaults`] for every
//! option not given). Anything else (another option, a repeated one, `-pFILE`, `-av`, a value
//! that starts with `-`, an empty value, a conflict, a missing COMMAND, `--help`) is left to
//! clap, so clap's errors and help stay the only ones: this module reports nothing. The unit
//! tests check, over some 15,000 generated command lines, that whatever this reads, clap reads
//! the same way.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::cli::{self, Cli};

/// An option the common forms may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Pidfile,
    Lock,
    Stdout,
    Stderr,
    Chdir,
    User,
    Append,
    Verbose,
    Foreground,
    Supervise,
    Stop,
    Status,
}

/// An option's names, as clap's definition (`cli.rs`) gives them.
struct Spec {
    short: Option<u8>,
    long: &'static str,
    known: Known,
}

/// The options read here.
const OPTIONS: &[Spec] = &[
    Spec { short: Some(b'p'), long: "pidfile", known: Known::Pidfile },
    Spec { short: Some(b'l'), long: "lock", known: Known::Lock },
    Spec { short: Some(b'o'), long: "stdout", known: Known::Stdout },
    Spec { short: Some(b'e'), long: "stderr", known: Known::Stderr },
    Spec { short: Some(b'c'), long: "chdir", known: Known::Chdir },
    Spec { short: Some(b'u'), long: "user", known: Known::User },
    Spec { short: Some(b'a'), long: "append", known: Known::Append },
    Spec { short: Some(b'v'), long: "verbose", known: Known::Verbose },
    Spec { short: None, long: "foreground", known: Known::Foreground },
    Spec { short: None, long: "supervise", known: Known::Supervise },
    Spec { short: None, long: "stop", known: Known::Stop },
    Spec { short: None, long: "status", known: Known::Status },
];

impl Known {
    /// Whether the option takes a value (the others are flags).
    fn takes_value(self) -> bool {
        use Known::*;
        matches!(self, Pidfile | Lock | Stdout | Stderr | Chdir | User)
    }
}

/// `args` (the program's name first) read as clap would, when they are one of the common forms;
/// `None` for anything else, which clap then reads.
///
/// ```text
/// daemonize -p /run/app.pid -o /var/log/app.log -e /var/log/app.log -a -- /usr/bin/app -x
/// ```
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let mut cli = Cli::with_defaults();
    let mut given = Vec::with_capacity(OPTIONS.len());
    let mut rest = args.get(1..)?.iter();
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" || !bytes.starts_with(b"-") {
            let first = (bytes != b"--").then_some(arg);
            cli.command = first.into_iter().chain(rest).cloned().collect();
            break;
        }
        let (known, attached) = option(bytes)?;
        if given.contains(&known) {
            return None; // clap refuses an option given twice
        }
        given.push(known);
        let value = match (known.takes_value(), attached) {
            (true, Some(value)) => value,
            (true, None) => rest.next()?.as_os_str(),
            (false, None) => {
                set_flag(&mut cli, known);
                continue;
            }
            (false, Some(_)) => return None,
        };
        if value.is_empty() || value.as_bytes().starts_with(b"-") {
            return None;
        }
        set_value(&mut cli, known, value)?;
    }
    consistent(&cli).then_some(cli)
}

/// The option `arg` names (`-p`, `--pidfile`, `--pidfile=VALUE`), with a value given after `=`.
fn option(arg: &[u8]) -> Option<(Known, Option<&OsStr>)> {
    if let Some(long) = arg.strip_prefix(b"--") {
        let (name, value) = match long.iter().position(|b| *b == b'=') {
            Some(at) => (&long[..at], Some(OsStr::from_bytes(&long[at + 1..]))),
            None => (long, None),
        };
        let spec = OPTIONS.iter().find(|spec| spec.long.as_bytes() == name)?;
        return Some((spec.known, value));
    }
    match arg {
        [b'-', letter] => {
            Some((OPTIONS.iter().find(|spec| spec.short == Some(*letter))?.known, None))
        }
        _ => None,
    }
}

/// Sets the flag `known` stands for.
fn set_flag(cli: &mut Cli, known: Known) {
    match known {
        Known::Append => cli.append = true,
        Known::Verbose => cli.verbose = true,
        Known::Foreground => cli.foreground = true,
        Known::Supervise => cli.supervise = true,
        Known::Stop => cli.stop = true,
        Known::Status => cli.status = true,
        _ => unreachable!("{known:?} takes a value"),
    }
}

/// Sets the option `known` stands for to `value`; `None` when clap's value parser refuses it.
fn set_value(cli: &mut Cli, known: Known, value: &OsStr) -> Option<()> {
    let path = || Some(PathBuf::from(value));
    match known {
        Known::Pidfile => cli.pidfile = path(),
        Known::Lock => cli.lock = path(),
        Known::Stdout => cli.stdout = path(),
        Known::Stderr => cli.stderr = path(),
        Known::Chdir => cli.chdir = path(),
        Known::User => cli.user = Some(cli::parse_user(value.to_str()?).ok()?),
        _ => unreachable!("{known:?} is a flag"),
    }
    Some(())
}

/// What clap's definition requires of these options: a mode (`--stop`, `--status`) with
/// `--pidfile`, without COMMAND and without the other mode; otherwise a COMMAND.
fn consistent(cli: &Cli) -> bool {
    match (cli.stop, cli.status) {
        (false, false) => !cli.command.is_empty(),
        (true, true) => false,
        _ => cli.pidfile.is_some() && cli.command.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// What `main` gets from clap for `args`: the parsed command line, or clap's (or the
    /// misplaced option's) message.
    fn clap_reads(args: &[OsString]) -> Result<Cli, String> {
        let mut matches = Cli::command().try_get_matches_from(args).map_err(|e| e.to_string())?;
        if let Some(misplaced) = cli::misplaced_option(&matches) {
            return Err(misplaced);
        }
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.to_string())
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        std::iter::once("daemonize").chain(args.iter().copied()).map(OsString::from).collect()
    }

    /// Fails unless clap reads `args` as [`parse`] does, whenever [`parse`] reads them.
    /// Returns whether [`parse`] read them.
    fn agrees_with_clap(args: &[OsString]) -> bool {
        let Some(ours) = parse(args) else { return false };
        match clap_reads(args) {
            Ok(clap) => assert_eq!(format!("{ours:?}"), format!("{clap:?}"), "{args:?}"),
            Err(e) => panic!("{args:?}: read here, but clap refuses it: {e}"),
        }
        true
    }

    /// Every way to write one option of the table: short, long, and long with `=`.
    fn spellings(short: Option<u8>, long: &str, value: Option<&str>) -> Vec<Vec<String>> {
        let mut ways = Vec::new();
        let mut with = |name: String| match value {
            Some(value) => ways.push(vec![name, value.to_string()]),
            None => ways.push(vec![name]),
        };
        if let Some(short) = short {
            with(format!("-{}", short as char));
        }
        with(format!("--{long}"));
        if let Some(value) = value {
            ways.push(vec![format!("--{long}={value}")]);
        }
        ways
    }

    #[test]
    fn everyday_command_lines_are_read_here_as_clap_reads_them() {
        let everyday: &[&[&str]] = &[
            &["-p", "/run/app.pid", "sleep", "1000"],
            &[
                "-p",
                "/run/app.pid",
                "-o",
                "/var/log/app.log",
                "-e",
                "/var/log/app.log",
                "-a",
                "app",
            ],
            &["-p", "F", "-o", "L", "-e", "L", "-a", "-u", "www-data", "--", "/usr/bin/app", "-x"],
            &["--stop", "-p", "/run/app.pid"],
            &["--status", "--pidfile", "/run/app.pid"],
            &["--supervise", "-p", "/run/app.pid", "--", "sleep", "1000"],
            &["--foreground", "--", "./server", "--port", "8080"],
            &["-c", "/srv", "-u", "1001", "./app", "-p", "not ours"],
        ];
        for args in everyday {
            let args = os(args);
            assert!(agrees_with_clap(&args), "{args:?} is left to clap");
        }
    }

    #[test]
    fn generated_command_lines_are_read_as_clap_reads_them_or_left_to_it() {
        let values = ["/run/a.pid", "x=y", "caf\u{e9}", "1001"];
        let tails: &[&[&str]] = &[
            &["sleep", "1"],
            &["--", "sleep", "-p", "x"],
            &["sleep", "--stop", "-p", "x"],
            &["--", "-x"],
            &["", "x"],
            &[],
            &["--"],
        ];
        let (mut read, mut total) = (0, 0);
        for first in 0..OPTIONS.len() {
            for second in first..OPTIONS.len() {
                for third in second..OPTIONS.len() {
                    for way in 0..3 {
                        let mut args = vec!["daemonize".to_string()];
                        for (n, index) in [first, second, third].into_iter().enumerate() {
                            let spec = &OPTIONS[index];
                            let value = spec.known.takes_value().then_some(values[(way + n) % 4]);
                            let ways = spellings(spec.short, spec.long, value);
                            args.extend(ways[(way + n) % ways.len()].clone());
                        }
                        for tail in tails {
                            let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
                            args.extend(tail.iter().map(OsString::from));
                            total += 1;
                            read += usize::from(agrees_with_clap(&args));
                            let last = args.len() - 1;
                            args.swap(1, last); // an option last, or COMMAND first
                            total += 1;
                            read += usize::from(agrees_with_clap(&args));
                        }
                    }
                }
            }
        }
        assert!(read > total / 10, "only {read} of {total} command lines were read here");
    }

    #[test]
    fn odd_command_lines_are_left_to_clap() {
        let odd: &[&[&str]] = &[
            &["-p", "F", "-p", "G", "sleep"],
            &["-p"],
            &["-p", "-o", "F", "sleep"],
            &["--pidfile=", "sleep"],
            &["-p", "", "sleep"],
            &["-pF", "sleep"],
            &["-av", "sleep"],
            &["--pid", "F", "sleep"],
            &["--append=yes", "sleep"],
            &["-u", "4294967295", "sleep"],
            &["-u", "", "sleep"],
            &["--stop"],
            &["--stop", "--status", "-p", "F"],
            &["--stop", "-p", "F", "sleep"],
            &["-p", "F"],
            &["-p", "F", "--"],
            &["-", "sleep"],
            &["--help"],
            &["-h"],
            &["--version"],
            &["--retry", "5", "--stop", "-p", "F"],
            &[],
        ];
        for args in odd {
            let args = os(args);
            assert!(parse(&args).is_none(), "{args:?} was read here");
        }
        let not_utf8 = OsString::from(OsStr::from_bytes(b"\xff"));
        let args = vec!["daemonize".into(), "-u".into(), not_utf8, "sleep".into()];
        assert!(parse(&args).is_none());
    }

    #[test]
    fn paths_that_are_not_utf8_are_read_as_clap_reads_them() {
        let odd = OsString::from(OsStr::from_bytes(b"/tmp/\xff.pid"));
        let args = vec!["daemonize".into(), "-p".into(), odd, "sleep".into(), "\u{e9}".into()];
        assert!(agrees_with_clap(&args));
    }

    #[test]
    fn the_defaults_are_clap_s() {
        let args = os(&["sleep"]);
        let clap = clap_reads(&args).expect("clap reads a bare COMMAND");
        let mut ours = Cli::with_defaults();
        ours.command = vec!["sleep".into()];
        assert_eq!(format!("{ours:?}"), format!("{clap:?}"));
    }
}
