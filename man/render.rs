//! Renders `man/daemonize.1` from the clap definition in `bin/cli.rs`, plus the sections clap
//! does not know: EXIT STATUS, FILES, EXAMPLES, SEE ALSO. Shared by `man/generate.rs` and the
//! freshness test in `tests/man_page.rs`.

use clap::CommandFactory;

#[path = "../bin/cli.rs"]
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
    page.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    man.render_version_section(&mut page).unwrap();
    page
}

const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
When starting a daemon:
.TP
\fB0\fR
COMMAND runs as a daemon; the pidfile holds its pid.
.TP
\fB1\fR
Already running: the pidfile or lock file is held (the message names the pid).
.TP
\fB2\fR
Usage error: a bad option or value, or no COMMAND.
.TP
\fB3\fR
Unknown user or group.
.TP
\fB4\fR
Bad directory: \fB\-c\fR or \fB\-\-chroot\fR is missing or not a directory.
.TP
\fB5\fR
An output file (\fB\-o\fR, \fB\-e\fR) cannot be opened.
.TP
\fB6\fR
The pidfile or lock file cannot be used (a symbolic link, a missing directory, permissions).
.TP
\fB7\fR
Another setup step failed; the message names it.
.TP
\fB126\fR
COMMAND exists but cannot be executed.
.TP
\fB127\fR
COMMAND was not found.
.PP
With \fB\-\-status\fR (the LSB init-script codes): \fB0\fR running, \fB1\fR dead but the pidfile
exists, \fB3\fR not running, \fB4\fR cannot tell.
.PP
With \fB\-\-stop\fR: \fB0\fR stopped, or was not running; \fB2\fR still running after the
schedule; \fB3\fR other trouble.
.SH FILES
.TP
\fIPIDFILE\fR (\fB\-p\fR)
Holds the daemon's pid and a newline. The daemon keeps it open with an exclusive
open-file-description lock (\fBfcntl\fR(2) \fBF_OFD_SETLK\fR) for as long as it runs, so a
pidfile that exists but is not locked is stale, whatever pid it names. A symbolic link, or an
existing world-writable file, is refused. Removed by \fB\-\-stop\fR.
.TP
\fILOCKFILE\fR (\fB\-l\fR)
Locked the same way for the daemon's lifetime; its content is left alone and it is not removed.
.SH EXAMPLES
Start a server as a daemon, logging to a file, as user www\-data:
.PP
.nf
.RS
daemonize \-p /run/app.pid \-o /var/log/app.log \-a \-u www\-data \-\- /usr/bin/app \-\-port 8080
.RE
.fi
.PP
Check it and stop it from an init script: SIGTERM to its process group, SIGKILL after 30 seconds:
.PP
.nf
.RS
daemonize \-\-status \-p /run/app.pid
daemonize \-\-stop \-p /run/app.pid \-\-retry TERM/30/KILL/5
.RE
.fi
.PP
A systemd service of \fBType=forking\fR with \fBPIDFile=/run/app.pid\fR runs
\fBdaemonize \-p /run/app.pid \-\- /usr/bin/app\fR; one of \fBType=simple\fR adds \fB\-\-foreground\fR.
.SH "SEE ALSO"
\fBstart\-stop\-daemon\fR(8), \fBdaemon\fR(8), \fBsetsid\fR(1), \fBsystemd.service\fR(5),
\fBflock\fR(1), \fBfcntl\fR(2), \fBpidfd_open\fR(2), \fBclose_range\fR(2)
"#;
