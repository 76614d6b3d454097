/*
 * A plugin host: loads libflat.so with dlopen() at run time (no link-time
 * dependency, no header beyond the types), makes a plan, runs it with a
 * workspace it owns, checks the result against a few lines of double math,
 * and unloads the library.
 *
 *   plugin_host [path/to/libflat.so]        (default: libflat.so.0 on the loader's path)
 */
#include <flat.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *(*version)(void);
    const char *(*last_error)(void);
    flat_tensor (*bhsd)(void *, flat_dtype, int64_t, int64_t, int64_t, int64_t);
    flat_status (*create)(const flat_tensor *, const flat_tensor *, const flat_tensor *,
                          const flat_tensor *, const flat_options *, flat_plan **);
    size_t (*workspace_size)(const flat_plan *);
    flat_status (*execute)(const flat_plan *, void *);
    const char *(*describe)(const flat_plan *);
    void (*destroy)(flat_plan *);
} flat_api;

static int load(void *lib, flat_api *api)
{
    void **slots[] = {(void **)&api->version, (void **)&api->last_error, (void **)&api->bhsd,
                      (void **)&api->create, (void **)&api->workspace_size,
                      (void **)&api->execute, (void **)&api->describe, (void **)&api->destroy};
    static const char *names[] = {"flat_version", "flat_last_error", "flat_tensor_bhsd",
                                  "flat_plan_create", "flat_plan_workspace_size",
                                  "flat_plan_execute", "flat_plan_describe", "flat_plan_destroy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!(*slots[i] = dlsym(lib, names[i]))) {
            fprintf(stderr, "plugin_host: %s missing: %s\n", names[i], dlerror());
            return -1;
        }
    return 0;
}

/* out row (h, i) by the definition, in double. */
static double max_row_error(const float *q, const float *k, const float *v, const float *o,
                            int H, int N, int D)
{
    double worst = 0, *p = malloc(sizeof(double) * (size_t)N);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < N; i++) {
            double m = -INFINITY, l = 0, err = 0, norm = 0;
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int c = 0; c < D; c++)
                    s += (double)q[(h * N + i) * D + c] * k[(h * N + j) * D + c];
                p[j] = s / sqrt(D);
                m = p[j] > m ? p[j] : m;
            }
            for (int j = 0; j < N; j++)
                l += p[j] = exp(p[j] - m);
            for (int c = 0; c < D; c++) {
                double want = 0;
                for (int j = 0; j < N; j++)
                    want += p[j] / l * v[(h * N + j) * D + c];
                err += (o[(h * N + i) * D + c] - want) * (o[(h * N + i) * D + c] - want);
                norm += want * want;
            }
            worst = fmax(worst, sqrt(err / norm));
        }
    free(p);
    return worst;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "libflat.so.0";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "plugin_host: dlopen(%s): %s\n", path, dlerror());
        return 1;
    }
    flat_api api;
    if (load(lib, &api) != 0)
        return 1;
    enum { H = 4, N = 96, D = 64 };
    float *q = malloc(sizeof(float) * H * N * D), *k = malloc(sizeof(float) * H * N * D);
    float *v = malloc(sizeof(float) * H * N * D), *o = malloc(sizeof(float) * H * N * D);
    for (int i = 0; i < H * N * D; i++) {
        q[i] = (float)sin(i * 0.37), k[i] = (float)cos(i * 0.11), v[i] = (float)sin(i * 0.05);
    }
    flat_tensor tq = api.bhsd(q, FLAT_F32, 1, H, N, D), tk = api.bhsd(k, FLAT_F32, 1, H, N, D);
    flat_tensor tv = api.bhsd(v, FLAT_F32, 1, H, N, D), to = api.bhsd(o, FLAT_F32, 1, H, N, D);
    flat_options opt = {0};
    opt.num_threads = 2;
    flat_plan *plan;
    if (api.create(&tq, &tk, &tv, &to, &opt, &plan) != FLAT_OK) {
        fprintf(stderr, "plugin_host: %s\n", api.last_error());
        return 1;
    }
    size_t bytes = api.workspace_size(plan);
    void *workspace = NULL;
    if (posix_memalign(&workspace, 64, bytes ? bytes : 64) != 0 ||
        api.execute(plan, workspace) != FLAT_OK) {
        fprintf(stderr, "plugin_host: execute: %s\n", api.last_error());
        return 1;
    }
    double err = max_row_error(q, k, v, o, H, N, D);
    printf("plugin_host: flat %s from %s; plan: %s; workspace %zu bytes; max row error %.2g\n",
           api.version(), path, api.describe(plan), bytes, err);
    api.destroy(plan);
    free(workspace), free(q), free(k), free(v), free(o);
    dlclose(lib);
    return err <= 1e-5 ? 0 : 1;
}
