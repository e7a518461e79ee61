//! Renders `man/daemonize.1` from the clap definition in `src/cli.rs`, plus the sections clap
//! does not know: EXIT STATUS, SIGNALS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO. Shared by `man/generate.rs` and the
//! freshness test in `tests/man_page.rs`.

use clap::CommandFactory;

#[path = "../src/cli.rs"]
#[allow(dead_code)]
mod cli;

/// The whole man page, as roff.
pub fn render() -> Vec<u8> {
    let man = clap_mangen::Man::new(cli::Cli::command()).section("1").manual("User Commands");
    let mut page = Vec::new();
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();
    page.extend_from_slice(exit_status_section().as_bytes());
    page.extend_from_slice(SIGNALS_SECTION.as_bytes());
    page.extend_from_slice(ENVIRONMENT_SECTION.as_bytes());
    page.extend_from_slice(init_systems_section().as_bytes());
    page.extend_from_slice(FILES_SECTION.as_bytes());
    page.extend_from_slice(examples_section().as_bytes());
    page.extend_from_slice(SEE_ALSO_SECTION.as_bytes());
    man.render_version_section(&mut page).unwrap();
    page
}

/// EXIT STATUS, from the tables `--help` shows too.
fn exit_status_section() -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\nWhen starting a daemon:\n");
    for (code, meaning) in cli::START_EXIT_STATUS {
        let code = code.map_or("N".to_string(), |c| c.to_string());
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}.\n",
            escape(&code),
            escape(&capitalised(meaning))
        ));
    }
    let paragraphs = [
        format!("With --status (the LSB init-script codes): {}.", cli::status_exit_status()),
        format!("With --stop: {}.", cli::stop_exit_status()),
        format!("With --send: {}.", cli::send_exit_status()),
        format!("{}.", cli::SUPERVISOR_EXIT_STATUS),
    ];
    for paragraph in paragraphs {
        roff.push_str(&format!(".PP\n{}\n", escape(&paragraph)));
    }
    roff
}

/// INIT SYSTEMS AND CONTAINERS: which mode under which init, from the table `--help` shows.
fn init_systems_section() -> String {
    let mut roff = String::from(".SH \"INIT SYSTEMS AND CONTAINERS\"\n");
    for (init, how) in cli::INIT_SYSTEMS {
        roff.push_str(&format!(".TP\n\\fB{}\\fR\n{}.\n", escape(init), escape(how)));
    }
    roff.push_str(&format!(".PP\n{}.\n", escape(cli::FOREGROUND_DIRECTORY)));
    roff.push_str(
        ".PP\nUnits to copy: \\fIexamples/systemd/\\fR (forking, simple, notify, and a \
         socket\\-activated \\fI.socket\\fR and \\fI.service\\fR pair).\n",
    );
    roff
}

/// EXAMPLES, from the list `--help` shows, plus the systemd use.
fn examples_section() -> String {
    let mut roff = String::from(".SH EXAMPLES\n");
    for (what, command) in cli::EXAMPLES {
        roff.push_str(&format!(
            ".PP\n{}\n.PP\n.nf\n.RS\n{}\n.RE\n.fi\n",
            escape(what),
            escape(command)
        ));
    }
    roff.push_str(SYSTEMD_EXAMPLE);
    roff
}

/// Escapes text for roff: backslashes, and hyphens that are minus signs in options.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

const SYSTEMD_EXAMPLE: &str = r#".PP
A systemd service of \fBType=forking\fR with \fBPIDFile=/run/app.pid\fR runs
\fBdaemonize \-p /run/app.pid \-\- /usr/bin/app\fR; one of \fBType=simple\fR adds \fB\-\-foreground\fR.
"#;

const SIGNALS_SECTION: &str = r#".SH SIGNALS
In exec mode the daemon is COMMAND itself: every signal goes to COMMAND, which starts with
every disposition at its default and an empty signal mask. \fB\-\-stop\fR sends \fB\-\-signal\fR
(SIGTERM) to its process group, then follows \fB\-\-retry\fR.
.PP
Under \fB\-\-supervise\fR the pidfile names the supervisor, which does this with each signal:
.TP
\fBSIGTERM\fR
Stops: SIGTERM to COMMAND's process group and every descendant, SIGKILL after
\fB\-\-kill\-after\fR, then the supervisor exits with COMMAND's status.
.TP
\fBSIGHUP\fR
With log files (\fB\-o\fR, \fB\-e\fR): reopens them, for log rotation, and nothing else unless
\fB\-\-forward\fR lists HUP. A reopen that fails (the directory is not writable by \fB\-u\fR's
user and no new file was made for it) is written into the old file, which output keeps going
to, and to syslog. Without log files, SIGHUP is passed on to COMMAND.
.TP
\fBSIGINT\fR, \fBSIGQUIT\fR, \fBSIGUSR1\fR, \fBSIGUSR2\fR, \fBSIGWINCH\fR, \fBSIGCONT\fR
Passed on to COMMAND, unless \fB\-\-forward\fR lists others (those not listed are then ignored).
.TP
\fBSIGCHLD\fR
Reaps COMMAND and whatever it orphaned; restarts by \fB\-\-restart\fR.
.TP
\fBSIGRTMIN\fR
Sent by \fBdaemonize \-\-send\fR \fISIGNAL\fR, with \fISIGNAL\fR as its queued value: the
supervisor passes \fISIGNAL\fR on to COMMAND, whatever \fB\-\-forward\fR says. A plain
SIGRTMIN (\fBkill\fR(1), no value) is passed on like the other signals.
.PP
Other signals have their default action. To signal COMMAND in either mode, use
\fBdaemonize \-\-send\fR \fISIGNAL\fR \fB\-p\fR \fIPIDFILE\fR (a reload: \fB\-\-send HUP\fR).
"#;

const ENVIRONMENT_SECTION: &str = r#".SH ENVIRONMENT
COMMAND gets daemonize's environment, or with \fB\-\-clear\-env\fR an empty one, plus the
\fB\-E\fR variables.
.TP
\fBPATH\fR
Where a COMMAND without a slash is looked up (\fI/usr/bin:/bin\fR when unset), from the directory
daemonize was started in, before any \fB\-c\fR or \fB\-\-chroot\fR; with \fB\-\-chroot\fR, inside
the new root. A COMMAND with a slash is relative to the directory daemonize was started in.
.TP
\fBNOTIFY_SOCKET\fR
Set for COMMAND by \fB\-\-wait\-ready notify\fR (first start only under \fB\-\-supervise\fR).
"#;

const FILES_SECTION: &str = r#".SH FILES
.TP
\fIPIDFILE\fR (\fB\-p\fR)
Holds the daemon's pid and a newline. The daemon keeps it open with an exclusive
open-file-description lock (\fBfcntl\fR(2) \fBF_OFD_SETLK\fR) for as long as it runs, so a
pidfile that exists but is not locked is stale, whatever pid it names. A symbolic link, or an
existing world-writable file, is refused. Removed by \fB\-\-stop\fR.
.TP
\fILOCKFILE\fR (\fB\-l\fR)
Locked the same way for the daemon's lifetime; its content is left alone and it is not removed.
.TP
\fICHILD_PIDFILE\fR (\fB\-\-child\-pidfile\fR)
Names COMMAND while it runs under \fB\-\-supervise\fR (empty between restarts). The supervisor
removes it when it exits; under \fB\-u\fR it may lack the right to, and
\fBdaemonize \-\-stop \-p\fR \fIPIDFILE\fR \fB\-\-child\-pidfile\fR \fICHILD_PIDFILE\fR removes it.
.TP
\fILOGFILE\fR (\fB\-o\fR, \fB\-e\fR)
COMMAND's output; \fB\-o\fR and \fB\-e\fR may name the same file, which is then opened once and
shared, as a shell's \fB>F 2>&1\fR. Under \fB\-\-supervise\fR the supervisor appends to it and
reopens it on SIGHUP, as \fB\-u\fR's user: with logrotate, \fBcreate 0640\fR \fIUSER GROUP\fR
makes the new file it can open (see \fIexamples/logrotate.conf\fR).
.TP
\fI/usr/local/bin/daemonize\fR
Where \fBcargo install \-\-path daemonize \-\-root /usr/local\fR puts it, and where the examples
look for it. Debian's unrelated \fI/usr/bin/daemonize\fR takes other options; \fBdaemonize
\-\-version\fR prints "daemonize \fIVERSION\fR (daemonctx)" for this one.
"#;

const SEE_ALSO_SECTION: &str = r#".SH "SEE ALSO"
\fBstart\-stop\-daemon\fR(8), \fBdaemon\fR(8), \fBsetsid\fR(1), \fBsystemd.service\fR(5),
\fBflock\fR(1), \fBfcntl\fR(2), \fBpidfd_open\fR(2), \fBclose_range\fR(2), \fBsd_notify\fR(3),
\fBsd_listen_fds\fR(3), \fBsystemd.socket\fR(5), \fBtini\fR(1)
"#;
