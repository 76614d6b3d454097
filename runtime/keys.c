/* Where a task's key rows are, and its scores against them.
 *
 * K and V of one (batch, kv head) are walked as runs of rows (flat_run);
 * nothing else in the runtime computes a K or V address. The GEMM-shaped
 * path packs K into the contract's panels and qk reuses them for every query
 * block; the decode path hands K rows to qk_rows where they lie. */
#include <string.h>

#include "cpu.h"
#include "rules.h"
#include "tile.h"

/* A source over rows from element offset `at` of `data`, with scales from
 * scale offset `sat` (the problem's kv_dtype and scale view `sc`). */
static flat_kv_src source(const flat_problem *p, const void *data, int64_t at, int64_t ld,
                          const flat_scales *sc, int64_t sat, int64_t ld_scale)
{
    flat_kv_src r = flat_kv_src_plain(flat_elem_ptr(data, at, p->kv_dtype), ld, p->kv_dtype);
    if (sc->data) {
        r.scale = flat_elem_ptr(sc->data, sat, sc->t);
        r.scale_t = sc->t;
        r.ld_scale = ld_scale;
        r.group = sc->group;
    }
    return r;
}

/* The rest of key j's page: the page the block table names, from j's slot.
 * Scale pools are indexed [page, head, token, group] like the K/V pools. */
static flat_run page_run(const flat_problem *p, const void *pool, int64_t sp, int64_t st,
                         int64_t sh, const flat_scales *sc, const flat_task *t, int64_t j)
{
    const flat_pages *pg = &p->pages;
    int64_t page = pg->block_table[t->b * pg->bt_stride + j / pg->page_size];
    int64_t slot = j % pg->page_size;
    return (flat_run){source(p, pool, page * sp + slot * st + t->kv_head * sh, st, sc,
                             page * sc->sb + slot * sc->ss + t->kv_head * sc->sh, sc->ss),
                      pg->page_size - slot};
}

static flat_run tensor_run(const flat_problem *p, const flat_view *v, const flat_scales *sc,
                           const flat_task *t, int64_t j)
{
    return (flat_run){source(p, v->data, t->b * v->sb + t->kv_head * v->sh + j * v->ss, v->ss,
                             sc, t->b * sc->sb + t->kv_head * sc->sh + j * sc->ss, sc->ss),
                      p->kv_len - j};
}

flat_run flat_key_run(const flat_problem *p, const flat_task *t, int64_t j)
{
    if (p->paged)
        return page_run(p, p->pages.k, p->pages.k_sp, p->pages.k_st, p->pages.k_sh,
                        &p->k_scales, t, j);
    return tensor_run(p, &p->k, &p->k_scales, t, j);
}

flat_run flat_value_run(const flat_problem *p, const flat_task *t, int64_t j)
{
    if (p->paged)
        return page_run(p, p->pages.v, p->pages.v_sp, p->pages.v_st, p->pages.v_sh,
                        &p->v_scales, t, j);
    return tensor_run(p, &p->v, &p->v_scales, t, j);
}

/* ---- Decode loops: runs chained for the kernels' prefetch ---- */

static void walk_fill(flat_run_walk *w, int i, int64_t at)
{
    w->at[i] = at;
    if (i > 0 && at >= w->n) { /* run[0] always names a run: pv applies alpha on 0 keys */
        w->run[i].count = 0;
        return;
    }
    w->run[i] = w->values ? flat_value_run(w->p, w->t, w->j0 + at)
                          : flat_key_run(w->p, w->t, w->j0 + at);
    w->run[i].count = flat_min(w->run[i].count, w->n - at);
}

/* run[i] -> run[i + 1] while there is one (pointers into the walk, which
 * stays put while a kernel runs); the next run asked for here when the
 * kernels do not follow the chain */
static void walk_link(flat_run_walk *w)
{
    for (int i = 0; i <= FLAT_WALK_AHEAD; i++) {
        const int more = i < FLAT_WALK_AHEAD && w->run[i + 1].count > 0;
        w->run[i].src.next = more ? &w->run[i + 1].src : NULL;
        w->run[i].src.next_n = more ? w->run[i + 1].count : 0;
    }
    if (w->ask && w->run[1].count)
        flat_prefetch_run(w->p, w->run[1], w->run[1].count, w->values ? w->p->v_dim : w->p->dim);
}

void flat_walk_start(flat_run_walk *w, const flat_problem *p, const flat_ukernels *uk,
                     const flat_task *t, int values, int64_t j0, int64_t n)
{
    *w = (flat_run_walk){
        .p = p, .t = t, .values = values, .ask = p->paged && !uk->prefetch_next, .j0 = j0, .n = n};
    walk_fill(w, 0, 0);
    for (int i = 1; i <= FLAT_WALK_AHEAD; i++)
        walk_fill(w, i, w->at[i - 1] + w->run[i - 1].count);
    walk_link(w);
}

int flat_walk_next(flat_run_walk *w)
{
    if (w->run[1].count == 0)
        return 0;
    for (int i = 0; i < FLAT_WALK_AHEAD; i++)
        w->run[i] = w->run[i + 1], w->at[i] = w->at[i + 1];
    walk_fill(w, FLAT_WALK_AHEAD, w->at[FLAT_WALK_AHEAD - 1] + w->run[FLAT_WALK_AHEAD - 1].count);
    walk_link(w);
    return 1;
}

/* ---- Small pages: a block's rows gathered into one run ----
 *
 * A page of a few tokens (SGLang's token-level pool: 1) made each qk_rows
 * and pv call, and its prefetch bookkeeping, serve a few keys: pages of 1
 * read 6% of the read bandwidth (gqa_decode_8k, bf16, one Zen 4 core), pages
 * of 16 41% against 61% contiguous. Below FLAT_GATHER_PAGE tokens the decode
 * path copies each key block's K and V rows as stored (codes and their scale
 * rows too) into the scratch, and calls each kernel once on that run: the
 * kernels see the same values in one call where they saw them in several,
 * which by their contracts gives the same bits (test_paged). */

/* Keys [j0, j0 + n) of K (values: V) copied run by run into buf: the rows
 * back to back, then their scale rows; a prefetch GATHER_AHEAD keys on. */
#define GATHER_AHEAD 16
static flat_block gather_rows(const flat_problem *p, const flat_task *t, int64_t j0, int64_t n,
                              int values, void *buf)
{
    const flat_scales *sc = values ? &p->v_scales : &p->k_scales;
    int64_t sb;
    const int64_t dim = values ? p->v_dim : p->dim, rb = flat_gather_row_bytes(p, values, &sb);
    char *rows = buf, *scales = rows + flat_round_up(n * rb, 64); /* f16 / f32 scales aligned */
    for (int64_t j = 0; j < n;) {
        flat_run r = values ? flat_value_run(p, t, j0 + j) : flat_key_run(p, t, j0 + j);
        int64_t here = flat_min(r.count, n - j);
        if (j + GATHER_AHEAD < n) {
            flat_run a = values ? flat_value_run(p, t, j0 + j + GATHER_AHEAD)
                                : flat_key_run(p, t, j0 + j + GATHER_AHEAD);
            flat_prefetch_run(p, a, flat_min(a.count, n - j - GATHER_AHEAD), dim);
        }
        /* rows back to back in the pool (head-major pages) copy as one */
        if (flat_dtype_bytes(p->kv_dtype, r.src.ld) == rb)
            memcpy(rows + j * rb, r.src.data, (size_t)(here * rb));
        else
            for (int64_t i = 0; i < here; i++)
                memcpy(rows + (j + i) * rb, flat_elem_ptr(r.src.data, i * r.src.ld, p->kv_dtype),
                       (size_t)rb);
        if (sb && r.src.ld_scale * flat_dtype_size(r.src.scale_t) == sb)
            memcpy(scales + j * sb, r.src.scale, (size_t)(here * sb));
        else if (sb)
            for (int64_t i = 0; i < here; i++)
                memcpy(scales + (j + i) * sb,
                       flat_elem_ptr(r.src.scale, i * r.src.ld_scale, r.src.scale_t), (size_t)sb);
        j += here;
    }
    flat_kv_src src = flat_kv_src_plain(rows, dim, p->kv_dtype);
    if (sb) {
        src.scale = scales;
        src.scale_t = sc->t;
        src.ld_scale = sb / flat_dtype_size(sc->t);
        src.group = sc->group;
    }
    return (flat_block){src, j0, n};
}

void flat_gather_block(const flat_problem *p, const flat_task *t, int64_t k0, int64_t n,
                       flat_scratch *ws)
{
    ws->kblk = gather_rows(p, t, k0, n, 0, ws->kg);
    ws->vblk = gather_rows(p, t, k0, n, 1, ws->vg);
}

/* Keys [j, j + n) of one run into panel `panel` from key slot `slot` on:
 * pack_k writes whole zero-padded panels, so a piece that starts inside a
 * panel is packed into `spare` (one panel) and its columns copied over. */
static void pack_piece(const flat_problem *p, const flat_ukernels *uk, flat_run r, int64_t n,
                       int slot, float *panel, float *spare)
{
    if (slot == 0) {
        uk->pack_k((int)n, (int)p->dim, &r.src, panel);
        return;
    }
    uk->pack_k((int)n, (int)p->dim, &r.src, spare);
    for (int64_t c = 0; c < p->dim; c++)
        memcpy(panel + c * uk->nr + slot, spare + c * uk->nr, (size_t)n * sizeof *panel);
}

/* pack_k over keys [j0, j0 + n) (j0 a multiple of nr) run by run, into
 * consecutive panels: a contiguous tensor is one pack_k call; a page
 * boundary inside a panel splits it in two pieces. */
static void pack_range(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                       int64_t j0, int64_t n, float *kp, float *spare)
{
    for (int64_t j = j0; j < j0 + n;) {
        flat_run r = flat_key_run(p, t, j);
        int slot = (int)((j - j0) % uk->nr);
        /* a run starting mid-panel fills that panel first, then whole panels */
        int64_t here = flat_min(r.count, j0 + n - j);
        if (slot)
            here = flat_min(here, uk->nr - slot);
        pack_piece(p, uk, r, here, slot, kp + (j - j0 - slot) * p->dim, spare);
        j += here;
    }
}

/* K is packed per thread when its tasks move to the next (batch, kv head),
 * not for all heads up front: tasks walk heads in order, so each thread packs
 * each head once, the panels are still in L2 for the first task, and the
 * workspace stays one head of K per thread (all heads at once measured ~5%
 * of a llama-2k call in page faults on the fresh mapping alone). Batches
 * whose kv_lens hide trailing keys pack only the visible ones. */
static const float *packed_keys(const flat_problem *p, const flat_ukernels *uk,
                                const flat_task *t, flat_scratch *ws)
{
    int64_t pair = t->b * p->kv_heads + t->kv_head;
    if (ws->kp_pair != pair) {
        ws->k_base = ws->k_lo;
        pack_range(p, uk, t, ws->k_lo, ws->k_hi - ws->k_lo, ws->kp, ws->spare);
        ws->kp_pair = pair;
    }
    return ws->kp;
}

/* Packed panels for keys [j0, j0 + n) (j0 a multiple of nr): a slice of the
 * head's panels, or, when K streams (plan.c: one task per kv head), those
 * keys packed now into the chunk buffer, which qk then reads from L2. */
static const float *chunk_keys(const flat_problem *p, const flat_tiling *plan,
                               const flat_ukernels *uk, const flat_task *t, int j0, int n,
                               flat_scratch *ws)
{
    if (!plan->stream_k)
        return packed_keys(p, uk, t, ws) + (int64_t)(j0 - ws->k_base) * p->dim;
    pack_range(p, uk, t, j0, n, ws->kp, ws->spare);
    return ws->kp;
}

/* One Q panel's scores against K panels [c, need) of a chunk: rows [r0,
 * r1) of the task, their packed Q at qp, the chunk's panels from panel c at
 * kp, row r0's scores at s (key k0). */
typedef struct {
    int r0, r1, c, need;
    const float *qp, *kp;
    float *s;
} panel_job;

/* qk over panels [c0, c1) of the job, one K panel per call (or the table's
 * qk_min_panels), each call after a slice of the mask that the next piece's
 * rules read (this panel's next keys; after its last piece, the next Q
 * panel's first). A mask's rows come from memory (s4k's broadcast mask: 64
 * MiB, read once per head) in runs of a piece's keys, too short for the
 * hardware prefetchers, and the rules waited on them; asked for all at
 * once, the requests filled the miss queues and stalled qk instead. A slice
 * is about a row's run per call. */
static void qk_prefetching(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                           const panel_job *j, int rows, int k0, int width, int step, int c0,
                           int c1, int64_t ld_s)
{
    int n0 = c1, n1 = (int)flat_min(j->need, c1 + step), ra = j->r0, rb = j->r1;
    if (n0 >= j->need) { /* the next Q panel's first piece */
        n0 = j->c, n1 = (int)flat_min(j->need, j->c + step);
        ra = j->r1, rb = (int)flat_min(rows, j->r1 + uk->mr);
    }
    int64_t x0 = (int64_t)n0 * uk->nr, x1 = flat_min(width, (int64_t)n1 * uk->nr);
    const int per = uk->qk_min_panels > 1 ? uk->qk_min_panels : 1;
    const int calls = (c1 - c0 + per - 1) / per;
    for (int i = 0; i < calls; i++) {
        int qa = ra + i * (rb - ra) / calls, qb = ra + (i + 1) * (rb - ra) / calls;
        int p0 = c0 + i * per, p1 = (int)flat_min(c1, p0 + per);
        if (qb > qa && x1 > x0)
            flat_prefetch_mask(p, t, qa, qb, k0 + x0, x1 - x0);
        uk->qk((int)p->dim, p1 - p0, j->qp, j->kp + (int64_t)(p0 - j->c) * uk->nr * p->dim,
               j->s + (int64_t)p0 * uk->nr, ld_s);
    }
}

/* A job's scores, with the score rules applied right after qk while they
 * are still in L1/L2: no second trip over the block's scores (s4k: 48
 * rows x 1024 keys, 192 KiB) after the last Q panel has evicted the first.
 * The whole job at once (a rules call has a fixed cost, 320-key pieces
 * measured 1.028x the plain call for ALiBi, whole 1024-key rows 1.013x),
 * except with a mask, which goes in pieces of half of L1 so that its
 * prefetches (qk_prefetching) run one piece ahead. */
static void panel_scores(const flat_problem *p, const flat_ukernels *uk, const flat_task *t,
                         flat_scratch *ws, const panel_job *j, int rows, int k0, int width,
                         int64_t ld_s)
{
    const int d = (int)p->dim;
    if (!p->mask) {
        uk->qk(d, j->need - j->c, j->qp, j->kp, j->s + (int64_t)j->c * uk->nr, ld_s);
        if (flat_has_score_rules(p))
            flat_apply_score_rules(p, uk, t, ws, j->r0, j->r1, k0, j->c * uk->nr,
                                   (int)flat_min(width, (int64_t)j->need * uk->nr), ld_s);
        return;
    }
    int step = (int)flat_max(1, flat_cpu()->l1d_bytes / 2 / ((int64_t)uk->mr * uk->nr * 4));
    for (int c0 = j->c; c0 < j->need; c0 += step) {
        int c1 = (int)flat_min(j->need, c0 + step);
        qk_prefetching(p, uk, t, j, rows, k0, width, step, c0, c1, ld_s);
        flat_apply_score_rules(p, uk, t, ws, j->r0, j->r1, k0, c0 * uk->nr,
                               (int)flat_min(width, (int64_t)c1 * uk->nr), ld_s);
    }
}

/* GEMM-shaped: K in L2-sized chunks of panels, each chunk serving all Q panels. */
static void scores_packed(const flat_problem *p, const flat_tiling *plan,
                          const flat_ukernels *uk, const flat_task *t, int rows, int k0,
                          int width, flat_scratch *ws, int64_t ld_s)
{
    int n_panels = (int)((width + uk->nr - 1) / uk->nr);
    for (int c = 0; c < n_panels; c += plan->qk_panels) {
        int c_end = (int)flat_min(n_panels, c + plan->qk_panels);
        const float *kp = chunk_keys(p, plan, uk, t, k0 + c * uk->nr,
                                     (int)flat_min(width, c_end * uk->nr) - c * uk->nr, ws);
        for (int r0 = 0; r0 < rows; r0 += uk->mr) {
            int r1 = (int)flat_min(rows, r0 + uk->mr);
            int seen = flat_max_limit(ws->limit, r0, r1) - k0;
            int need = (int)flat_min(c_end, (seen + uk->nr - 1) / uk->nr); /* causal: skip masked panels */
            if (need <= c)
                continue;
            panel_job j = {r0, r1, c, need, ws->qp + (int64_t)r0 * p->dim, kp,
                           ws->s + (int64_t)r0 * ld_s};
            panel_scores(p, uk, t, ws, &j, rows, k0, width, ld_s);
        }
    }
}

/* Decode: each Q panel against the key rows it sees, run by run. With one
 * panel (rows <= mr) each K row is read once; further panels find the block
 * in L1/L2 (plan.c sizes bk for that). */
static void scores_in_place(const flat_problem *p, const flat_tiling *plan,
                            const flat_ukernels *uk, const flat_task *t, int rows, int k0, int width, flat_scratch *ws,
                            int64_t ld_s)
{
    for (int r0 = 0; r0 < rows; r0 += uk->mr) {
        int r1 = (int)flat_min(rows, r0 + uk->mr);
        int64_t n = flat_min(width, flat_max_limit(ws->limit, r0, r1) - k0);
        /* Batch-invariant: each score summed in qk's order whatever the row
         * count: qk_rows_exact on the rows, or else qk_rows on a whole panel
         * (zero rows past r1, scores unread). */
        const int exact = plan->invariant && uk->qk_rows_exact;
        int m = plan->invariant && !exact ? uk->mr : r1 - r0;
        flat_qk_rows_fn qk_rows = exact ? uk->qk_rows_exact : uk->qk_rows;
        if (n <= 0)
            continue;
        if (flat_block_holds(&ws->kblk, k0, n)) {
            const flat_kv_src rows = flat_kv_src_rows(&ws->kblk.src, k0 - ws->kblk.k0);
            qk_rows(m, (int)p->dim, (int)n, ws->qp + (int64_t)r0 * p->dim, &rows,
                    ws->s + (int64_t)r0 * ld_s, ld_s);
            continue;
        }
        /* The first panel reads K from memory; its kernel may fetch the
         * block's V rows beside it (along), which pv then finds in L2. */
        flat_run_walk w, wv;
        int along = r0 == 0 && plan->along, more = 1;
        flat_walk_start(&w, p, uk, t, 0, k0, n);
        if (along)
            flat_walk_start(&wv, p, uk, t, 1, k0, n);
        while (more) {
            if (along && wv.run[0].count == w.run[0].count) { /* K and V share pages */
                w.run[0].src.along = &wv.run[0].src;
                w.run[0].src.along_cols = p->v_dim;
            }
            qk_rows(m, (int)p->dim, (int)w.run[0].count, ws->qp + (int64_t)r0 * p->dim,
                    &w.run[0].src, ws->s + (int64_t)r0 * ld_s + w.at[0], ld_s);
            more = flat_walk_next(&w);
            along = along && flat_walk_next(&wv);
        }
    }
}

void flat_scores(const flat_problem *p, const flat_tiling *plan, const flat_ukernels *uk,
                 const flat_task *t, int rows, int k0, int width, flat_scratch *ws,
                 int64_t ld_s)
{
    if (plan->k_in_place)
        scores_in_place(p, plan, uk, t, rows, k0, width, ws, ld_s);
    else
        scores_packed(p, plan, uk, t, rows, k0, width, ws, ld_s);
}
