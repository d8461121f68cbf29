#define _POSIX_C_SOURCE 200112L /* posix_memalign */
/* Picking a kernel set for this CPU and running one quantized matmul over threads. */
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch.h"
#include "work_shares.h"

/* At most this many tokens go through row dots (one weight pass per call, T dots per row);
 * more go through tiles (unpack once, then integer tiles over all tokens). */
#define ROWDOT_MAX_T 3

/* With multi-token row dots (each weight block unpacked once per group of 4 rows and 4 tokens, in
 * registers) the row-dot path stays faster than the streamed tiles up to this many tokens, measured
 * on Qwen2.5-0.5B shapes (docs/benchmarks.md): 4 for the 32-value types (at 6 tokens a Q4_0
 * 4864x896 matmul takes 0.65 ms by row dots and 0.50 ms by tiles on one thread), 12 for Q4_K and
 * Q6_K (whose tiles pay for 16-value groups and min terms). */
#ifndef ROWDOT_T_MAX_T_32
#define ROWDOT_T_MAX_T_32 4
#endif
#ifndef ROWDOT_T_MAX_T_256
#define ROWDOT_T_MAX_T_256 12
#endif
#define ROWDOT_T_CAP (ROWDOT_T_MAX_T_32 > ROWDOT_T_MAX_T_256 ? ROWDOT_T_MAX_T_32 : ROWDOT_T_MAX_T_256)
/* Activation rows a row-dot call holds per block size. */
#define ROWDOT_ROWS_CAP (ROWDOT_T_CAP > ROWDOT_MAX_T ? ROWDOT_T_CAP : ROWDOT_MAX_T)

/* Weight rows unpacked at a time on the tile path: 64 x K bytes stay in L2. */
#define ROW_BLOCK 64

/* Units of work on the row-dot path: at least ROWDOT_CHUNK_BYTES of weight rows, a multiple of 4
 * rows (the kernels' row group), shared out as work_shares.h says: a thread the OS delays (the CPU
 * is shared) leaves its work to the others, and each thread's prefetches run on into its own next
 * unit. */
#ifndef ROWDOT_CHUNK_BYTES
#define ROWDOT_CHUNK_BYTES 32768
#endif

static int chunk_rows(const qm_weight *j) {
    const int rows = (int)(ROWDOT_CHUNK_BYTES / j->row_stride) + 1;
    if (j->type_id == QT_Q4_0_X16) return rows < 32 ? 32 : (rows + X16_ROWS - 1) / X16_ROWS * X16_ROWS;
    return rows < 32 ? 32 : (rows + 3) / 4 * 4;
}

static int nchunks_of(const qm_weight *j) {
    const int rows = chunk_rows(j);
    return (j->N + rows - 1) / rows;
}

static int claim(int *next) {
    int c;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
    c = (*next)++;
    return c;
}

int kernels_level_supported(int level) {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (level) {
    case ISA_SCALAR: return 1;
    case ISA_AVX2: return avx2;
    /* Not a chain: AMD's Zen 4 has AVX512-VNNI but not the VEX-encoded AVX-VNNI. */
    case ISA_AVXVNNI: return avx2 && __builtin_cpu_supports("avxvnni");
    case ISA_AVX512:
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    default: return 0;
    }
#else
    return level == ISA_SCALAR;
#endif
}

int kernels_best_level(void) {
    for (int level = ISA_AVX512; level > ISA_SCALAR; level--)
        if (kernels_level_supported(level)) return level;
    return ISA_SCALAR;
}

const kernel_set *kernels_for_level(int level) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (level) {
    case ISA_AVX512: return &kernels_avx512;
    case ISA_AVXVNNI: return &kernels_avxvnni;
    case ISA_AVX2: return &kernels_avx2;
    default: break;
    }
#endif
    (void)level;
    return &kernels_scalar;
}

static void split(int n, int parts, int part, int unit, int *lo, int *hi) {
    int units = (n + unit - 1) / unit;
    int a = (int)((long long)units * part / parts), b = (int)((long long)units * (part + 1) / parts);
    *lo = a * unit < n ? a * unit : n;
    *hi = b * unit < n ? b * unit : n;
}

/* The calling thread's share [lo, hi) of n items inside a parallel region (all of them outside). */
static void thread_share(int n, int *lo, int *hi) {
    int part = 0, parts = 1;
#ifdef _OPENMP
    part = omp_get_thread_num(); parts = omp_get_num_threads();
#endif
    split(n, parts, part, 1, lo, hi);
}

/* Bytes ahead that single-row dots prefetch. */
#define ROW_PREFETCH 2048

/* Below this many weight bytes in one call, a second thread costs more to wake than it saves. */
#define PARALLEL_MIN_BYTES (96 * 1024)

/* Weight rows [n0, n1) of job j against the T quantized activation rows of its block size. */
static void row_dot_chunk(const kernel_set *ks, const qm_weight *j, int n0, int n1, int K,
                          const act_row *rows, int T) {
    const uint8_t *w = j->w + (size_t)n0 * j->row_stride;
    rows_dot_t_fn tokens = ks->rows_dot_t[j->type_id];
    if (tokens) {
        tokens(w, j->row_stride, n1 - n0, rows, T, K, j->out + n0, (size_t)j->N);
        return;
    }
    rows_dot_fn many = ks->rows_dot[j->type_id];
    if (many) {
        for (int t = 0; t < T; t++) many(w, j->row_stride, n1 - n0, &rows[t], K, j->out + (size_t)t * j->N + n0);
        return;
    }
    /* One row at a time: fetch the row about ROW_PREFETCH bytes ahead ourselves (the hardware
     * prefetcher alone leaves DRAM bandwidth unused at one token). */
    const qtype_info *ti = qtype_get(j->type_id);
    const size_t row_bytes = (size_t)(K / ti->block) * ti->bytes;
    const size_t ahead = (ROW_PREFETCH / row_bytes + 1) * j->row_stride;
    row_dot_fn dot = ks->row_dot[j->type_id];
    for (int n = n0; n < n1; n++, w += j->row_stride) {
#if defined(__GNUC__)
        for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(w + ahead + o, 0, 3);   /* never faults */
#endif
        for (int t = 0; t < T; t++) j->out[(size_t)t * j->N + n] = dot(w, &rows[t], K);
    }
}

/* The activation rows job j reads (T of them). */
typedef const act_row *(*job_rows_fn)(const void *ctx, const kernel_set *ks, const qm_weight *job, int j);

/* Every job's rows in chunks over one parallel region, each chunk against the rows rows_of gives. */
static void row_dot_region(const kernel_set *ks, const qm_weight *jobs, int njobs, int K, int T, int nthreads,
                           job_rows_fn rows_of, const void *ctx) {
    int nchunks = 0;
    size_t bytes = 0;
    for (int i = 0; i < njobs; i++) {
        nchunks += nchunks_of(&jobs[i]);
        bytes += (size_t)jobs[i].N * jobs[i].row_stride;
    }
    if (bytes < PARALLEL_MIN_BYTES) nthreads = 1;
    if (nthreads > WS_MAX_THREADS) nthreads = WS_MAX_THREADS;
    ws_share shares[WS_MAX_THREADS];
    ws_split(shares, nthreads, nchunks);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        for (int c; (c = ws_claim(shares, me, nthreads)) >= 0;) {
            int j = 0, first = 0;
            for (int jc = nchunks_of(&jobs[0]); c >= first + jc; jc = nchunks_of(&jobs[j])) { first += jc; j++; }
            const int crows = chunk_rows(&jobs[j]);
            const int n0 = (c - first) * crows, n1 = n0 + crows < jobs[j].N ? n0 + crows : jobs[j].N;
            row_dot_chunk(ks, &jobs[j], n0, n1, K, rows_of(ctx, ks, &jobs[j], j), T);
        }
    }
}

/* run_row_dots' rows: one set per activation block size, shared by the jobs of that size. */
static const act_row *rows_by_block(const void *ctx, const kernel_set *ks, const qm_weight *job, int j) {
    (void)j;
    const act_row (*rows)[ROWDOT_ROWS_CAP] = ctx;
    return rows[ks->row_dot_blk[job->type_id] == 256];
}

/* Every job's rows in one parallel region; the activation is quantized once per block size. */
static int run_row_dots(const kernel_set *ks, const qm_weight *jobs, int njobs, int K, const float *x, int T,
                        int nthreads) {
    act_set a[2];   /* scale blocks of 32 and of 256 */
    act_row rows[2][ROWDOT_ROWS_CAP] = {0};  /* set before use; zeroed for the compiler's flow analysis */
    int have[2] = {0, 0}, rc = QM_OK;
    for (int i = 0; i < njobs; i++) {
        const int s = ks->row_dot_blk[jobs[i].type_id] == 256;
        if (!have[s]) {
            if (act_set_alloc(&a[s], T, K, s ? 256 : 32) != 0) { rc = QM_ENOMEM; break; }
            have[s] = 1;
            for (int t = 0; t < T; t++) {
                act_row r = act_set_row(&a[s], t);
                ks->quantize_row(x + (size_t)t * K, K, a[s].blk, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16,
                                 (int16_t *)r.s32);
                rows[s][t] = act_set_row(&a[s], t);
            }
        }
    }
    if (rc == QM_OK) row_dot_region(ks, jobs, njobs, K, T, nthreads, rows_by_block, rows);
    for (int s = 0; s < 2; s++)
        if (have[s]) act_set_free(&a[s]);
    return rc;
}

/* Tokens from which the tiles unpack ROW_BLOCK rows into L2 and reuse them over many tiles; below
 * it (a few tiles) they stream: STREAM_ROWS rows at a time, unpacked into L1 while the next ones
 * are prefetched, so reading the weight from DRAM overlaps the integer work. */
#ifndef TILE_STREAM_MAX_T
#define TILE_STREAM_MAX_T 48
#endif
#ifndef STREAM_ROWS
#define STREAM_ROWS 8
#endif

/* Starts fetching rows [n0, n1) of j into L2. */
static void prefetch_rows(const qm_weight *j, int n0, int n1, size_t row_bytes) {
#if defined(__GNUC__)
    for (int n = n0; n < n1; n++)
        for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(j->w + (size_t)n * j->row_stride + o, 0, 2);
#else
    (void)j; (void)n0; (void)n1; (void)row_bytes;
#endif
}

/* Most jobs one call runs in a single tile region (more go one at a time). Activation tiles depend
 * on the weight type's group and offset; jobs of one call share them. */
#define QM_MAX_JOBS 8

/* Tokens [lo, hi) of x quantized into `rows` and interleaved into each format's tiles. */
static void quantize_into_tiles(const kernel_set *ks, act_set *rows, act_tiles *at, const qtype_info **fmt,
                                int nfmt, const float *x, int K, int lo, int hi) {
    for (int t = lo; t < hi; t++) {
        act_row r = act_set_row(rows, t);
        ks->quantize_row(x + (size_t)t * K, K, ACT_BLOCK, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16,
                         (int16_t *)r.s32);
    }
    for (int f = 0; f < nfmt; f++) act_tiles_fill(&at[f], rows, fmt[f], lo, hi);
}

/* Every job's rows through tiles in one parallel region: x is quantized once, and interleaved once
 * per distinct (group, offset) of the jobs' types. */
static int run_tiles(const kernel_set *ks, const qm_weight *jobs, int njobs, int K, const float *x, int T,
                     int nthreads) {
    int any_x16 = 0;
    for (int i = 0; i < njobs; i++) any_x16 |= jobs[i].type_id == QT_Q4_0_X16;
    /* x16 rows unpack by whole groups of 16 */
    const int stream = T <= TILE_STREAM_MAX_T, sub = stream ? (any_x16 ? X16_ROWS : STREAM_ROWS) : ROW_BLOCK;
    const qtype_info *fmt[QM_MAX_JOBS];
    act_tiles at[QM_MAX_JOBS];
    int job_fmt[QM_MAX_JOBS], nfmt = 0, nunits = 0, rc = QM_OK;
    if (njobs > QM_MAX_JOBS) return QM_ESHAPE;
    for (int i = 0; i < njobs; i++) {
        const qtype_info *ti = qtype_get(jobs[i].type_id);
        int f = 0;
        while (f < nfmt && !(fmt[f]->group == ti->group && fmt[f]->offset == ti->offset)) f++;
        if (f == nfmt) fmt[nfmt++] = ti;
        job_fmt[i] = f;
    }
    act_set rows;
    if (act_set_alloc(&rows, T, K, ACT_BLOCK) != 0) return QM_ENOMEM;
    int made = 0;
    for (; made < nfmt; made++)
        if (act_tiles_alloc(&at[made], T, K, ks->tok, fmt[made]->group) != 0) { rc = QM_ENOMEM; break; }
    /* rows claimed at a time per job: a chunk of about ROWDOT_CHUNK_BYTES when streaming, else ROW_BLOCK */
    int unit[QM_MAX_JOBS], first[QM_MAX_JOBS + 1];
    for (int i = 0; i < njobs; i++) {
        unit[i] = stream ? chunk_rows(&jobs[i]) : ROW_BLOCK;
        first[i] = nunits;
        nunits += (jobs[i].N + unit[i] - 1) / unit[i];
    }
    first[njobs] = nunits;
    int failed = rc != QM_OK, next = 0;
    /* A few tokens are quantized before the threads start (microseconds), so the region has no
     * barrier where one thread the OS has not scheduled yet would hold up the others. */
    const int serial_quant = T <= TILE_STREAM_MAX_T;
    if (!failed && serial_quant) quantize_into_tiles(ks, &rows, at, fmt, nfmt, x, K, 0, T);
    if (!failed) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        if (!serial_quant) {
            int lo, hi;
            thread_share(T, &lo, &hi);
            quantize_into_tiles(ks, &rows, at, fmt, nfmt, x, K, lo, hi);
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        wrows wr;
        if (wrows_alloc(&wr, K, 16, sub) != 0) {   /* group 16: room for the scales of either group */
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            for (int i = 0;;) {   /* units are claimed in increasing order: i only moves on */
                const int c = claim(&next);
                if (c >= nunits) break;
                while (c >= first[i + 1]) i++;
                const qm_weight *j = &jobs[i];
                const qtype_info *ti = fmt[job_fmt[i]];
                const act_tiles *a = &at[job_fmt[i]];
                const int N = j->N, u0 = (c - first[i]) * unit[i], u1 = u0 + unit[i] < N ? u0 + unit[i] : N;
                const size_t row_bytes = (size_t)(K / qtype_get(j->type_id)->block) * qtype_get(j->type_id)->bytes;
                wr.group = ti->group;
                wr.pf_rows = 0;
                if (stream) prefetch_rows(j, u0, u0 + sub < u1 ? u0 + sub : u1, row_bytes);
                for (int n0 = u0; n0 < u1; n0 += sub) {
                    const int nrows = u1 - n0 < sub ? u1 - n0 : sub;
                    if (stream) {   /* the tile kernel fetches the next rows while it runs */
                        const int p1 = n0 + 2 * sub < N ? n0 + 2 * sub : N;
                        wr.pf = j->w + (size_t)(n0 + sub) * j->row_stride;
                        wr.pf_stride = j->row_stride;
                        wr.pf_row_bytes = row_bytes;
                        wr.pf_rows = p1 > n0 + sub ? p1 - n0 - sub : 0;
                    }
                    ks->unpack(&wr, j->type_id, j->w + (size_t)n0 * j->row_stride, j->row_stride, nrows);
                    for (int tile = 0; tile < a->ntiles; tile++)
                        for (int r0 = 0; r0 < nrows; r0 += ks->rows) {
                            const int nr = nrows - r0 < ks->rows ? nrows - r0 : ks->rows;
                            ks->tile_gemm(&wr, r0, nr, a, tile, j->out + n0, (size_t)N, ti->offset != 0);
                        }
                }
            }
            wrows_free(&wr);
        }
    }
    }
    (void)nthreads;
    for (int f = 0; f < made; f++) act_tiles_free(&at[f]);
    act_set_free(&rows);
    return failed ? QM_ENOMEM : rc;
}

/* Tokens per unit of work on the x16 path: a unit is (these tokens, one row chunk), so a long
 * prompt's activations are read from L2 by each group of rows rather than streamed from L3 once per
 * 16 rows. As many tokens as fit X16_CHUNK_BYTES of int8 activations (half of a 4 MB L2), at
 * least 128: with K = 896 a 1024-token prompt is one chunk, so each unit's rows are unpacked once
 * rather than once per 128 tokens (about 10% faster on Qwen2.5-0.5B's prefill matmuls), and with
 * K = 4864 chunks are 424 tokens. Units go token chunk by token chunk, so consecutive units share
 * their tokens. */
#ifndef X16_CHUNK_BYTES
#define X16_CHUNK_BYTES (2 << 20)
#endif
#define X16_TOKEN_CHUNK_MIN 128
#ifndef X16_SERIAL_QUANT_MAX
#define X16_SERIAL_QUANT_MAX 32768
#endif

static int x16_token_chunk(int K) {
    const int t = X16_CHUNK_BYTES / K / 8 * 8;
    return t > X16_TOKEN_CHUNK_MIN ? t : X16_TOKEN_CHUNK_MIN;
}

/* Rows of a unit on the x16 path. With many tokens (`unpacked`: a unit's rows are unpacked once
 * per token chunk) a unit reads its token chunk's activations from L2 once, so larger units read
 * them fewer times: up to X16_UNPACKED_UNIT_BYTES of rows, while each job keeps X16_MIN_UNITS
 * units for the threads to share. Against 32 KB units, the four matmuls of a Qwen2.5-0.5B layer
 * took 40.0 ms instead of 43.1 at 1024 tokens (gate and up 21.9 instead of 24.5), 2.80 instead
 * of 2.92 at 64 and 7.98 instead of 8.18 at 200. With few tokens unit size made no difference:
 * they keep the row-dot chunks. */
#define X16_UNPACKED_UNIT_BYTES (256 * 1024)
#define X16_MIN_UNITS 8

static int x16_rows(const qm_weight *j, int unpacked) {
    const int rows = chunk_rows(j);
    if (!unpacked) return rows;
    int big = (int)(X16_UNPACKED_UNIT_BYTES / j->row_stride);
    const int share = (j->N + X16_MIN_UNITS - 1) / X16_MIN_UNITS;
    big = (big < share ? big : share) + X16_ROWS - 1;
    big -= big % X16_ROWS;
    return big > rows ? big : rows;
}

static int x16_row_chunks(const qm_weight *j, int unpacked) {
    const int rows = x16_rows(j, unpacked);
    return (j->N + rows - 1) / rows;
}

/* Units of the x16 path: job by job, each job's token chunk by token chunk, each chunk's row
 * chunks in order. The job of unit c; *u becomes c's number within that job. */
static int x16_unit_job(const qm_weight *jobs, int tchunks, int unpacked, int c, int *u) {
    int j = 0;
    while (c >= x16_row_chunks(&jobs[j], unpacked) * tchunks) c -= x16_row_chunks(&jobs[j++], unpacked) * tchunks;
    *u = c;
    return j;
}

/* The first weight row of unit c. */
static const uint8_t *x16_unit_rows(const qm_weight *jobs, int tchunks, int unpacked, int c) {
    int u;
    const qm_weight *job = &jobs[x16_unit_job(jobs, tchunks, unpacked, c, &u)];
    return job->w + (size_t)(u % x16_row_chunks(job, unpacked)) * x16_rows(job, unpacked) * job->row_stride;
}

static void x16_quantize(const kernel_set *ks, act_set *a, int32_t *xo, const float *x, int K, int lo, int hi) {
    const int nb = K / 32;
    for (int t = lo; t < hi; t++) {
        act_row r = act_set_row(a, t);
        ks->quantize_row(x + (size_t)t * K, K, 32, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16, (int16_t *)r.s32);
        for (int b = 0; b < nb; b++) xo[(size_t)t * nb + b] = -8 * r.s32[b];
    }
}

/* Every job (all QT_Q4_0_X16) in one parallel region through the x16 kernel, for any number of
 * tokens: it reads a group of 16 rows once per 8 tokens, from L1 after the first, and measured
 * faster than unpacking into tiles up to 128 tokens and as fast at 512 (docs/benchmarks.md). */
static int run_x16(const kernel_set *ks, const qm_weight *jobs, int njobs, int K, const float *x, int T,
                   int nthreads) {
    const int nb = K / 32, tchunk = x16_token_chunk(K), tchunks = (T + tchunk - 1) / tchunk;
    act_set a;
    if (act_set_alloc(&a, T, K, 32) != 0) return QM_ENOMEM;
    int32_t *xo = malloc((size_t)T * nb * sizeof(int32_t));
    if (!xo) { act_set_free(&a); return QM_ENOMEM; }
    const int unpacked = T > X16_UNPACK_MIN_T;
    int nunits = 0;
    size_t bytes = 0;
    for (int i = 0; i < njobs; i++) {
        nunits += x16_row_chunks(&jobs[i], unpacked) * tchunks;
        bytes += (size_t)jobs[i].N * jobs[i].row_stride;
    }
    if (bytes < PARALLEL_MIN_BYTES && T <= X16_TOKEN_CHUNK_MIN) nthreads = 1;
    /* A few values are quantized before the threads start, many by all of them (16 tokens of a
     * 4864-wide input took 20 us on one thread, about a tenth of the down projection's call). */
    const int serial_quant = (long long)T * K <= X16_SERIAL_QUANT_MAX;
    if (serial_quant) x16_quantize(ks, &a, xo, x, K, 0, T);
    if (nthreads > WS_MAX_THREADS) nthreads = WS_MAX_THREADS;
    ws_share shares[WS_MAX_THREADS];
    ws_split(shares, nthreads, nunits);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        if (!serial_quant) {
            int lo, hi;
            thread_share(T, &lo, &hi);
            x16_quantize(ks, &a, xo, x, K, lo, hi);
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        /* Many tokens: room to unpack a unit's rows once (the largest unit of the jobs). */
        uint8_t *scratch = NULL;
        if (unpacked) {
            size_t most = 0;
            for (int i = 0; i < njobs; i++) {
                const size_t b = X16_UNPACKED_BYTES(x16_rows(&jobs[i], unpacked), K);
                most = b > most ? b : most;
            }
            if (posix_memalign((void **)&scratch, 64, most) != 0) scratch = NULL;   /* then no unpacking */
        }
        /* Each thread claims its next unit before computing the current one, so the kernel can
         * prefetch the next unit's first rows (a cold start per unit cost about 5% at 16 tokens). */
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        for (int c = ws_claim(shares, me, nthreads); c >= 0;) {
            const int c2 = ws_claim(shares, me, nthreads);
            int u;
            const qm_weight *job = &jobs[x16_unit_job(jobs, tchunks, unpacked, c, &u)];
            const int rc = x16_row_chunks(job, unpacked), t0 = u / rc * tchunk, crows = x16_rows(job, unpacked);
            const int n0 = u % rc * crows, n1 = n0 + crows < job->N ? n0 + crows : job->N;
            const int nt = T - t0 < tchunk ? T - t0 : tchunk;
            ks->x16_gemm(job->w + (size_t)n0 * job->row_stride, n1 - n0, K, a.q + (size_t)t0 * K,
                         a.d + (size_t)t0 * nb, xo + (size_t)t0 * nb, nt, job->out + (size_t)t0 * job->N + n0,
                         (size_t)job->N, c2 >= 0 ? x16_unit_rows(jobs, tchunks, unpacked, c2) : NULL, scratch);
            c = c2;
        }
        free(scratch);
    }
    (void)nthreads;
    free(xo);
    act_set_free(&a);
    return QM_OK;
}

static int check(const qm_weight *j, int K, int T) {
    const qtype_info *ti = qtype_get(j->type_id);
    if (!ti) return QM_ETYPE;
    if (j->N <= 0 || T <= 0 || K <= 0 || K % ti->block != 0) return QM_ESHAPE;
    if (j->type_id == QT_Q4_0_X16 && (j->N % X16_ROWS != 0 || j->row_stride != (size_t)(K / 32) * 18)) return QM_ESHAPE;
    return QM_OK;
}

int row_dot_max_tokens(int level, int type_id) {
    const kernel_set *ks = kernels_for_level(level);
    if (type_id < 0 || type_id >= QT_MAX || !ks->row_dot[type_id]) return 0;
    if (ks->rows_dot_t[type_id]) return ks->row_dot_blk[type_id] == 256 ? ROWDOT_T_MAX_T_256 : ROWDOT_T_MAX_T_32;
    return ROWDOT_MAX_T;
}

/* Whether T tokens of a type go through row dots rather than tiles. */
static int uses_row_dots(const kernel_set *ks, int type_id, int T) {
    int max_t = 0;
    if (ks->rows_dot_t[type_id]) max_t = ks->row_dot_blk[type_id] == 256 ? ROWDOT_T_MAX_T_256 : ROWDOT_T_MAX_T_32;
    else if (ks->row_dot[type_id]) max_t = ROWDOT_MAX_T;
    return T <= max_t;
}

/* run_row_dots_each's rows: job j's own T rows, at rows + j * T. */
typedef struct { const act_row *rows; int T; } rows_per_job;

static const act_row *rows_of_job(const void *ctx, const kernel_set *ks, const qm_weight *job, int j) {
    (void)ks; (void)job;
    const rows_per_job *r = ctx;
    return r->rows + (size_t)j * r->T;
}

/* Row dots of several weights each against its own activation rows xs[i] (T, K), in one parallel
 * region: each job's rows are quantized apart, as a call of its own would quantize them. */
static int run_row_dots_each(const kernel_set *ks, const qm_weight *jobs, int njobs, int K, const float *const *xs,
                             int T, int nthreads) {
    act_set *sets = calloc((size_t)njobs, sizeof(act_set));
    act_row *rows = calloc((size_t)njobs * (size_t)T, sizeof(act_row));
    int rc = sets && rows ? QM_OK : QM_ENOMEM, made = 0;
    for (int i = 0; rc == QM_OK && i < njobs; i++, made++) {
        const int blk = ks->row_dot_blk[jobs[i].type_id] == 256 ? 256 : 32;
        if (act_set_alloc(&sets[i], T, K, blk) != 0) { rc = QM_ENOMEM; break; }
        for (int t = 0; t < T; t++) {
            act_row r = act_set_row(&sets[i], t);
            ks->quantize_row(xs[i] + (size_t)t * K, K, blk, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16,
                             (int16_t *)r.s32);
            rows[(size_t)i * T + t] = act_set_row(&sets[i], t);
        }
    }
    if (rc == QM_OK) {
        const rows_per_job ctx = {rows, T};
        row_dot_region(ks, jobs, njobs, K, T, nthreads, rows_of_job, &ctx);
    }
    for (int i = 0; i < made; i++) act_set_free(&sets[i]);
    free(sets);
    free(rows);
    return rc;
}

int qmatmul_each_run(int level, const qm_weight *jobs, int njobs, int K, const float *const *xs, int T,
                     int nthreads) {
    if (njobs <= 0) return QM_OK;
    for (int i = 0; i < njobs; i++) {
        const int rc = check(&jobs[i], K, T);
        if (rc != QM_OK) return rc;
    }
    if (nthreads < 1) nthreads = 1;
    const kernel_set *ks = kernels_for_level(level);
    int rowdot = 1;
    for (int i = 0; i < njobs; i++)
        rowdot = rowdot && jobs[i].type_id != QT_Q4_0_X16 && uses_row_dots(ks, jobs[i].type_id, T);
    if (rowdot) return run_row_dots_each(ks, jobs, njobs, K, xs, T, nthreads);
    for (int i = 0; i < njobs; i++) {   /* other paths: one weight at a time */
        const int rc = qmatmul_many_run(level, &jobs[i], 1, K, xs[i], T, nthreads);
        if (rc != QM_OK) return rc;
    }
    return QM_OK;
}

int qmatmul_many_run(int level, const qm_weight *jobs, int njobs, int K, const float *x, int T, int nthreads) {
    if (njobs <= 0) return QM_OK;
    for (int i = 0; i < njobs; i++) {
        const int rc = check(&jobs[i], K, T);
        if (rc != QM_OK) return rc;
    }
    if (nthreads < 1) nthreads = 1;
    const kernel_set *ks = kernels_for_level(level);
    const int x16 = ks->x16_gemm != NULL;
    int all_x16 = 1, any_x16 = 0;
    for (int i = 0; i < njobs; i++) {
        all_x16 = all_x16 && jobs[i].type_id == QT_Q4_0_X16;
        any_x16 = any_x16 || jobs[i].type_id == QT_Q4_0_X16;
    }
    if (x16 && all_x16) return run_x16(ks, jobs, njobs, K, x, T, nthreads);
    int rowdot = 1, tiles = 1;
    for (int i = 0; i < njobs; i++) {
        const int r = uses_row_dots(ks, jobs[i].type_id, T);
        rowdot = rowdot && r;
        tiles = tiles && !r;
    }
    if (rowdot) return run_row_dots(ks, jobs, njobs, K, x, T, nthreads);
    if (tiles && njobs <= QM_MAX_JOBS && !(x16 && any_x16)) return run_tiles(ks, jobs, njobs, K, x, T, nthreads);
    for (int i = 0; i < njobs; i++) {   /* a mix of paths: one job at a time */
        const qm_weight *j = &jobs[i];
        const int rc = x16 && j->type_id == QT_Q4_0_X16 ? run_x16(ks, j, 1, K, x, T, nthreads)
                       : uses_row_dots(ks, j->type_id, T) ? run_row_dots(ks, j, 1, K, x, T, nthreads)
                                                          : run_tiles(ks, j, 1, K, x, T, nthreads);
        if (rc != QM_OK) return rc;
    }
    return QM_OK;
}

int qmatmul_run(int level, int type_id, const uint8_t *w, size_t row_stride, int N, int K, const float *x,
                int T, float *out, int nthreads) {
    const qm_weight job = {type_id, w, row_stride, N, out};
    return qmatmul_many_run(level, &job, 1, K, x, T, nthreads);
}
