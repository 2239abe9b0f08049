/*
 * faiss_bridge.cpp - the vector index behind vindex.h: FAISS's HNSW graph
 * over a storage index of our own, whose distance computer uses AVX2/FMA
 * when the CPU has them (Debian's libfaiss 1.7.3 has only scalar kernels
 * and no compiled C API). Also the file format, and the per-vector chunk
 * id, ACL set and source that let a search see only what a caller may read.
 *
 * No C++ exception crosses the extern "C" face: each entry point catches
 * and turns them into a ctx_error.
 */
extern "C" {
#include "../core/ctx.h"
}
#include "vindex_int.h"

#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <unordered_map>
#include <vector>

#include <unistd.h>

namespace {

/* ---- kernels ---- */

float l2_scalar(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

__attribute__((target("avx2,fma"))) float l2_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
    }
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_hadd_ps(h, h);
    h = _mm_hadd_ps(h, h);
    float s = _mm_cvtss_f32(h);
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

bool cpu_has_simd()
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

float (*l2)(const float *, const float *, size_t) = cpu_has_simd() ? l2_avx2 : l2_scalar;

/*
 * The dot product of a query in int16 with a row's int8 code, in integers:
 * exact, so the two kernels agree to the bit. The caller scales the query
 * so that no partial sum can pass INT32_MAX (query_steps).
 */
int32_t dot8_scalar(const int16_t *q, const int8_t *c, size_t d)
{
    int32_t s = 0;
    for (size_t i = 0; i < d; i++)
        s += (int32_t)q[i] * c[i];
    return s;
}

/* 16 lanes a step: widen 16 codes to int16, multiply and add in pairs. */
__attribute__((target("avx2"))) int32_t dot8_avx2(const int16_t *q, const int8_t *c, size_t d)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256i c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(c + i)));
        __m256i c1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(c + i + 16)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(c0, _mm256_loadu_si256((const __m256i *)(q + i))));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(c1, _mm256_loadu_si256((const __m256i *)(q + i + 16))));
    }
    for (; i + 16 <= d; i += 16) {
        __m256i c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(c + i)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(c0, _mm256_loadu_si256((const __m256i *)(q + i))));
    }
    s0 = _mm256_add_epi32(s0, s1);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s0), _mm256_extracti128_si256(s0, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int32_t s = _mm_cvtsi128_si32(h);
    for (; i < d; i++)
        s += (int32_t)q[i] * c[i];
    return s;
}

/* 32 lanes a step where the CPU has AVX-512BW: half the instructions. */
__attribute__((target("avx512f,avx512bw"))) int32_t dot8_avx512(const int16_t *q,
                                                                 const int8_t *c, size_t d)
{
    __m512i s = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512i c0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c + i)));
        s = _mm512_add_epi32(s, _mm512_madd_epi16(c0, _mm512_loadu_si512(q + i)));
    }
    /* (gcc 12's _mm512_reduce_add_epi32 trips -Wuninitialized in its own header) */
    int32_t lane[16], r = 0;
    _mm512_storeu_si512(lane, s);
    for (int l = 0; l < 16; l++)
        r += lane[l];
    return i < d ? r + dot8_avx2(q + i, c + i, d - i) : r;
}

bool cpu_has_avx512()
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

int32_t (*pick_dot8(bool simd))(const int16_t *, const int8_t *, size_t)
{
    if (!simd || !cpu_has_simd())
        return dot8_scalar;
    return cpu_has_avx512() ? dot8_avx512 : dot8_avx2;
}

int32_t (*dot8)(const int16_t *, const int8_t *, size_t) = pick_dot8(true);

/*
 * query_steps - q as int16 multiples of the returned step, into q16, and
 * |q - step q16| into *qerr. The largest |q16| is kept to what d products
 * with codes of up to 127 can add to in an int32.
 */
float query_steps(const float *q, size_t d, int16_t *q16, float *qerr)
{
    float top = 0, e = 0;
    double lim = std::min(32767.0, std::floor((double)INT32_MAX / (127.0 * (double)d)));
    for (size_t i = 0; i < d; i++)
        top = std::max(top, std::fabs(q[i]));
    float st = top > 0 ? (float)(top / lim) : 1.0f;
    for (size_t i = 0; i < d; i++) {
        long v = std::lround(q[i] / st);
        q16[i] = (int16_t)std::max(-lim, std::min(lim, (double)v));
        float diff = q[i] - (float)q16[i] * st;
        e += diff * diff;
    }
    *qerr = std::sqrt(e);
    return st;
}

/* ---- the storage index ---- */

struct SimdStorage;

struct SimdDistance : faiss::DistanceComputer {
    const SimdStorage &s;
    const float *q = nullptr;
    explicit SimdDistance(const SimdStorage &st) : s(st) {}
    void set_query(const float *x) override { q = x; }
    float operator()(idx_t i) override;
    float symmetric_dis(idx_t i, idx_t j) override;
};

/*
 * Rows of one width in blocks of 1,024 rows: adding rows never moves the
 * rows before. A std::vector grows by copying everything into a larger
 * buffer, so a catch-up of a few vectors that crossed its capacity held
 * the old and the new buffer at once: a second index's worth of memory in
 * `serve` for a moment (issue 16). The last block's unused rows are the
 * only slack.
 */
template <class T> struct Rows {
    static constexpr size_t SHIFT = 10, BLOCK = size_t(1) << SHIFT;
    size_t width = 0, n = 0;
    std::vector<std::unique_ptr<T[]>> blocks;

    T *row(size_t i) { return blocks[i >> SHIFT].get() + (i & (BLOCK - 1)) * width; }
    const T *row(size_t i) const
    {
        return blocks[i >> SHIFT].get() + (i & (BLOCK - 1)) * width;
    }
    void resize(size_t rows)
    {
        while (blocks.size() * BLOCK < rows)
            blocks.emplace_back(new T[BLOCK * width]);
        n = rows;
    }
    void append(const T *x, size_t rows)
    {
        size_t at = n;
        resize(n + rows);
        for (size_t i = 0; i < rows; i++)
            std::memcpy(row(at + i), x + i * width, width * sizeof(T));
    }
    void clear()
    {
        blocks.clear();
        n = 0;
    }
    size_t bytes() const { return blocks.size() * BLOCK * width * sizeof(T); }
};

/* Plain float32 rows; exists to hand HNSW a fast distance computer. */
struct SimdStorage : faiss::Index {
    Rows<float> data;

    explicit SimdStorage(int dim) : faiss::Index(dim, faiss::METRIC_L2)
    {
        is_trained = true;
        data.width = (size_t)dim;
    }
    const float *row(idx_t i) const { return data.row((size_t)i); }
    void add(idx_t n, const float *x) override
    {
        data.append(x, (size_t)n);
        ntotal += n;
    }
    void reset() override
    {
        data.clear();
        ntotal = 0;
    }
    void reconstruct(idx_t key, float *out) const override
    {
        std::memcpy(out, row(key), sizeof(float) * (size_t)d);
    }
    /* Brute force; HNSW never calls it, but Index requires one. */
    void search(idx_t n, const float *x, idx_t k, float *dist, idx_t *labels,
                const faiss::SearchParameters *) const override
    {
        for (idx_t q = 0; q < n; q++) {
            std::vector<std::pair<float, idx_t>> all;
            for (idx_t i = 0; i < ntotal; i++)
                all.emplace_back(l2(x + q * d, row(i), (size_t)d), i);
            size_t m = std::min<size_t>((size_t)k, all.size());
            std::partial_sort(all.begin(), all.begin() + (long)m, all.end());
            for (idx_t j = 0; j < k; j++) {
                dist[q * k + j] = (size_t)j < m ? all[(size_t)j].first : FLT_MAX;
                labels[q * k + j] = (size_t)j < m ? all[(size_t)j].second : -1;
            }
        }
    }
    faiss::DistanceComputer *get_distance_computer() const override
    {
        return new SimdDistance(*this);
    }
};

float SimdDistance::operator()(idx_t i) { return l2(q, s.row(i), (size_t)s.d); }
float SimdDistance::symmetric_dis(idx_t i, idx_t j)
{
    return l2(s.row(i), s.row(j), (size_t)s.d);
}

/* The filter as bitmaps over ACL set and source ids, for the graph walk. */
struct Allowed : faiss::IDSelector {
    const vindex *vi;
    std::vector<uint64_t> acl, src;
    bool any_source = true;
    inline bool allows(size_t slot) const; /* is_member without the virtual call */
    bool is_member(idx_t slot) const override { return allows((size_t)slot); }
};

} // namespace

struct vindex {
    int dim, M;
    int64_t model_id, seq = 0, tomb_seq = 0;
    SimdStorage *storage;
    std::unique_ptr<faiss::IndexHNSW> hnsw;
    std::vector<int64_t> chunk;           /* slot -> chunk id */
    std::vector<int32_t> acl, src;        /* slot -> ACL set, source */
    std::vector<uint8_t> dead;            /* slot -> tombstoned */
    std::vector<std::vector<uint32_t>> by_acl;   /* ACL set -> its slots */
    std::vector<uint32_t> live_by_acl;           /* ACL set -> live slots */
    std::unordered_map<int64_t, uint32_t> slot_of;
    size_t ndead = 0;
    /* The partition (empty until trained): list centroids, slot -> list,
     * and its inverse (derived). Once it exists, new vectors go to it and
     * to the storage only: the graph keeps the vectors it had. */
    std::vector<float> cent;
    std::vector<uint32_t> list_of;
    std::vector<std::vector<uint32_t>> lists;
    /* Each row as int8 (derived, not saved): code[slot * dim ..] times
     * meta[slot].step is the row to within meta[slot].resid (the L2 norm
     * of the difference); norm2 is the row's squared norm. The exact scan
     * reads these, a quarter of the bytes, and measures in floats only the
     * rows these cannot rule out. xmax bounds |row| + resid over all
     * rows ever coded (the length a code can have, times its step). */
    struct code_meta {
        float step, resid, norm2; /* together: one cache line a row */
    };
    Rows<int8_t> code;
    std::vector<code_meta> meta;
    float xmax = 0;
    size_t graph_n() const { return hnsw->hnsw.levels.size(); }

    vindex(int d, int64_t model, int m) : dim(d), M(m), model_id(model)
    {
        storage = new SimdStorage(d);
        code.width = (size_t)d;
        hnsw.reset(new faiss::IndexHNSW(storage, m));
        hnsw->own_fields = true;
        hnsw->hnsw.efConstruction = 40;
    }
    void index_slot(uint32_t slot)
    {
        size_t a = (size_t)acl[slot];
        if (by_acl.size() <= a) {
            by_acl.resize(a + 1);
            live_by_acl.resize(a + 1);
        }
        by_acl[a].push_back(slot);
        live_by_acl[a] += !dead[slot];
        if (!dead[slot])
            slot_of[chunk[slot]] = slot;
    }
};

namespace {

inline bool Allowed::allows(size_t slot) const
{
    size_t a = (size_t)vi->acl[slot], s = (size_t)vi->src[slot];
    if (vi->dead[slot] || a / 64 >= acl.size() || !(acl[a / 64] >> (a % 64) & 1))
        return false;
    return any_source || (s / 64 < src.size() && (src[s / 64] >> (s % 64) & 1));
}

/* How many rows ahead the exact scan asks for a row's code: ~a memory
 * latency's worth of 384-byte rows. */
constexpr size_t SCAN_AHEAD = 4;

/* prefetch - ask for n bytes' cache lines before they are needed. */
void prefetch(const void *at, size_t n)
{
    const char *p = (const char *)at, *end = p + n;
    for (; p < end; p += 64)
        __builtin_prefetch(p, 0, 0);
}

/* keep_best - (dist, slot) into top, a max-heap of the k nearest so far. */
void keep_best(std::vector<std::pair<float, uint32_t>> &top, size_t k, float dist, uint32_t slot)
{
    if (top.size() < k) {
        top.emplace_back(dist, slot);
        std::push_heap(top.begin(), top.end());
    } else if (dist < top.front().first) {
        std::pop_heap(top.begin(), top.end());
        top.back() = {dist, slot};
        std::push_heap(top.begin(), top.end());
    }
}

void set_bits(std::vector<uint64_t> &bits, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] > INT32_MAX)
            continue;
        size_t b = (size_t)ids[i];
        if (bits.size() <= b / 64)
            bits.resize(b / 64 + 1);
        bits[b / 64] |= 1ULL << (b % 64);
    }
}

void make_allowed(const vindex *vi, const vindex_filter *f, Allowed &sel)
{
    sel.vi = vi;
    set_bits(sel.acl, f->acl_ids, f->nacl);
    sel.any_source = !f->source_ids;
    if (f->source_ids)
        set_bits(sel.src, f->source_ids, f->nsource);
}

template <class T> void grow(std::vector<T> &v, size_t need)
{
    if (v.capacity() < need)
        v.reserve(std::max(need, v.size() + v.size() / 4));
}

/* encode - the int8 codes of rows from .. the last. */
void encode(vindex &vi, size_t from)
{
    size_t n = vi.chunk.size(), d = (size_t)vi.dim;
    grow(vi.meta, n);
    vi.code.resize(n);
    vi.meta.resize(n);
    for (size_t slot = from; slot < n; slot++) {
        const float *x = vi.storage->row((faiss::Index::idx_t)slot);
        float top = 0, e = 0, nn = 0;
        for (size_t i = 0; i < d; i++)
            top = std::max(top, std::fabs(x[i]));
        float st = top > 0 ? top / 127.0f : 1.0f;
        for (size_t i = 0; i < d; i++) {
            long v = std::lround(x[i] / st);
            int8_t c = (int8_t)std::max(-127L, std::min(127L, v));
            float diff = x[i] - (float)c * st;
            vi.code.row(slot)[i] = c;
            e += diff * diff;
            nn += x[i] * x[i];
        }
        vi.meta[slot] = {st, std::sqrt(e), nn};
        vi.xmax = std::max(vi.xmax, std::sqrt(nn) + vi.meta[slot].resid);
    }
}

int fail(ctx_error *err, int code, const char *what, const char *detail)
{
    return ctx_error_set(err, code, "vector index: %s: %s", what, detail);
}

/* ---- the partition (an inverted file over the stored vectors) ----
 *
 * The graph walk cannot reach a good recall when most vectors are
 * forbidden (its queue fills with them) or when a cluster's members are
 * almost equally far apart (it stops early). The partition scans exactly:
 * the lists whose centroids are nearest the query, every allowed vector in
 * them, until at least nprobe lists and k allowed vectors were seen. Its
 * cost follows the lists probed, not the allowed share.
 */
constexpr size_t IVF_TRAIN_AT = 50000;  /* live vectors before it is trained on its own */
constexpr size_t IVF_NLIST = 2048;
constexpr size_t IVF_SAMPLE = 32768;    /* rows k-means is trained on */
constexpr int IVF_ITERS = 6;

struct Rng {
    uint64_t x;
    uint64_t next()
    {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        return x * 0x2545f4914f6cdd1dULL;
    }
};

size_t nearest(const float *v, const float *c, size_t k, size_t d)
{
    size_t best = 0;
    float bd = FLT_MAX;
    for (size_t j = 0; j < k; j++) {
        float t = l2(v, c + j * d, d);
        if (t < bd) {
            bd = t;
            best = j;
        }
    }
    return best;
}

/*
 * Spherical k-means (Lloyd) of the n unit rows of x, seeded with k distinct
 * rows; a fixed seed, so the same vectors give the same partition. An
 * emptied cluster is reseeded with a row. Each centroid is scaled back to
 * unit length: a plain mean of noisy unit vectors is shorter the more it
 * averages, and short centroids are nearest to everything (one list took
 * most of the vectors). Returns k * d floats.
 */
std::vector<float> kmeans(const float *x, size_t n, size_t k, size_t d, int iters)
{
    std::vector<float> c(k * d), sum(k * d);
    std::vector<uint32_t> cnt(k);
    Rng r{0x853c49e6748fea9bULL};

    {
        /* k-means++ seeding: each next seed a row drawn in proportion to
         * its squared distance from the nearest seed so far, so that well
         * separated clusters each get one before any gets two. */
        std::vector<float> near(n, FLT_MAX);
        size_t pickd = r.next() % n;
        for (size_t j = 0; j < k; j++) {
            double total = 0, at;
            std::memcpy(&c[j * d], x + pickd * d, d * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                near[i] = std::min(near[i], l2(x + i * d, &c[j * d], d));
                total += near[i];
            }
            at = (double)(r.next() >> 11) / 9007199254740992.0 * total;
            for (pickd = 0; pickd + 1 < n && (at -= near[pickd]) > 0; pickd++)
                ;
        }
    }
    for (int it = 0; it < iters; it++) {
        std::fill(sum.begin(), sum.end(), 0.0f);
        std::fill(cnt.begin(), cnt.end(), 0);
        for (size_t i = 0; i < n; i++) {
            size_t j = nearest(x + i * d, c.data(), k, d);
            for (size_t t = 0; t < d; t++)
                sum[j * d + t] += x[i * d + t];
            cnt[j]++;
        }
        for (size_t j = 0; j < k; j++) {
            const float *src = cnt[j] ? &sum[j * d] : x + (r.next() % n) * d;
            float norm = 0;
            for (size_t t = 0; t < d; t++)
                norm += src[t] * src[t];
            norm = norm > 0 ? 1.0f / std::sqrt(norm) : 0.0f;
            for (size_t t = 0; t < d; t++)
                c[j * d + t] = src[t] * norm;
        }
    }
    return c;
}

/* The lists, from list_of. */
void partition_derive(vindex &vi)
{
    vi.lists.assign(vi.cent.size() / (size_t)vi.dim, {});
    for (size_t slot = 0; slot < vi.list_of.size(); slot++)
        vi.lists[vi.list_of[slot]].push_back((uint32_t)slot);
}

/*
 * Put slots [from, chunk.size()) into their nearest lists. Every centroid
 * is looked at: routing through centroids of centroids lost a third of the
 * recall on well separated clusters, whose centroids are all about equally
 * far from each other (bench/vector_search).
 */
void partition_assign(vindex &vi, size_t from)
{
    size_t d = (size_t)vi.dim, nlist = vi.lists.size(), n = vi.chunk.size();
    grow(vi.list_of, n);
    for (size_t slot = from; slot < n; slot++) {
        uint32_t j = (uint32_t)nearest(vi.storage->row(slot), vi.cent.data(), nlist, d);
        vi.list_of.push_back(j);
        vi.lists[j].push_back((uint32_t)slot);
    }
}

/* Train nlist centroids (at most) on a sample of the live vectors and assign every slot. */
void partition_train(vindex &vi, size_t nlist)
{
    size_t d = (size_t)vi.dim, n = vi.chunk.size(), live = n - vi.ndead;
    std::vector<uint32_t> rows;
    std::vector<float> sample;
    Rng r{0x2545f4914f6cdd1dULL};

    nlist = std::min(nlist, live);
    if (!nlist)
        return;
    rows.reserve(live);
    for (size_t i = 0; i < n; i++)
        if (!vi.dead[i])
            rows.push_back((uint32_t)i);
    for (size_t i = 0; i < rows.size() && i < IVF_SAMPLE; i++)
        std::swap(rows[i], rows[i + r.next() % (rows.size() - i)]);
    rows.resize(std::min(rows.size(), std::max(IVF_SAMPLE, nlist)));
    sample.resize(rows.size() * d);
    for (size_t i = 0; i < rows.size(); i++)
        std::memcpy(&sample[i * d], vi.storage->row(rows[i]), d * sizeof(float));
    vi.cent = kmeans(sample.data(), rows.size(), nlist, d, IVF_ITERS);
    vi.list_of.clear();
    partition_derive(vi);
    partition_assign(vi, 0);
}

/* ---- file format ----
 *
 * "CTXVIDX1", then fields in host byte order, then a trailer: the 64-bit
 * checksum of everything before it, the total length, and "CTXVEND1". A
 * file that is short, long, or fails the checksum is torn.
 */
const char MAGIC[8] = {'C', 'T', 'X', 'V', 'I', 'D', 'X', '2'}; /* 2: the partition */
const char MAGIC_END[8] = {'C', 'T', 'X', 'V', 'E', 'N', 'D', '1'};

struct Sum {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    void feed(const void *p, size_t n)
    {
        const unsigned char *b = (const unsigned char *)p;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            std::memcpy(&w, b + i, 8);
            h = (h ^ w) * 0x100000001b3ULL;
            h ^= h >> 29;
        }
        for (; i < n; i++)
            h = (h ^ b[i]) * 0x100000001b3ULL;
    }
};

struct Writer {
    explicit Writer(FILE *fp) : f(fp) {}
    FILE *f;
    Sum sum;
    uint64_t len = 0;
    bool ok = true;
    void put(const void *p, size_t n)
    {
        if (ok && n && fwrite(p, 1, n, f) != n)
            ok = false;
        sum.feed(p, n);
        len += n;
    }
    template <class T> void val(T v) { put(&v, sizeof v); }
    template <class T> void num(const T &v) { put(&v, sizeof v); }
    template <class T> void vec(const std::vector<T> &v)
    {
        val<uint64_t>(v.size());
        put(v.data(), v.size() * sizeof(T));
    }
    /* as vec() of the rows one after another: the same bytes */
    template <class T> void rows(const Rows<T> &r)
    {
        val<uint64_t>(r.n * r.width);
        for (size_t b = 0; b * Rows<T>::BLOCK < r.n; b++)
            put(r.blocks[b].get(),
                std::min(Rows<T>::BLOCK, r.n - b * Rows<T>::BLOCK) * r.width * sizeof(T));
    }
};

struct Reader {
    explicit Reader(FILE *fp) : f(fp) {}
    FILE *f;
    Sum sum;
    uint64_t len = 0, size = 0;
    bool ok = true;
    void get(void *p, size_t n)
    {
        if (!ok || len + n > size || (n && fread(p, 1, n, f) != n)) {
            ok = false;
            std::memset(p, 0, n);
            return;
        }
        sum.feed(p, n);
        len += n;
    }
    template <class T> T val()
    {
        T v;
        get(&v, sizeof v);
        return v;
    }
    template <class T> void num(T &v) { get(&v, sizeof v); }
    template <class T> void vec(std::vector<T> &v)
    {
        uint64_t n = val<uint64_t>();
        if (!ok || n > (size - len) / sizeof(T)) {
            ok = false;
            return;
        }
        v.resize(n);
        get(v.data(), n * sizeof(T));
    }
    template <class T> void rows(Rows<T> &r)
    {
        uint64_t n = val<uint64_t>();
        if (!ok || n % r.width || n > (size - len) / sizeof(T)) {
            ok = false;
            return;
        }
        r.resize(n / r.width);
        for (size_t b = 0; b * Rows<T>::BLOCK < r.n; b++)
            get(r.blocks[b].get(),
                std::min(Rows<T>::BLOCK, r.n - b * Rows<T>::BLOCK) * r.width * sizeof(T));
    }
};

/* The fields after the header, in file order: one list for both ways. */
template <class IO> void body(IO &io, vindex &vi)
{
    faiss::HNSW &h = vi.hnsw->hnsw;
    io.num(vi.seq);
    io.num(vi.tomb_seq);
    io.vec(vi.chunk);
    io.vec(vi.acl);
    io.vec(vi.src);
    io.vec(vi.dead);
    io.rows(vi.storage->data);
    io.vec(h.assign_probas);
    io.vec(h.cum_nneighbor_per_level);
    io.vec(h.levels);
    io.vec(h.offsets);
    io.vec(h.neighbors);
    io.num(h.entry_point);
    io.num(h.max_level);
    io.num(h.efConstruction);
    io.num(h.efSearch);
    io.vec(vi.cent);
    io.vec(vi.list_of);
}

} // namespace

extern "C" {

vindex *vindex_new(int dim, int64_t model_id, int M)
{
    try {
        return new vindex(dim, model_id, M > 0 ? M : 16);
    } catch (...) {
        return nullptr;
    }
}

void vindex_free(vindex *vi) { delete vi; }

void vindex_get_info(const vindex *vi, vindex_info *info)
{
    size_t n = vi->chunk.size();
    const faiss::HNSW &h = vi->hnsw->hnsw;
    info->model_id = vi->model_id;
    info->dim = vi->dim;
    info->n = n;
    info->dead = vi->ndead;
    info->seq = vi->seq;
    info->tomb_seq = vi->tomb_seq;
    info->bytes = vi->storage->data.bytes() +
                  h.neighbors.capacity() * sizeof(faiss::HNSW::storage_idx_t) +
                  h.offsets.capacity() * sizeof(size_t) + h.levels.capacity() * sizeof(int) +
                  vi->chunk.capacity() * 8 + vi->acl.capacity() * 4 + vi->src.capacity() * 4 +
                  vi->dead.capacity() + n * 4 /* by_acl */ +
                  vi->slot_of.size() * (sizeof(void *) * 2 + 16) +
                  vi->slot_of.bucket_count() * sizeof(void *) +
                  vi->cent.capacity() * sizeof(float) + vi->code.bytes() +
                  vi->meta.capacity() * sizeof(vindex::code_meta) +
                  vi->list_of.capacity() * 4 * 2 /* and the lists */;
}

int vindex_add(vindex *vi, size_t n, const float *vecs, const int64_t *chunk_ids,
               const int64_t *acl_ids, const int64_t *source_ids, int64_t seq, ctx_error *err)
{
    try {
        size_t base = vi->chunk.size();
        if (base + n > UINT32_MAX)
            return fail(err, CTX_ETOOBIG, "add", "more than 2^32 vectors in one index");
        for (size_t i = 0; i < n; i++)
            if (acl_ids[i] < 0 || acl_ids[i] > INT32_MAX || source_ids[i] < 0 ||
                source_ids[i] > INT32_MAX)
                return fail(err, CTX_EINVAL, "add", "ACL set or source id out of range");
        if (n) {
            /* Grow by a quarter, not the doubling std::vector would do on
             * its own: at a million vectors the slack is the memory target. */
            faiss::HNSW &h = vi->hnsw->hnsw;
            grow(vi->chunk, base + n);
            grow(vi->acl, base + n);
            grow(vi->src, base + n);
            grow(vi->dead, base + n);
            if (vi->cent.empty()) {
                grow(h.neighbors, h.neighbors.size() + n * (size_t)(2 * vi->M + vi->M / 4 + 1));
                grow(h.levels, base + n);
                grow(h.offsets, base + n + 1);
                vi->hnsw->add((faiss::Index::idx_t)n, vecs);
            } else {
                vi->storage->add((faiss::Index::idx_t)n, vecs);
            }
        }
        for (size_t i = 0; i < n; i++) {
            vi->chunk.push_back(chunk_ids[i]);
            vi->acl.push_back((int32_t)acl_ids[i]);
            vi->src.push_back((int32_t)source_ids[i]);
            vi->dead.push_back(0);
            /* The same chunk again (it cannot be, ids are never reused, but
             * a derived index trusts nothing): the older slot dies. */
            auto it = vi->slot_of.find(chunk_ids[i]);
            if (it != vi->slot_of.end() && !vi->dead[it->second]) {
                vi->dead[it->second] = 1;
                vi->live_by_acl[(size_t)vi->acl[it->second]]--;
                vi->ndead++;
            }
            vi->index_slot((uint32_t)(base + i));
        }
        encode(*vi, base);
        if (!vi->cent.empty())
            partition_assign(*vi, base);
        else if (vi->chunk.size() - vi->ndead >= IVF_TRAIN_AT)
            partition_train(*vi, IVF_NLIST);
        if (seq > vi->seq)
            vi->seq = seq;
        return CTX_OK;
    } catch (const std::exception &e) {
        return fail(err, CTX_EINTERNAL, "add", e.what());
    }
}

int vindex_partition(vindex *vi, size_t nlist, ctx_error *err)
{
    try {
        partition_train(*vi, nlist ? nlist : IVF_NLIST);
        return CTX_OK;
    } catch (const std::exception &e) {
        return fail(err, CTX_EINTERNAL, "partition", e.what());
    }
}

size_t vindex_lists(const vindex *vi) { return vi->lists.size(); }

void vindex_remove(vindex *vi, int64_t chunk_id, int64_t tomb_seq)
{
    auto it = vi->slot_of.find(chunk_id);
    if (it != vi->slot_of.end()) {
        uint32_t s = it->second;
        if (!vi->dead[s]) {
            vi->dead[s] = 1;
            vi->live_by_acl[(size_t)vi->acl[s]]--;
            vi->ndead++;
        }
        vi->slot_of.erase(it);
    }
    if (tomb_seq > vi->tomb_seq)
        vi->tomb_seq = tomb_seq;
}

size_t vindex_compact(vindex *vi)
{
    size_t g = vi->graph_n(), n = vi->chunk.size(), d = (size_t)vi->dim, w = g;

    if (vi->cent.empty())
        return 0; /* every slot is in the graph, whose nodes are its slots */
    for (size_t s = g; s < n; s++) {
        if (vi->dead[s])
            continue;
        if (w != s) {
            std::memcpy(vi->storage->data.row(w), vi->storage->data.row(s), d * sizeof(float));
            std::memcpy(vi->code.row(w), vi->code.row(s), d);
            vi->meta[w] = vi->meta[s];
            vi->chunk[w] = vi->chunk[s];
            vi->acl[w] = vi->acl[s];
            vi->src[w] = vi->src[s];
            vi->dead[w] = 0;
            vi->list_of[w] = vi->list_of[s];
        }
        w++;
    }
    if (w == n)
        return 0;
    /* Shorter, with the room kept: the vectors to come fill it again. */
    vi->storage->data.resize(w);
    vi->storage->ntotal = (faiss::Index::idx_t)w;
    vi->code.resize(w);
    vi->meta.resize(w);
    vi->chunk.resize(w);
    vi->acl.resize(w);
    vi->src.resize(w);
    vi->dead.resize(w);
    vi->list_of.resize(w);
    partition_derive(*vi);
    for (auto &slots : vi->by_acl)
        slots.clear();
    std::fill(vi->live_by_acl.begin(), vi->live_by_acl.end(), 0);
    vi->slot_of.clear();
    vi->ndead = 0;
    for (size_t s = 0; s < w; s++) {
        vi->ndead += vi->dead[s];
        vi->index_slot((uint32_t)s);
    }
    return n - w;
}

size_t vindex_count(const vindex *vi, const vindex_filter *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nacl; i++)
        if (f->acl_ids[i] >= 0 && (size_t)f->acl_ids[i] < vi->live_by_acl.size())
            n += vi->live_by_acl[(size_t)f->acl_ids[i]];
    return n;
}

static void sort_hits(std::vector<std::pair<float, uint32_t>> &top, const vindex *vi,
                      vindex_hit *out, size_t *n)
{
    std::sort(top.begin(), top.end());
    for (size_t i = 0; i < top.size(); i++) {
        out[i].chunk_id = vi->chunk[top[i].second];
        out[i].score = 1.0f - top[i].first / 2.0f;
    }
    *n = top.size();
}

/*
 * The exact scan, in two steps. The query is put in int16 steps (error
 * qerr) and each allowed row's int8 code gives its distance to within
 * 2 |q| resid + 2 qerr xmax (Cauchy-Schwarz on the two codes' errors), so
 * a range [lo, hi] per row; once k rows have hi <= t, a row with lo > t
 * cannot be among the k nearest. The rows left are measured in floats.
 * The answer is the same as measuring every row in floats; only the work
 * differs: a quarter of the bytes and integer multiply-adds for most rows.
 */
int vindex_search_exact(const vindex *vi, const float *q, int k, const vindex_filter *f,
                        vindex_hit *out, size_t *n, ctx_error *err)
{
    try {
        std::vector<std::pair<float, uint32_t>> top, bound; /* max-heaps on distance */
        std::vector<std::pair<float, uint32_t>> maybe;      /* (lo, slot) */
        std::vector<uint64_t> srcbits;
        size_t d = (size_t)vi->dim;
        float qn2 = 0, qn, t = FLT_MAX, qs, qerr, slack;
        *n = 0;
        if (k <= 0 || !d)
            return CTX_OK;
        std::vector<int16_t> q16(d);
        qs = query_steps(q, d, q16.data(), &qerr);
        if (f->source_ids)
            set_bits(srcbits, f->source_ids, f->nsource);
        for (size_t i = 0; i < d; i++)
            qn2 += q[i] * q[i];
        qn = std::sqrt(qn2);
        /* the query's share of the bound, and a margin for float sums */
        slack = 2 * qerr * vi->xmax * 1.001f + 1e-4f * (1 + qn2);
        top.reserve((size_t)k + 1);
        bound.reserve((size_t)k + 1);
        for (size_t i = 0; i < f->nacl; i++) {
            if (f->acl_ids[i] < 0 || (size_t)f->acl_ids[i] >= vi->by_acl.size())
                continue;
            const std::vector<uint32_t> &slots = vi->by_acl[(size_t)f->acl_ids[i]];
            for (size_t j = 0; j < slots.size(); j++) {
                uint32_t slot = slots[j];
                /* The rows lie in insertion order, not this list's: fetch
                 * those a few ahead while this one is measured. */
                if (j + SCAN_AHEAD < slots.size()) {
                    uint32_t next = slots[j + SCAN_AHEAD];
                    prefetch(vi->code.row(next), d);
                    prefetch(&vi->meta[next], sizeof(vindex::code_meta));
                }
                const vindex::code_meta &m = vi->meta[slot];
                if (vi->dead[slot])
                    continue;
                if (f->source_ids) {
                    size_t s = (size_t)vi->src[slot];
                    if (s / 64 >= srcbits.size() || !(srcbits[s / 64] >> (s % 64) & 1))
                        continue;
                }
                float mid = qn2 + m.norm2 -
                            2 * m.step * qs *
                                (float)dot8(q16.data(), vi->code.row(slot), d);
                float r = 2 * qn * m.resid * 1.001f + slack;
                if (mid - r > t)
                    continue;
                maybe.emplace_back(mid - r, slot);
                keep_best(bound, (size_t)k, mid + r, slot);
                if (bound.size() == (size_t)k)
                    t = bound.front().first;
            }
        }
        size_t left = 0; /* the rows t did not rule out since */
        for (const auto &m : maybe)
            if (m.first <= t)
                maybe[left++] = m;
        for (size_t j = 0; j < left; j++) {
            if (j + 2 < left)
                prefetch(vi->storage->row(maybe[j + 2].second), d * sizeof(float));
            keep_best(top, (size_t)k, l2(q, vi->storage->row(maybe[j].second), d),
                      maybe[j].second);
        }
        sort_hits(top, vi, out, n);
        return CTX_OK;
    } catch (const std::exception &e) {
        return fail(err, CTX_EINTERNAL, "exact search", e.what());
    }
}

int vindex_search_ann(const vindex *vi, const float *q, int k, int ef, const vindex_filter *f,
                      vindex_hit *out, size_t *n, ctx_error *err)
{
    try {
        /*
         * FAISS 1.7.3 sizes the walk's candidate queue by max(the graph's
         * own efSearch, k) and ignores the parameter's, so the walk is
         * widened by asking for ef results; the selector admits only
         * allowed vectors into them, and the best k are kept.
         */
        int wide = std::max(ef, k);
        std::vector<faiss::Index::idx_t> ids((size_t)wide, -1);
        std::vector<float> dist((size_t)wide, FLT_MAX);
        std::vector<std::pair<float, uint32_t>> top;
        faiss::SearchParametersHNSW params;
        Allowed sel;
        *n = 0;
        if (k <= 0 || !vi->graph_n() || !f->nacl)
            return CTX_OK;
        make_allowed(vi, f, sel);
        params.sel = &sel;
        params.efSearch = wide;
        /* One query: walk the graph here rather than through
         * IndexHNSW::search, which starts an OpenMP team per call. */
        faiss::VisitedTable vt((int)vi->chunk.size());
        SimdDistance dc(*vi->storage);
        dc.set_query(q);
        vi->hnsw->hnsw.search(dc, wide, ids.data(), dist.data(), vt, &params);
        for (int i = 0; i < wide; i++)
            if (ids[(size_t)i] >= 0 && sel.is_member(ids[(size_t)i]))
                top.emplace_back(dist[(size_t)i], (uint32_t)ids[(size_t)i]);
        std::sort(top.begin(), top.end());
        if (top.size() > (size_t)k)
            top.resize((size_t)k);
        sort_hits(top, vi, out, n);
        return CTX_OK;
    } catch (const std::exception &e) {
        return fail(err, CTX_EINTERNAL, "search", e.what());
    }
}

int vindex_search_ivf(const vindex *vi, const float *q, int k, int nprobe,
                      const vindex_filter *f, vindex_hit *out, size_t *n, ctx_error *err)
{
    try {
        std::vector<std::pair<float, uint32_t>> order, top; /* top: a max-heap */
        std::vector<uint32_t> mine; /* a list's allowed slots */
        size_t d = (size_t)vi->dim, nlist = vi->lists.size(), found = 0, sorted;
        Allowed sel;
        *n = 0;
        if (k <= 0 || !nlist || !f->nacl)
            return CTX_OK;
        make_allowed(vi, f, sel);
        order.reserve(nlist);
        for (size_t j = 0; j < nlist; j++)
            order.emplace_back(l2(q, &vi->cent[j * d], d), (uint32_t)j);
        /* Only the nearest nprobe lists in order; the rest if they are needed. */
        sorted = std::min(nlist, (size_t)std::max(nprobe, 1));
        std::partial_sort(order.begin(), order.begin() + (ptrdiff_t)sorted, order.end());
        top.reserve((size_t)k + 1);
        for (size_t p = 0; p < nlist; p++) {
            if ((int)p >= nprobe && found >= (size_t)k)
                break;
            if (p == sorted) {
                std::sort(order.begin() + (ptrdiff_t)sorted, order.end());
                sorted = nlist;
            }
            /* The filter first: a row is fetched only if the caller may read it. */
            mine.clear();
            for (uint32_t slot : vi->lists[order[p].second])
                if (sel.allows(slot))
                    mine.push_back(slot);
            found += mine.size();
            for (size_t j = 0; j < mine.size(); j++) {
                if (j + SCAN_AHEAD < mine.size())
                    prefetch(vi->storage->row(mine[j + SCAN_AHEAD]), d * sizeof(float));
                keep_best(top, (size_t)k, l2(q, vi->storage->row(mine[j]), d), mine[j]);
            }
        }
        sort_hits(top, vi, out, n);
        return CTX_OK;
    } catch (const std::exception &e) {
        return fail(err, CTX_EINTERNAL, "partition search", e.what());
    }
}

float vindex_l2sq(const float *a, const float *b, size_t d) { return l2(a, b, d); }

int vindex_simd(void) { return l2 == l2_avx2; }

void vindex_simd_set(int on)
{
    l2 = on && cpu_has_simd() ? l2_avx2 : l2_scalar;
    dot8 = pick_dot8(on);
}

void vindex_threads_set(int n) { omp_set_num_threads(n > 0 ? n : omp_get_num_procs()); }

int vindex_save(const vindex *vi, const char *path, ctx_error *err)
{
    std::string tmp = std::string(path) + ".tmp";
    FILE *f;
    int lockfd, rc;
    /* Locked while written and renamed: vindex_maintain leaves it alone. */
    if ((rc = vindex__tmp_open(tmp.c_str(), &f, &lockfd, err)))
        return rc;
    struct unlock {
        int fd;
        ~unlock() { close(fd); }
    } held{lockfd};
    try {
        Writer w(f);
        w.put(MAGIC, 8);
        w.val<int32_t>(vi->dim);
        w.val<int32_t>(vi->M);
        w.val<int64_t>(vi->model_id);
        body(w, *const_cast<vindex *>(vi));
        uint64_t sum = w.sum.h, total = w.len + 24;
        bool ok = w.ok && fwrite(&sum, 8, 1, f) == 1 && fwrite(&total, 8, 1, f) == 1 &&
                  fwrite(MAGIC_END, 8, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (fclose(f) != 0 || !ok) {
            int e = errno;
            unlink(tmp.c_str());
            return ctx_error_set(err, CTX_EIO, "vector index: cannot write %s: %s; check free"
                                 " space in the data_dir", tmp.c_str(), strerror(e));
        }
    } catch (const std::exception &e) {
        fclose(f);
        unlink(tmp.c_str());
        return fail(err, CTX_EINTERNAL, "save", e.what());
    }
    if (rename(tmp.c_str(), path) != 0) {
        int e = errno;
        unlink(tmp.c_str());
        return ctx_error_set(err, CTX_EIO, "vector index: cannot rename to %s: %s", path,
                             strerror(e));
    }
    return CTX_OK;
}

int vindex_peek(const char *path, int64_t *model_id, int64_t *seq, int64_t *tomb_seq)
{
    /* The header and the first two fields of body(), at fixed offsets. */
    unsigned char h[40];
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(h, 1, sizeof h, f) : 0;

    if (f)
        fclose(f);
    if (got != sizeof h || std::memcmp(h, MAGIC, 8))
        return CTX_EIO;
    std::memcpy(model_id, h + 16, 8);
    std::memcpy(seq, h + 24, 8);
    std::memcpy(tomb_seq, h + 32, 8);
    return CTX_OK;
}

int vindex_load(const char *path, vindex **out, ctx_error *err)
{
    FILE *f = fopen(path, "rb");
    char magic[8];
    *out = nullptr;
    if (!f)
        return errno == ENOENT ? ctx_error_set(err, CTX_ENOTFOUND, "vector index: %s: missing", path)
                               : ctx_error_set(err, CTX_EIO, "vector index: %s: %s", path,
                                               strerror(errno));
    try {
        fseeko(f, 0, SEEK_END);
        off_t size = ftello(f);
        fseeko(f, 0, SEEK_SET);
        if (size < 8 + 24) {
            fclose(f);
            return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (too short)", path);
        }
        Reader r(f);
        r.size = (uint64_t)size - 24;
        r.get(magic, 8);
        int dim = r.val<int32_t>(), M = r.val<int32_t>();
        int64_t model = r.val<int64_t>();
        if (!r.ok || std::memcmp(magic, MAGIC, 8) || dim < 1 || dim > 65536 || M < 2 || M > 512) {
            fclose(f);
            return ctx_error_set(err, CTX_EIO, "vector index: %s: not an index file", path);
        }
        std::unique_ptr<vindex> vi(new vindex(dim, model, M));
        faiss::HNSW &h = vi->hnsw->hnsw;
        body(r, *vi);
        uint64_t sum = 0, total = 0;
        char end[8] = {0};
        bool tail = fread(&sum, 8, 1, f) == 1 && fread(&total, 8, 1, f) == 1 &&
                    fread(end, 8, 1, f) == 1;
        fclose(f);
        f = nullptr;
        size_t n = vi->chunk.size();
        if (!r.ok || !tail || r.len != r.size || sum != r.sum.h || total != (uint64_t)size ||
            std::memcmp(end, MAGIC_END, 8) || vi->acl.size() != n || vi->src.size() != n ||
            vi->dead.size() != n || vi->storage->data.n != n ||
            h.levels.size() > n || (vi->cent.empty() && h.levels.size() != n) ||
            h.offsets.size() != h.levels.size() + 1 ||
            (!h.levels.empty() && (h.entry_point < 0 || (size_t)h.entry_point >= h.levels.size())))
            return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (size or checksum)", path);
        for (int32_t nb : h.neighbors)
            if (nb < -1 || (nb >= 0 && (size_t)nb >= h.levels.size()))
                return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (graph)", path);
        {
            size_t nlist = vi->cent.size() / (size_t)dim;
            bool ok = vi->cent.empty() ? vi->list_of.empty()
                                       : vi->cent.size() == nlist * (size_t)dim &&
                                             vi->list_of.size() == n;
            for (size_t i = 0; ok && !vi->cent.empty() && i < n; i++)
                ok = vi->list_of[i] < nlist;
            if (!ok)
                return ctx_error_set(err, CTX_EIO, "vector index: %s: torn (partition)", path);
            partition_derive(*vi);
        }
        vi->storage->ntotal = (faiss::Index::idx_t)n;
        vi->hnsw->ntotal = (faiss::Index::idx_t)vi->graph_n();
        encode(*vi, 0);
        for (size_t i = 0; i < n; i++) {
            vi->ndead += vi->dead[i] != 0;
            vi->index_slot((uint32_t)i);
        }
        *out = vi.release();
        return CTX_OK;
    } catch (const std::exception &e) {
        if (f)
            fclose(f);
        return fail(err, CTX_EIO, path, e.what());
    }
}

} /* extern "C" */
