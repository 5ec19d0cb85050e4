#ifndef CUNISYSTEM_H
#define CUNISYSTEM_H

#include <spawn.h>

/// Adds a file action that closes every descriptor >= `from` in the child
/// (glibc's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc
/// module hides because it is declared only under `_GNU_SOURCE`).
/// Returns 0 or an errno value; ENOSYS where the C library lacks it.
int cuni_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// `pipe2(fds, O_CLOEXEC)`: a pipe whose ends are close-on-exec from the
/// start (`pipe2` is likewise declared only under `_GNU_SOURCE`).
/// Returns 0, or -1 with errno set.
int cuni_pipe_cloexec(int fds[2]);

/// `syncfs(fd)`: flushes every file of the filesystem holding `fd` in one
/// call (declared only under `_GNU_SOURCE`). Returns 0, or -1 with errno set.
int cuni_syncfs(int fd);

#endif
