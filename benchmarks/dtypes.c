#include "dtypes.h"

#include <stdio.h>
#include <string.h>

/* One row per type flat takes. Quantized K/V types join as rows with
 * for_q = 0 and their granularities. */
static const bench_dtype types[] = {
    {"f32", FLAT_F32, 32, 1, 1, NULL},
    {"f16", FLAT_F16, 16, 1, 1, NULL},
    {"bf16", FLAT_BF16, 16, 1, 1, NULL},
};
enum { N_TYPES = sizeof types / sizeof types[0] };

bench_types bench_types_f32(void) { return (bench_types){&types[0], &types[0], -1}; }

const bench_dtype *bench_dtype_of(flat_dtype dtype)
{
    for (int i = 0; i < N_TYPES; i++)
        if (types[i].dtype == dtype)
            return &types[i];
    return &types[0];
}

void bench_dtype_names(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_TYPES && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", types[i].name);
}

static const bench_dtype *find(const char *name, size_t n)
{
    for (int i = 0; i < N_TYPES; i++)
        if (strlen(types[i].name) == n && strncmp(types[i].name, name, n) == 0)
            return &types[i];
    return NULL;
}

/* "TYPE[:GRAN]" of length n for the role ("q" or "kv"). */
static int parse_type(const char *text, size_t n, int for_kv, const bench_dtype **type, int *gran,
                      char *err, size_t err_len)
{
    const char *colon = memchr(text, ':', n);
    size_t name_len = colon ? (size_t)(colon - text) : n;
    const bench_dtype *t = find(text, name_len);
    char names[128];
    bench_dtype_names(names, sizeof names);
    if (!t || !(for_kv ? t->for_kv : t->for_q)) {
        snprintf(err, err_len, "%s type \"%.*s\": not one of %s", for_kv ? "k/v" : "q/out",
                 (int)name_len, text, names);
        return -1;
    }
    *type = t;
    *gran = -1;
    if (!colon)
        return 0;
    const char *g = colon + 1;
    size_t g_len = n - name_len - 1;
    for (int i = 0; t->granularities && t->granularities[i]; i++)
        if (strlen(t->granularities[i]) == g_len && strncmp(t->granularities[i], g, g_len) == 0) {
            *gran = i;
            return 0;
        }
    snprintf(err, err_len, "%s type %s takes no granularity \"%.*s\"%s",
             for_kv ? "k/v" : "q/out", t->name, (int)g_len, g,
             t->granularities ? "" : " (it is not quantized)");
    return -1;
}

int bench_types_parse(const char *spec, bench_types *t, char *err, size_t err_len)
{
    *t = bench_types_f32();
    if (!strchr(spec, '=')) { /* one type for both */
        int gran;
        if (parse_type(spec, strlen(spec), 0, &t->q, &gran, err, err_len) != 0 ||
            parse_type(spec, strlen(spec), 1, &t->kv, &t->kv_granularity, err, err_len) != 0)
            return -1;
        return 0;
    }
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        size_t key = eq ? (size_t)(eq - p) : n;
        int gran, is_q = key == 1 && p[0] == 'q', is_kv = key == 2 && strncmp(p, "kv", 2) == 0;
        if (!eq || (!is_q && !is_kv)) {
            snprintf(err, err_len, "\"%.*s\": expected q=TYPE or kv=TYPE", (int)n, p);
            return -1;
        }
        if (parse_type(eq + 1, n - key - 1, is_kv, is_kv ? &t->kv : &t->q,
                       is_kv ? &t->kv_granularity : &gran, err, err_len) != 0)
            return -1;
        p += n + (p[n] == ',');
    }
    return 0;
}

static void type_text(const bench_dtype *d, int gran, char *buf, size_t len)
{
    if (gran >= 0)
        snprintf(buf, len, "%s:%s", d->name, d->granularities[gran]);
    else
        snprintf(buf, len, "%s", d->name);
}

void bench_types_label(const bench_types *t, char *buf, size_t len)
{
    char kv[48];
    type_text(t->kv, t->kv_granularity, kv, sizeof kv);
    if (t->q == t->kv && t->kv_granularity < 0)
        snprintf(buf, len, "%s", t->q->name);
    else if (t->q->dtype == FLAT_F32)
        snprintf(buf, len, "kv_%s", kv);
    else
        snprintf(buf, len, "q_%s_kv_%s", t->q->name, kv);
}

void bench_types_describe(const bench_types *t, char *buf, size_t len)
{
    char kv[48];
    type_text(t->kv, t->kv_granularity, kv, sizeof kv);
    snprintf(buf, len, "q/out %s, k/v %s", t->q->name, kv);
}
