/* The two dataflows over a task's rows: softmax and P V.
 *
 * Rows of a task are the query heads of one GQA group (they share K and V)
 * times a run of query positions. Every row sees an interval [lo, limit) of
 * the keys (kv_lens, causal and the sliding window all reduce to one), so
 * masking never needs a mask tensor: softmax runs on the interval and pv
 * never reads outside it. Rules that change visible scores (softcap, ALiBi,
 * an additive mask) are one step between qk and the row max: inside
 * flat_scores on the GEMM-shaped path (keys.c), after it on the decode path. */
#include <math.h>
#include <stddef.h>

#include "rules.h"
#include "tile.h"

/* The next task in order (same heads, the query block below) would find its
 * Q rows cold in memory, and pack_q cannot hide that latency (it ran 4-6x
 * slower than with warm rows). The task's last pv pass asks for them a row
 * group at a time: early enough to arrive, late enough to still be cached,
 * and spread out so the requests never fill the miss queues at once (all
 * at the start of a task measured half the benefit). always_inline: GCC
 * deems a prefetch-only function const and deletes its calls. */
static inline __attribute__((always_inline)) void prefetch_rows(const flat_problem *p,
                                                                const void *const *rows,
                                                                int r0, int r1)
{
    int64_t bytes = p->dim * flat_dtype_size(p->q_dtype);
    for (int r = r0; r < r1; r++)
        if (rows[r])
            for (int64_t c = 0; c < bytes; c += 64)
                __builtin_prefetch((const char *)rows[r] + c, 0, 2);
}

/* pv of m rows over keys [j0, j0 + n), V walked run by run: the first run
 * applies alpha, later ones accumulate. `fetch`: K rows of the next `fetch`
 * keys (from j0 + n) to prefetch beside V (plan->along; contiguous K only,
 * where they lie in one run). */
static void pv_range(const flat_problem *p, const flat_ukernels *uk, const flat_task *t, int m,
                     int64_t j0, int64_t n, const float *s, int64_t ld_s, float *o,
                     int64_t ld_o, const float *alpha, const float *ones, int64_t fetch)
{
    flat_run_walk w;
    flat_walk_start(&w, p, uk, t, 1, j0, n);
    flat_run next = {0};
    if (fetch > 0 && !p->paged)
        next = flat_key_run(p, t, j0 + n);
    do {
        if (w.at[0] == 0 && next.count >= w.run[0].count) { /* one run: contiguous */
            w.run[0].src.along = &next.src;
            w.run[0].src.along_cols = p->dim;
        }
        uk->pv(m, (int)w.run[0].count, (int)p->v_dim, s + w.at[0], ld_s, &w.run[0].src, o, ld_o,
               w.at[0] == 0 ? alpha : ones);
    } while (flat_walk_next(&w));
}

/* Rows per pv call group. A table with bf16 products multiplies in key
 * pairs from each call's first key, and calls of at most 2 rows or under 4
 * keys in fp32 (kernels/ukernel.h): batch-invariant plans give it groups of
 * 2 rows, so every product of a row is fp32 and in key order, whatever the
 * rows and page boundaries around it. */
static int pv_rows(const flat_tiling *plan, const flat_ukernels *uk)
{
    return plan->invariant && uk->compute == FLAT_BF16 ? 2 : uk->pv_mr;
}

/* Row r's visible keys inside [k0 + c0, k0 + c1), relative to k0. */
static void row_segment(const flat_scratch *ws, int r, int k0, int c0, int c1, int *a, int *e)
{
    *a = (int)flat_max(ws->lo[r] - k0, c0);
    *e = (int)flat_min(ws->limit[r] - k0, c1);
}

/* pv over keys [j0, j0 + n) of m rows: from the widened or gathered block
 * when it holds them (one call: by pv's order rule the bits of the calls run
 * by run), else run by run. */
static void pv_keys(const flat_problem *p, const flat_ukernels *uk, const flat_task *t, int m,
                    int64_t j0, int64_t n, const float *s, int64_t ld_s, float *o, int64_t ld_o,
                    const float *alpha, flat_scratch *ws, int64_t fetch)
{
    if (flat_block_holds(&ws->vblk, j0, n)) {
        const flat_kv_src rows = flat_kv_src_rows(&ws->vblk.src, j0 - ws->vblk.k0);
        uk->pv(m, (int)n, (int)p->v_dim, s, ld_s, &rows, o, ld_o, alpha);
        return;
    }
    pv_range(p, uk, t, m, j0, n, s, ld_s, o, ld_o, alpha, ws->ones, fetch);
}

/* V rows of keys [j0, j0 + n) widened to fp32 into ws->vw, run by run. */
static void widen_values(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                         int64_t j0, int64_t n, flat_scratch *ws)
{
    int64_t j = 0;
    while (j < n) {
        flat_run r = flat_value_run(p, t, j0 + j);
        int64_t here = flat_min(r.count, n - j);
        if (p->paged && j + here < n)
            flat_prefetch_run(p, flat_value_run(p, t, j0 + j + here),
                              flat_min(p->pages.page_size, n - j - here), p->v_dim);
        uk->widen_rows((int)here, (int)p->v_dim, &r.src, ws->vw + j * p->v_dim, p->v_dim);
        j += here;
    }
    ws->vblk = (flat_block){flat_kv_src_plain(ws->vw, p->v_dim, FLAT_F32), j0, n};
}

/* Keys of row group [r0, r1) inside chunk [c0, c1) that every row sees:
 * [*cs, *ce), relative to k0 (empty as *cs == *ce). */
static void shared_keys(const flat_scratch *ws, int r0, int r1, int k0, int c0, int c1, int *cs,
                        int *ce)
{
    *cs = (int)flat_max(flat_max_lo(ws->lo, r0, r1) - k0, c0);
    *ce = (int)flat_min(flat_min_limit(ws->limit, r0, r1) - k0, c1);
    if (*ce < *cs)
        *ce = *cs;
}

/* Row r's own pieces of chunk [c0, c1) around the shared keys [cs, ce): left
 * of them (or all its keys, when nothing is shared) and right of them. */
static void row_pieces(const flat_scratch *ws, int r, int k0, int c0, int c1, int cs, int ce,
                       int pieces[2][2])
{
    int sa, se;
    row_segment(ws, r, k0, c0, c1, &sa, &se);
    pieces[0][0] = sa;
    pieces[0][1] = ce > cs ? (int)flat_min(cs, se) : se;
    pieces[1][0] = ce > cs ? (int)flat_max(ce, sa) : se;
    pieces[1][1] = se;
}

static void row_piece(const flat_problem *p, const flat_ukernels *uk, const flat_task *t, int r, int k0, const int piece[2], flat_scratch *ws,
                      int64_t ld_s)
{
    if (piece[1] > piece[0])
        pv_keys(p, uk, t, 1, k0 + piece[0], piece[1] - piece[0],
                ws->s + r * ld_s + piece[0], ld_s, flat_o_row(ws, r), ws->o_ld_row, ws->ones, ws, 0);
}

/* O += P[:, k0 .. k0+width) V, in chunks of pv_keys keys whose V rows stay in
 * L2 across the row groups (plan.c). Row groups of pv_mr share one
 * register-blocked call over the keys all of them see (the latest lo to the
 * earliest limit); each row then adds its own staircase pieces left and
 * right of it, so no row ever multiplies a key it must not see (a NaN there
 * must not leak in). The shared call comes first and applies alpha (even
 * with no keys); by pv's order rule the pieces split nothing bitwise when
 * rows share their first key (causal; a window's left pieces come after the
 * shared keys, so there the grouping changes a row's order of keys).
 * Batch-invariant plans keep each row's keys in ascending order instead:
 * alpha first (a call without keys), then the left pieces, the shared keys
 * and the right pieces, which by pv's order rule is the row's keys in one
 * call whatever rows it is grouped with.
 * `last`: the task's last pv pass, which prefetches the next block's Q rows;
 * `fetch`: keys of the next block whose K rows the first row group's call
 * over the block's last keys prefetches beside V (plan->along). */
static void attend_values(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                          const flat_task *t, int rows, int k0, int width, const float *alpha,
                          flat_scratch *ws, int64_t ld_s, int last,
                          int64_t fetch)
{
    const int group = pv_rows(plan, uk);
    for (int c0 = 0; c0 < width; c0 += plan->pv_keys) {
        int c1 = (int)flat_min(width, c0 + plan->pv_keys);
        if (plan->widen_v && rows > group)
            widen_values(p, uk, t, k0 + c0, c1 - c0, ws);
        for (int r0 = 0; r0 < rows; r0 += group) {
            int r1 = (int)flat_min(rows, r0 + group), cs, ce, pieces[2][2];
            shared_keys(ws, r0, r1, k0, c0, c1, &cs, &ce);
            const float *a = c0 > 0 ? ws->ones + r0 : alpha ? alpha + r0 : NULL;
            if (last && c0 == 0)
                prefetch_rows(p, ws->next_rows, r0, r1);
            if (plan->invariant) {
                if (c0 == 0) { /* alpha alone; V unread but a real pointer */
                    const flat_kv_src none = flat_kv_src_plain(ws->s, 1, FLAT_F32);
                    uk->pv(r1 - r0, 0, (int)p->v_dim, ws->s, ld_s, &none, flat_o_row(ws, r0),
                           ws->o_ld_row, a);
                }
                for (int r = r0; r < r1; r++) {
                    row_pieces(ws, r, k0, c0, c1, cs, ce, pieces);
                    row_piece(p, uk, t, r, k0, pieces[0], ws, ld_s);
                }
                if (ce > cs)
                    pv_keys(p, uk, t, r1 - r0, k0 + cs, ce - cs, ws->s + r0 * ld_s + cs,
                            ld_s, flat_o_row(ws, r0), ws->o_ld_row, ws->ones, ws, 0);
                for (int r = r0; r < r1; r++) {
                    row_pieces(ws, r, k0, c0, c1, cs, ce, pieces);
                    row_piece(p, uk, t, r, k0, pieces[1], ws, ld_s);
                }
                continue;
            }
            pv_keys(p, uk, t, r1 - r0, k0 + cs, ce - cs, ws->s + r0 * ld_s + cs, ld_s,
                    flat_o_row(ws, r0), ws->o_ld_row, a, ws,
                    r0 == 0 && c1 == width && ce == c1 ? fetch : 0);
            for (int r = r0; r < r1; r++) {
                row_pieces(ws, r, k0, c0, c1, cs, ce, pieces);
                row_piece(p, uk, t, r, k0, pieces[0], ws, ld_s);
                row_piece(p, uk, t, r, k0, pieces[1], ws, ld_s);
            }
        }
    }
    ws->vblk.n = 0;
}

/* A row whose block max is +-inf or NaN read an Inf or NaN input (or its dot
 * product overflowed): its softmax is undefined, so its output becomes NaN
 * (via l), while its P entries become 0 so the shared pv calls keep the
 * other rows clean. */
static void poison_row(const flat_ukernels *uk, int n, float *s, flat_scratch *ws, int r)
{
    uk->exp2_row(0, n, s, 0.0f);
    ws->l[r] = NAN;
}

/* Scores of keys [k0, k0 + width), with the score rules applied. */
static void block_scores(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                         const flat_task *t, int rows, int k0, int width, flat_scratch *ws,
                         int64_t ld_s)
{
    if (flat_has_score_rules(p))
        for (int r = 0; r < rows; r++)
            ws->bmax[r] = -INFINITY;
    flat_scores(p, plan, uk, t, rows, k0, width, ws, ld_s); /* the GEMM path applies the rules */
    if (flat_has_score_rules(p) && plan->k_in_place)
        flat_apply_score_rules(p, uk, t, ws, 0, rows, k0, 0, width, ld_s);
}

/* FLAT: whole logit rows, exact softmax (true max, one exp per score), P V. */
void flat_rows_flat(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                    const flat_task *t, int rows, int kbeg, int kend, flat_scratch *ws)
{
    int64_t ld_s = plan->s_cols;
    block_scores(p, plan, uk, t, rows, kbeg, kend - kbeg, ws, ld_s);
    for (int r = 0; r < rows; r++) {
        int a, e;
        row_segment(ws, r, kbeg, 0, kend - kbeg, &a, &e);
        int n = (int)flat_max(0, e - a);
        float *s = ws->s + r * ld_s + a;
        ws->m[r] = flat_has_score_rules(p) ? ws->bmax[r] : uk->row_max(n, s);
        if (n > 0 && ws->m[r] == -INFINITY && p->mask) /* the mask hid every key */
            uk->exp2_row(0, n, s, 0.0f);
        else if (n > 0 && !isfinite(ws->m[r]))
            poison_row(uk, n, s, ws, r);
        else
            ws->l[r] = uk->exp2_row(n, n, s, ws->m[r]);
    }
    attend_values(p, plan, uk, t, rows, kbeg, kend - kbeg, NULL, ws, ld_s, 1, 0);
}

/* FLASH (and the decode path, which differs only in flat_scores): key blocks
 * of bk with a running max and sum; when the max grows, the partial output is
 * rescaled by exp2(m_old - m_new) inside pv. */
void flat_rows_flash(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                     const flat_task *t, int rows, int kbeg, int kend, flat_scratch *ws)
{
    int64_t ld_s = plan->s_cols;
    for (int k0 = kbeg; k0 < kend; k0 += plan->bk) {
        int width = (int)flat_min(plan->bk, kend - k0);
        if (plan->gather)
            flat_gather_block(p, t, k0, width, ws);
        block_scores(p, plan, uk, t, rows, k0, width, ws, ld_s);
        for (int r = 0; r < rows; r++) {
            int a, e;
            row_segment(ws, r, k0, 0, width, &a, &e);
            int n = (int)flat_max(0, e - a);
            float *s = ws->s + r * ld_s + a;
            float block_max = flat_has_score_rules(p) ? ws->bmax[r] : uk->row_max(n, s);
            ws->alpha[r] = 1.0f; /* unless a new max rescales the row below */
            if (n == 0)
                continue;
            if (block_max == -INFINITY && p->mask) { /* the mask hid the block's keys */
                uk->exp2_row(0, n, s, 0.0f);
                continue;
            }
            if (!isfinite(block_max)) {
                poison_row(uk, n, s, ws, r);
                continue;
            }
            float m_new = fmaxf(ws->m[r], block_max);
            ws->alpha[r] = exp2f(ws->m[r] - m_new); /* 0 on the first block */
            ws->l[r] = ws->l[r] * ws->alpha[r] + uk->exp2_row(n, n, s, m_new);
            ws->m[r] = m_new;
        }
        attend_values(p, plan, uk, t, rows, k0, width, k0 == kbeg ? NULL : ws->alpha, ws, ld_s,
                      k0 + plan->bk >= kend,
                      plan->along ? flat_min(plan->bk, kend - (k0 + width)) : 0);
    }
    ws->kblk.n = ws->vblk.n = 0;
}
