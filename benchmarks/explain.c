#include "explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static flat_status timed_call(const workload *w, const flat_options *opt, double *seconds)
{
    double t0 = bench_now();
    flat_status st = workload_call(w, opt);
    *seconds = bench_now() - t0;
    return st;
}

static void first_flat_line(FILE *log, char *line, size_t len)
{
    char buf[1024];
    line[0] = '\0';
    rewind(log);
    while (fgets(buf, sizeof buf, log)) {
        if (strncmp(buf, "flat:", 5) == 0) {
            snprintf(line, len, "%.*s", (int)strcspn(buf, "\n"), buf);
            return;
        }
    }
}

flat_status flat_call_explained(const workload *w, const flat_options *opt, double *seconds,
                                char *line, size_t line_len)
{
    line[0] = '\0';
    fflush(stderr);
    FILE *log = tmpfile();
    int saved = log ? dup(STDERR_FILENO) : -1;
    if (saved < 0 || dup2(fileno(log), STDERR_FILENO) < 0) {
        if (log)
            fclose(log);
        if (saved >= 0)
            close(saved);
        return timed_call(w, opt, seconds); /* no explanation, still a result */
    }
    const char *user_value = getenv("FLAT_VERBOSE");
    char *restore = user_value ? strdup(user_value) : NULL;
    setenv("FLAT_VERBOSE", "1", 1);
    flat_status st = timed_call(w, opt, seconds);
    if (restore)
        setenv("FLAT_VERBOSE", restore, 1);
    else
        unsetenv("FLAT_VERBOSE");
    free(restore);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    first_flat_line(log, line, line_len);
    fclose(log);
    return st;
}

void explain_field(const char *line, const char *key, char *out, size_t out_len)
{
    const char *at = strstr(line, key);
    if (!at) {
        snprintf(out, out_len, "?");
        return;
    }
    at += strlen(key);
    snprintf(out, out_len, "%.*s", (int)strcspn(at, " \n"), at);
}
