/* What SedaHTTP needs from C that Swift cannot call directly. */
#ifndef SEDA_HTTP_H
#define SEDA_HTTP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Opens `path` (relative, no leading '/') beneath the directory `dirfd` with
 * openat2(2) and RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: symbolic links are
 * followed only while they stay under `dirfd`; an absolute path, an absolute
 * link or a ".." that would leave the directory fails with -EXDEV. `flags` are
 * open(2) flags (O_CLOEXEC is added). Returns the new descriptor (the caller
 * closes it) or a negative errno; -ENOSYS when the kernel (or a seccomp
 * filter) has no openat2. Any thread. */
int seda_http_open_beneath(int dirfd, const char *path, int flags);

/* O_PATH (a _GNU_SOURCE constant Swift's Glibc module does not export). */
extern const int seda_http_o_path;

#ifdef __cplusplus
}
#endif
#endif
