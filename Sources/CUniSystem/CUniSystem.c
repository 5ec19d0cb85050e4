// Compiled as its own translation unit so that _GNU_SOURCE applies to the
// system headers here (a modular import of Glibc would ignore it).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <spawn.h>
#include "CUniSystem.h"

int cuni_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
#else
    (void)actions;
    (void)from;
    return ENOSYS;
#endif
}

int cuni_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cuni_syncfs(int fd) {
    return syncfs(fd);
}
