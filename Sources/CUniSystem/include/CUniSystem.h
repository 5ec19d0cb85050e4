#ifndef CUNISYSTEM_H
#define CUNISYSTEM_H

#include <sys/types.h>

/// `pipe2(fds, O_CLOEXEC)`: a pipe whose ends are close-on-exec from the
/// start (`pipe2` is likewise declared only under `_GNU_SOURCE`).
/// Returns 0, or -1 with errno set.
int cuni_pipe_cloexec(int fds[2]);

/// `syncfs(fd)`: flushes every file of the filesystem holding `fd` in one
/// call (declared only under `_GNU_SOURCE`). Returns 0, or -1 with errno set.
int cuni_syncfs(int fd);

/// `statfs(path)`'s `f_type` (the filesystem's magic number) in `*type`.
/// Returns 0, or -1 with errno set.
int cuni_filesystem_type(const char *path, long *type);

/// What a failed `cuni_spawn` could not do; `index` of a cgroup join is
/// the position of its descriptor in `cgroup_fds`.
typedef struct {
    /// The errno value (0: no failure).
    int error;
    /// -1: the exec; -2: setting up the child (process group, descriptors,
    /// signals); 0 and up: writing to cgroup_fds[step].
    int step;
} cuni_spawn_failure;

/// Forks and execs `path` with `argv` and `envp`. In the child, with only
/// async-signal-safe calls between the fork and the exec:
/// - its own process group (`setpgid(0, 0)`);
/// - `stdin_fd`, `stdout_fd`, `stderr_fd` become 0, 1 and 2 (they must be 3 or more);
/// - "0" is written to each of `cgroup_fds` (open `cgroup.procs` files):
///   the child moves itself into those cgroups before the program runs;
/// - every other descriptor is marked close-on-exec (`close_range(3, ~0U,
///   CLOSE_RANGE_CLOEXEC)`, else one `fcntl` per descriptor below `max_fd`);
/// - every signal disposition back to the default, and an empty signal mask.
/// The call returns once the child has exec'd (or failed to): a failure is
/// reported through a close-on-exec pipe, and the failed child is reaped.
/// Returns the child's pid, or -1 with `*failure` filled in.
pid_t cuni_spawn(const char *path, char *const argv[], char *const envp[],
                 int stdin_fd, int stdout_fd, int stderr_fd,
                 const int *cgroup_fds, int cgroup_count, int max_fd,
                 cuni_spawn_failure *failure);

#endif
