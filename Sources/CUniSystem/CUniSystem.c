// Compiled as its own translation unit so that _GNU_SOURCE applies to the
// system headers here (a modular import of Glibc would ignore it).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "CUniSystem.h"

int cuni_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cuni_syncfs(int fd) {
    return syncfs(fd);
}

int cuni_filesystem_type(const char *path, long *type) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    *type = (long)info.f_type;
    return 0;
}


#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/// In the child: reports `error` at `step` to the parent and exits.
/// write and _exit are async-signal-safe.
static void cuni_child_fail(int pipe_fd, int step, int error) {
    cuni_spawn_failure failure = { error, step };
    ssize_t ignored = write(pipe_fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

/// dup2 that also works when `fd == target` (then only the close-on-exec flag is cleared).
static int cuni_move_fd(int fd, int target) {
    if (fd == target) return fcntl(target, F_SETFD, 0);
    while (dup2(fd, target) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

pid_t cuni_spawn(const char *path, char *const argv[], char *const envp[],
                 int stdin_fd, int stdout_fd, int stderr_fd,
                 const int *cgroup_fds, int cgroup_count, int max_fd,
                 cuni_spawn_failure *failure) {
    failure->error = 0;
    failure->step = -2;
    if (stdin_fd < 3 || stdout_fd < 3 || stderr_fd < 3) {
        failure->error = EINVAL;
        return -1;
    }
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        failure->error = errno;
        return -1;
    }
    // Every signal blocked across the fork: the child must not run one of
    // the parent's handlers before its dispositions are reset.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t child = fork();
    if (child == 0) {
        close(report[0]);
        if (setpgid(0, 0) != 0) cuni_child_fail(report[1], -2, errno);
        if (cuni_move_fd(stdin_fd, 0) != 0 || cuni_move_fd(stdout_fd, 1) != 0 || cuni_move_fd(stderr_fd, 2) != 0) {
            cuni_child_fail(report[1], -2, errno);
        }
        for (int i = 0; i < cgroup_count; i++) {
            ssize_t written;
            do { written = write(cgroup_fds[i], "0", 1); } while (written < 0 && errno == EINTR);
            if (written != 1) cuni_child_fail(report[1], i, written < 0 ? errno : EIO);
        }
        // Close-on-exec rather than closed: the report pipe and the cgroup
        // files stay usable until the exec, then vanish with it.
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < max_fd; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        // The raw system call: glibc's sigaction refuses its own reserved
        // signals (32, 33), and an ignored signal would survive the exec.
        struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } action;
        memset(&action, 0, sizeof action); // handler SIG_DFL, empty mask
        for (int signal = 1; signal < NSIG; signal++) {
            if (signal == SIGKILL || signal == SIGSTOP) continue;
            syscall(SYS_rt_sigaction, signal, &action, NULL, sizeof action.mask);
        }
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(path, argv, envp);
        cuni_child_fail(report[1], -1, errno);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    if (child < 0) {
        close(report[0]);
        failure->error = fork_error;
        return -1;
    }
    cuni_spawn_failure reported = { 0, 0 };
    size_t got = 0;
    while (got < sizeof reported) {
        ssize_t count = read(report[0], (char *)&reported + got, sizeof reported - got);
        if (count > 0) got += (size_t)count;
        else if (count < 0 && errno == EINTR) continue;
        else break;
    }
    close(report[0]);
    if (got == 0) return child; // EOF: the exec closed the pipe
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    *failure = got == sizeof reported ? reported : (cuni_spawn_failure){ EIO, -2 };
    return -1;
}
