/*
 * progress.c — the tools' progress line on a terminal (progress.h says when it shows).
 */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* Redraws come at most this often, and the first no sooner. */
#define PROGRESS_EVERY_US 200000u

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void progress_init(progress *p, const char *prog, int want)
{
    p->prog = prog;
    p->on = want && isatty(STDERR_FILENO);
    p->width = 0;
    p->last_us = now_us();
}

void progress_draw(progress *p, const char *fmt, ...)
{
    char text[160];
    va_list ap;
    if (!p->on)
        return;
    uint64_t now = now_us();
    if (now - p->last_us < PROGRESS_EVERY_US)
        return;
    p->last_us = now;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* pad to the widest line drawn, so a shorter one leaves nothing behind */
    int n = fprintf(stderr, "\r%s: %s", p->prog, text) - 1;
    if (n < p->width)
        fprintf(stderr, "%*s", p->width - n, "");
    else
        p->width = n;
    fflush(stderr);
}

void progress_clear(progress *p)
{
    if (p->width > 0)
        fprintf(stderr, "\r%*s\r", p->width, "");
    p->width = 0;
}
