/*
 * progress.h — the one progress line of the tools (kvcheck reading a store, kvcompact
 * compacting one, kvdump writing a dump).
 *
 * On a terminal the line is redrawn in place on stderr ("\rkvcheck: 12.0 of 80.0 MiB
 * read ( 15%)"), at most five times a second and not at all during the first 200 ms,
 * so work that ends at once prints nothing; progress_clear wipes it before a
 * diagnostic or the summary is printed. When stderr is no terminal (a pipe, a log
 * file, a script) or the caller does not want it (--quiet), every call does nothing.
 * One line belongs to one thread at a time.
 */
#ifndef KV_TOOLS_PROGRESS_H
#define KV_TOOLS_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    const char *prog; /* the tool's name, the line's prefix */
    int on;           /* drawing: wanted, and stderr is a terminal */
    int width;        /* characters of the widest line on the screen, 0 when none */
    uint64_t last_us; /* when the line was last drawn (or progress_init ran) */
} progress;

/* Sets *p up for prog; want is 0 when the caller wants no line (--quiet, or stdout
 * is the terminal too). */
void progress_init(progress *p, const char *prog, int want);

/* Redraws the line as "prog: " and the text made from fmt, unless it is off or was
 * drawn less than 200 ms ago. */
void progress_draw(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Wipes the line from the screen, if one is shown. */
void progress_clear(progress *p);

#endif /* KV_TOOLS_PROGRESS_H */
