/*
 * fstype.h — the file systems kv refuses: network file systems (kv.h, "Caveats").
 *
 * kv's guarantees rest on the local kernel: fdatasync reaching the disk before it
 * returns, rename and the directory fsync being atomic and durable, flock excluding
 * a second writer, a pid in LOCK meaning a process of this host, and the page cache
 * the mapped reads see being the one the writer wrote to. A network file system
 * (NFS, SMB/CIFS, AFS, Ceph, ...) keeps none of these for sure, so kv_open refuses a
 * directory on one, like LMDB's documentation asks of its users. 9P, FUSE, overlayfs
 * and tmpfs are not refused: 9P is how virtual machines and sandboxes (WSL 2, QEMU
 * virtfs, gVisor) present the host's local disk, FUSE may be anything, and overlay
 * and tmpfs are local.
 */
#ifndef KV_FSTYPE_H
#define KV_FSTYPE_H

#include <stdint.h>

/* The name of the network file system whose statfs f_type is magic ("NFS",
 * "CIFS", ...), or NULL when kv does not refuse that type. */
const char *fs_network_name(uint64_t magic);

/* KV_OK when the directory open as dirfd (path dir, for the message) is on a file
 * system kv accepts, or when fstatfs cannot tell; else KV_EINVAL, with a message
 * naming the file system. One fstatfs call. */
int fs_check_local(int dirfd, const char *dir);

#endif
