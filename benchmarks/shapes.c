#include "shapes.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SHAPE_FIELDS = 8, LINE_MAX_CHARS = 512 };

static int is_skippable(const char *line)
{
    while (isspace((unsigned char)*line))
        line++;
    return *line == '\0' || *line == '#';
}

/* A whole-field non-negative integer; rejects "12x", "", "-3". */
static int parse_count(const char *field, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(field, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == field || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_line(char *line, bench_shape *s, char *why, size_t why_len)
{
    char *fields[SHAPE_FIELDS];
    int n = 0;
    for (char *tok = strtok(line, ",\r\n"); tok && n < SHAPE_FIELDS; tok = strtok(NULL, ",\r\n"))
        fields[n++] = tok;
    if (n != SHAPE_FIELDS || strtok(NULL, ",\r\n")) {
        snprintf(why, why_len, "expected %d comma-separated fields", SHAPE_FIELDS);
        return -1;
    }
    while (isspace((unsigned char)*fields[0]))
        fields[0]++;
    snprintf(s->name, sizeof s->name, "%s", fields[0]);
    int64_t *dims[] = {&s->batch, &s->q_heads, &s->kv_heads, &s->q_len, &s->kv_len, &s->head_dim};
    static const char *names[] = {"batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"};
    for (int i = 0; i < 6; i++) {
        if (parse_count(fields[i + 1], dims[i]) != 0 || *dims[i] == 0) {
            snprintf(why, why_len, "%s (\"%s\") is not a positive integer", names[i], fields[i + 1]);
            return -1;
        }
    }
    int64_t causal;
    if (parse_count(fields[7], &causal) != 0 || causal > 1) {
        snprintf(why, why_len, "causal (\"%s\") is not 0 or 1", fields[7]);
        return -1;
    }
    s->causal = (int)causal;
    s->kv_dtype = s->q_dtype = FLAT_F32; /* the set's shapes are f32 and contiguous; */
    s->page_size = 0;                     /* the suite adds their variants */
    if (s->q_heads % s->kv_heads != 0) {
        snprintf(why, why_len, "q_heads (%lld) is not a multiple of kv_heads (%lld)",
                 (long long)s->q_heads, (long long)s->kv_heads);
        return -1;
    }
    return 0;
}

int shapes_load(const char *path, bench_shape **shapes, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    bench_shape *list = NULL;
    int count = 0, line_no = 0;
    char line[LINE_MAX_CHARS], why[160];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        if (is_skippable(line))
            continue;
        bench_shape s = {0};
        bench_shape *grown = realloc(list, (size_t)(count + 1) * sizeof *list);
        if (!grown || parse_line(line, &s, why, sizeof why) != 0) {
            snprintf(err, err_len, "%s:%d: %s", path, line_no, grown ? why : "out of memory");
            free(grown ? grown : list);
            fclose(f);
            return -1;
        }
        list = grown;
        list[count++] = s;
    }
    fclose(f);
    *shapes = list;
    return count;
}

double shape_visible_pairs(const bench_shape *s)
{
    double nq = (double)s->q_len, nk = (double)s->kv_len;
    if (!s->causal)
        return nq * nk;
    if (s->q_len == s->kv_len)
        return nq * nk / 2;
    if (s->q_len < s->kv_len)
        return nq * (nk - nq + 1) + nq * (nq - 1) / 2;
    return nk * (nk + 1) / 2; /* the first Nq - Nk rows see no key */
}

double shape_flops(const bench_shape *s)
{
    return 4.0 * (double)s->batch * (double)s->q_heads * (double)s->head_dim *
           shape_visible_pairs(s);
}

int shape_kv_elem_bytes(const bench_shape *s) { return s->kv_dtype == FLAT_F32 ? 4 : 2; }

double shape_kv_bytes(const bench_shape *s)
{
    return (double)s->batch * (double)s->kv_heads * (double)s->kv_len *
           (double)(2 * s->head_dim) * shape_kv_elem_bytes(s);
}

int shape_is_decode_like(const bench_shape *s) { return s->q_len <= SHAPE_DECODE_MAX_Q_LEN; }
