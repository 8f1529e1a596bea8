/*
 * fstype.c — refusing network file systems at kv_open (see fstype.h).
 */
#include "io/fstype.h"

#include "base/kv_int.h"

#include <stddef.h>
#include <errno.h>
#include <sys/vfs.h>

/* statfs f_type values (linux/magic.h and the file systems' sources). */
static const struct {
    uint64_t magic;
    const char *name;
} network_fs[] = {
    {0x6969, "NFS"},
    {0x517B, "SMB"},             /* smbfs, the old SMB client */
    {0xFF534D42, "CIFS"},
    {0xFE534D42, "SMB2"},        /* the cifs client speaking SMB2/SMB3 */
    {0x5346414F, "AFS"},         /* OpenAFS */
    {0x6B414653, "AFS (kAFS)"},  /* the kernel's AFS client */
    {0x73757245, "Coda"},
    {0x564C, "NCP (NetWare)"},
    {0x00C36400, "CephFS"},
};

const char *fs_network_name(uint64_t magic)
{
    for (size_t i = 0; i < sizeof network_fs / sizeof network_fs[0]; i++)
        if (network_fs[i].magic == magic)
            return network_fs[i].name;
    return NULL;
}

int fs_check_local(int dirfd, const char *dir)
{
    struct statfs sf;
    int r;
    do /* a signal must not skip the check */
        r = fstatfs(dirfd, &sf);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        return KV_OK; /* cannot tell: the open goes on, as before this check */
    /* f_type is a signed word: CIFS's 0xFF534D42 reads back sign-extended */
    const char *name = fs_network_name((uint64_t)sf.f_type & 0xFFFFFFFFu);
    if (name == NULL)
        return KV_OK;
    return err_set(KV_EINVAL, "kv_open: %s is on a network file system (%s, statfs type "
                   "0x%llx): kv needs a local file system (its lock, fdatasync and renames "
                   "are not reliable over a network; kv.h, \"Caveats\")", dir, name,
                   (unsigned long long)((uint64_t)sf.f_type & 0xFFFFFFFFu));
}
