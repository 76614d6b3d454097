/*
 * Runs fuzz inputs through the fuzz target's checks without libFuzzer, so
 * every build (gcc, ASan, qemu) replays the corpus:
 *
 *   fuzz_replay <file or folder>...
 *
 * Prints how the calls ended; exits 1 at the first case that did not hold.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fcase.h"

static long ran, refused, accepted;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: cannot open %s\n", path);
        return 1;
    }
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fc_source src = {buf, n, 0, 0};
    fc_result r;
    fc_run(&src, &r);
    ran++;
    r.status == 0 ? accepted++ : refused++;
    if (r.failure[0]) {
        fprintf(stderr, "fuzz_replay: %s: %s (status %d): %s\n", path, fc_entry_name(r.entry),
                r.status, r.failure);
        return 1;
    }
    return 0;
}

static int replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_replay: no such file or folder: %s\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    DIR *d = opendir(path);
    if (!d)
        return 1;
    struct dirent *e;
    int bad = 0;
    while (!bad && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        bad = replay(sub);
    }
    closedir(d);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_replay <file or folder>...\n");
        return 2;
    }
    int bad = 0;
    for (int i = 1; i < argc && !bad; i++)
        bad = replay(argv[i]);
    printf("fuzz_replay: %ld inputs: %ld calls succeeded and matched the reference, %ld were "
           "refused cleanly%s\n", ran, accepted, refused, bad ? "; FAILED" : "");
    return bad || ran == 0;
}
