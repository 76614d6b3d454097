/* The suite's flags. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#if !defined(BENCH_DEFAULT_SHAPES) || !defined(BENCH_DEFAULT_QSWEEP)
#error "CMake defines BENCH_DEFAULT_SHAPES and BENCH_DEFAULT_QSWEEP (benchmarks/*.csv)"
#endif

void bench_config_usage(void)
{
    printf("\nflat suite flags:\n"
           "  --flat_shapes=PATH        shape set (default %s; env FLAT_BENCH_SHAPES)\n"
           "  --flat_qsweep=PATH        q_len sweep points, or none (default %s)\n"
           "  --flat_threads=LIST       thread counts, e.g. 1,2 (default 1,2)\n"
           "  --flat_summary_dir=DIR    also write DIR/summary.md, DIR/gflops.dat and\n"
           "                            DIR/roofline.dat\n"
           "  --flat_time_budget=SEC    skip cases that would start after SEC seconds of\n"
           "                            timed work (inputs and probes not counted)\n"
           "  --flat_max_call_seconds=S skip cases of the non-best kernel tables predicted\n"
           "                            (from the rate of the previous shape on the same\n"
           "                            table and threads) to need more than S s per call\n"
           "  --flat_memory_budget=GIB  skip baselines whose score matrices exceed GIB "
           "(default 8)\n"
           "  --flat_variants=1|0       the dtype (kv f16, kv bf16, all bf16) and paged\n"
           "                            (16-token pages) variants of the decode-like shapes,\n"
           "                            AUTO on the best table (default 1)\n",
           BENCH_DEFAULT_SHAPES, BENCH_DEFAULT_QSWEEP);
}

static int parse_positive(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(v > 0))
        return -1;
    *out = v;
    return 0;
}

static int parse_thread_list(const char *text, bench_config *cfg)
{
    cfg->n_threads = 0;
    for (const char *p = text; *p;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > 1024 || cfg->n_threads == BENCH_MAX_THREAD_COUNTS)
            return -1;
        cfg->threads[cfg->n_threads++] = (int)t;
        if (*end != ',' && *end != '\0')
            return -1;
        p = *end ? end + 1 : end;
    }
    return cfg->n_threads > 0 ? 0 : -1;
}

static int flag_is(const char *arg, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncmp(arg, name, name_len) == 0;
}

/* Applies one --flat_NAME=VALUE; returns -1 for an unknown name or bad value. */
static int apply_flag(const char *arg, bench_config *cfg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq[1] == '\0')
        return -1;
    size_t n = (size_t)(eq - arg);
    const char *value = eq + 1;
    if (flag_is(arg, n, "--flat_shapes"))
        cfg->shapes_path = value;
    else if (flag_is(arg, n, "--flat_qsweep"))
        cfg->qsweep_path = value;
    else if (flag_is(arg, n, "--flat_summary_dir"))
        cfg->summary_dir = value;
    else if (flag_is(arg, n, "--flat_threads"))
        return parse_thread_list(value, cfg);
    else if (flag_is(arg, n, "--flat_time_budget"))
        return parse_positive(value, &cfg->time_budget);
    else if (flag_is(arg, n, "--flat_max_call_seconds"))
        return parse_positive(value, &cfg->max_call_seconds);
    else if (flag_is(arg, n, "--flat_memory_budget"))
        return parse_positive(value, &cfg->memory_budget_gib);
    else if (flag_is(arg, n, "--flat_variants") && (!strcmp(value, "0") || !strcmp(value, "1")))
        cfg->variants = value[0] == '1';
    else
        return -1;
    return 0;
}

int bench_config_parse(int *argc, char **argv, bench_config *cfg)
{
    const char *env_shapes = getenv("FLAT_BENCH_SHAPES");
    *cfg = (bench_config){
        .shapes_path = env_shapes && *env_shapes ? env_shapes : BENCH_DEFAULT_SHAPES,
        .qsweep_path = BENCH_DEFAULT_QSWEEP,
        .threads = {1, 2},
        .n_threads = 2,
        .memory_budget_gib = 8,
        .variants = 1,
    };
    int kept = 1;
    for (int i = 1; i < *argc; i++) {
        if (strncmp(argv[i], "--flat_", 7) != 0) {
            argv[kept++] = argv[i];
        } else if (apply_flag(argv[i], cfg) != 0) {
            fprintf(stderr, "bench: bad flag %s\n", argv[i]);
            bench_config_usage();
            return -1;
        }
    }
    *argc = kept;
    argv[kept] = NULL;
    return 0;
}
