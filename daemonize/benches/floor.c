/*
 * floor: the smallest correct daemonizer, the floor the bench measures every start against.
 *
 *     floor PIDFILE COMMAND [ARG...]
 *
 * The same protocol and the same guarantees at return as `daemonize -p PIDFILE COMMAND`,
 * and nothing else:
 *  - before the fork: COMMAND resolved on PATH; the pidfile opened O_NOFOLLOW|O_CLOEXEC and
 *    locked with an OFD lock (F_OFD_SETLK: a second start fails, naming the holder's file);
 *    /dev/null opened; a SOCK_SEQPACKET|SOCK_CLOEXEC report socket; PR_SET_CHILD_SUBREAPER,
 *    so that a daemon that fails is reaped here;
 *  - fork(2), setsid(2), fork(2); the intermediate child _exit(2)s;
 *    a read-only description of the pidfile (open(2) of /proc/self/fd/N, fstat(2)-checked);
 *  - in the daemon, async-signal-safe calls only: RLIMIT_CORE 0, umask(022), chdir("/"), an
 *    empty signal mask, every disposition back to SIG_DFL, /dev/null on 0, 1 and 2,
 *    close_range(2) of every other descriptor but the pidfile's two and the report socket,
 *    ftruncate(2) + pwrite(2) of the pid, the lock handed to the read-only description
 *    (F_RDLCK on both, dup2(2) onto the pidfile's number: COMMAND inherits the lock but cannot
 *    write the file), an "executing" record, execve(2);
 *  - the original process returns 0 only at end of file on the report socket after the
 *    "executing" record (CLOEXEC: execve succeeded), so the pidfile then names the exec'd
 *    daemon. A failed step is reported as "floor: cannot STEP: ERROR", the pidfile removed,
 *    and the exit status is 1.
 *
 * Compiled by benches/setup.sh (or by the bench itself) with the system `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { REC_EXECUTING = 1, REC_FAILED = 2 };

/* One record on the report socket: a tag, the step that failed, and the pid or the errno. */
struct record {
    int tag;
    int value;
    char step[24];
};

static const char *pidfile;

static void die(const char *step, const char *what, int error) {
    fprintf(stderr, "floor: cannot %s %s: %s\n", step, what, strerror(error));
    exit(1);
}

/* In the daemon: report the failed step and leave (write(2) and _exit(2) only). */
static void fail(int report, const char *step) {
    struct record r = {REC_FAILED, errno, {0}};
    strncpy(r.step, step, sizeof r.step - 1);
    send(report, &r, sizeof r, MSG_NOSIGNAL);
    _exit(127);
}

/* COMMAND as execve(2) needs it: itself when it has a slash, else its first match on PATH. */
static char *resolve(const char *command) {
    if (strchr(command, '/'))
        return strdup(command);
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *dir = path; *dir;) {
        size_t length = strcspn(dir, ":");
        char *candidate;
        if (asprintf(&candidate, "%.*s/%s", (int)length, dir, command) < 0)
            die("resolve", command, errno);
        if (access(candidate, X_OK) == 0)
            return candidate;
        free(candidate);
        dir += length + (dir[length] == ':');
    }
    die("find", command, ENOENT);
    return NULL;
}

/* close_range(2) of every descriptor from 3 up but the three in keep (sorted here). */
static int close_all_but(int keep[3]) {
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (keep[j] < keep[i]) {
                int t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
    unsigned int from = 3;
    for (int i = 0; i < 3; i++) {
        if ((unsigned int)keep[i] > from && syscall(SYS_close_range, from, keep[i] - 1, 0) != 0)
            return -1;
        from = keep[i] + 1;
    }
    return (int)syscall(SYS_close_range, from, ~0U, 0);
}

/* Between the second fork and execve(2): async-signal-safe calls only. */
static void daemon_side(int report, int lock, int reader, int null, const char *program,
                        char **argv) {
    struct rlimit zero = {0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) != 0)
        fail(report, "setrlimit");
    umask(022);
    if (chdir("/") != 0)
        fail(report, "chdir");
    sigset_t empty;
    sigemptyset(&empty);
    if (sigprocmask(SIG_SETMASK, &empty, NULL) != 0)
        fail(report, "sigprocmask");
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* EINVAL for the numbers glibc reserves: fine */
    for (int fd = 0; fd <= 2; fd++)
        if (dup2(null, fd) != fd)
            fail(report, "dup2");
    int keep[3] = {lock, reader, report};
    if (close_all_but(keep) != 0)
        fail(report, "close_range");
    char digits[16];
    int n = sizeof digits;
    pid_t pid = getpid();
    digits[--n] = '\n';
    do digits[--n] = '0' + pid % 10; while ((pid /= 10) > 0);
    if (ftruncate(lock, 0) != 0)
        fail(report, "ftruncate");
    if (pwrite(lock, digits + n, sizeof digits - n, 0) != (ssize_t)(sizeof digits - n))
        fail(report, "pwrite");
    struct flock shared = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    if (fcntl(lock, F_OFD_SETLK, &shared) != 0 || fcntl(reader, F_OFD_SETLK, &shared) != 0)
        fail(report, "fcntl");
    if (dup2(reader, lock) != lock) /* no FD_CLOEXEC on the copy: COMMAND holds the lock */
        fail(report, "dup2");
    struct record executing = {REC_EXECUTING, getpid(), {0}};
    if (send(report, &executing, sizeof executing, MSG_NOSIGNAL) != sizeof executing)
        _exit(127);
    execve(program, argv, environ);
    fail(report, "execve");
}

/* The original process: read records until end of file. */
static int await_report(int report, pid_t intermediate) {
    struct record r;
    int executing = 0;
    for (;;) {
        ssize_t got = recv(report, &r, sizeof r, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            die("read", "the report", errno);
        if (got == 0)
            break;
        if (r.tag == REC_EXECUTING)
            executing = 1;
        if (r.tag == REC_FAILED) {
            unlink(pidfile);
            while (waitpid(-1, NULL, 0) > 0) {} /* the intermediate child and the daemon */
            die(r.step, "in the daemon", r.value);
        }
    }
    waitpid(intermediate, NULL, 0);
    if (!executing) {
        unlink(pidfile);
        fprintf(stderr, "floor: the daemon died before it executed\n");
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor PIDFILE COMMAND [ARG...]\n");
        return 2;
    }
    pidfile = argv[1];
    char *program = resolve(argv[2]);
    int lock = open(pidfile, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);
    if (lock < 0)
        die("open pidfile", pidfile, errno);
    struct flock whole = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(lock, F_OFD_SETLK, &whole) != 0)
        die("lock pidfile", pidfile, errno);
    char self_fd[32];
    snprintf(self_fd, sizeof self_fd, "/proc/self/fd/%d", lock);
    int reader = open(self_fd, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    struct stat locked, reopened;
    if (reader < 0 || fstat(lock, &locked) != 0 || fstat(reader, &reopened) != 0 ||
        locked.st_ino != reopened.st_ino || locked.st_dev != reopened.st_dev)
        die("reopen pidfile", pidfile, errno ? errno : ESTALE);
    int null = open("/dev/null", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (null < 0)
        die("open", "/dev/null", errno);
    int ends[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
        die("create", "the report socket", errno);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        die("become", "a subreaper", errno);
    pid_t intermediate = fork();
    if (intermediate < 0) {
        unlink(pidfile);
        die("fork", "", errno);
    }
    if (intermediate == 0) {
        close(ends[0]);
        if (setsid() < 0)
            fail(ends[1], "setsid");
        pid_t daemon = fork();
        if (daemon < 0)
            fail(ends[1], "fork");
        if (daemon > 0)
            _exit(0);
        daemon_side(ends[1], lock, reader, null, program, argv + 2);
    }
    close(ends[1]);
    return await_report(ends[0], intermediate);
}
