complete -c daemonize -l send -d 'Send SIGNAL to the daemon\'s COMMAND (through its supervisor, if any) and return' -r
complete -c daemonize -s p -l pidfile -d 'Lock FILE and write the daemon\'s pid into it' -r -F
complete -c daemonize -l pidfile-mode -d 'Mode of a newly created pidfile or lock file, in octal' -r
complete -c daemonize -s l -l lock -d 'Lock FILE for as long as the daemon runs, without writing to it' -r -F
complete -c daemonize -s o -l stdout -d 'Send COMMAND\'s standard output to FILE' -r -F
complete -c daemonize -s e -l stderr -d 'Send COMMAND\'s standard error to FILE' -r -F
complete -c daemonize -s c -l chdir -d 'Working directory of COMMAND (inside the chroot, if any) [default: / when detached or chrooted; in the foreground, the directory daemonize was started in]' -r -F
complete -c daemonize -s u -l user -d 'Run as USER (a name or a numeric uid), with its primary group and supplementary groups' -r
complete -c daemonize -l group -d 'Run with GROUP (a name or a numeric gid) instead of the user\'s primary group' -r
complete -c daemonize -l umask -d 'File mode creation mask, in octal (022 as systemd gives services)' -r
complete -c daemonize -l chroot -d 'Change the root directory to DIR before running COMMAND' -r -F
complete -c daemonize -l preserve-fd -d 'Keep file descriptor N open for COMMAND (repeatable)' -r
complete -c daemonize -s E -l env -d 'Set NAME to VALUE in COMMAND\'s environment (repeatable)' -r
complete -c daemonize -l signal -d 'Signal that --stop sends first' -r
complete -c daemonize -l retry -d 'What --stop does: SIGNAL/SECS/SIGNAL/SECS..., or SECS for SIGNAL/SECS/KILL/SECS [default: SIGNAL/30]' -r
complete -c daemonize -l restart -d 'When to start COMMAND again after it exits' -r -f -a "no\t'Never'
on-failure\t'When COMMAND exits non-zero or is killed by a signal'
always\t'Whenever COMMAND exits'"
complete -c daemonize -l restart-delay -d 'Delay before the first restart, doubled at each one after (fractions allowed, at least 0.1)' -r
complete -c daemonize -l restart-max-delay -d 'Longest delay between restarts; a run this long resets the delay (at least 0.1)' -r
complete -c daemonize -l max-restarts -d 'Give up after N restarts within --restart-window, and exit non-zero' -r
complete -c daemonize -l restart-window -d 'The window --max-restarts counts in' -r
complete -c daemonize -l kill-after -d 'On stop, time between SIGTERM and SIGKILL for COMMAND and all it started' -r
complete -c daemonize -l child-pidfile -d 'Write COMMAND\'s pid into FILE (the pidfile names the supervisor); with --stop, remove it once stopped' -r -F
complete -c daemonize -l forward -d 'Signals the supervisor passes on to COMMAND, comma-separated [default: every catchable signal but TERM and CHLD; HUP only when there is no -o or -e]' -r
complete -c daemonize -l syslog -d 'Send COMMAND\'s output to syslog, one message per line' -r
complete -c daemonize -l syslog-tag -d 'Tag of the syslog messages [default: COMMAND\'s basename]' -r
complete -c daemonize -l syslog-socket -d 'Syslog socket' -r -F
complete -c daemonize -l syslog-stdout-priority -d 'Priority of COMMAND\'s stdout lines' -r
complete -c daemonize -l syslog-stderr-priority -d 'Priority of COMMAND\'s stderr lines' -r
complete -c daemonize -l wait-ready -d 'Return only once COMMAND says it is ready: `notify` (READY=1 on $NOTIFY_SOCKET) or `fd:N` (a newline written to fd N)' -r
complete -c daemonize -l ready-timeout -d 'How long to wait for readiness before stopping COMMAND' -r
complete -c daemonize -l status -d 'Report whether the daemon named by the pidfile runs (LSB status codes)'
complete -c daemonize -l stop -d 'Stop the daemon named by the pidfile, with its process group'
complete -c daemonize -s a -l append -d 'Append to the output files instead of truncating them (--supervise always appends)'
complete -c daemonize -l foreground -d 'Do not fork: set up, then execute COMMAND in place, or supervise it from here (systemd Type=simple or notify, containers)'
complete -c daemonize -l core -d 'Allow core dumps (by default RLIMIT_CORE is set to 0)'
complete -c daemonize -l clear-env -d 'Start COMMAND with an empty environment, plus the -E variables'
complete -c daemonize -l supervise -d 'Stay as a supervisor that runs COMMAND as its child (restarts, log relay, clean stop)'
complete -c daemonize -l forward-to-group -d 'Pass the signals the supervisor gets on to COMMAND\'s whole process group, not only to COMMAND (as tini -g)'
complete -c daemonize -s v -l verbose -d 'Say on standard error what was done'
complete -c daemonize -s h -l help -d 'Print help (see more with \'--help\')'
complete -c daemonize -s V -l version -d 'Print version'
