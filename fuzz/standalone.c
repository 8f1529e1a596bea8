/*
 * standalone.c — main() for a harness built without libFuzzer.
 *
 * Linked with any fuzz/<name>_fuzzer.c, it makes a plain program (gcc or clang, with
 * or without sanitizers) that feeds every file named on the command line, and every
 * regular file in every directory named there (in name order), to
 * LLVMFuzzerTestOneInput once. Each input is passed in a heap buffer of exactly its
 * size, so an out-of-bounds read is caught by ASan or valgrind as under libFuzzer.
 * `make test` runs it over fuzz/corpus/<name>/: every input ever saved, crashers
 * included, is a regression test.
 *
 * Exit status: 0 when every input ran (a broken invariant aborts the program),
 * 1 when no input was found (an empty corpus must not pass in silence), 2 on a usage
 * or read error.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Optional in a harness; NULL when it does not define one. */
extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t g_inputs, g_bytes;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return 2;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "%s: cannot read %zu bytes\n", path, n);
        free(buf);
        fclose(f);
        return 2;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    g_inputs++;
    g_bytes += n;
    return 0;
}

static int is_hidden(const struct dirent *de) { return de->d_name[0] == '.'; }

static int run_dir(const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort), rc = 0;
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return 2;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        if (rc == 0 && !is_hidden(list[i]) && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = run_file(path);
        free(list[i]);
    }
    free(list);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n"
                "Runs each input through the harness once (a corpus replay).\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc && rc == 0; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = 2;
        } else {
            rc = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        }
    }
    if (rc != 0)
        return rc;
    printf("%s: %zu inputs (%zu bytes) replayed, every invariant held\n", argv[0], g_inputs,
           g_bytes);
    return g_inputs == 0 ? 1 : 0;
}
