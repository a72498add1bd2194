/* Saving and loading models and checkpoints (<libae/io.h>); the format is
 * docs/file-format.md. The writer serialises into a buffer (first counting
 * its size); the loader checks the magic, the version, the size and the
 * CRC-32, then every section's length against what its counts imply
 * before anything is allocated, rebuilds the model through the config
 * builder, and restores its state. Every read is bounds-checked. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <libae/io.h>

#include "model/model.h"

static const unsigned char magic[8] = {0x89, 'A', 'E', 'M', '\r', '\n', 0x1A, '\n'};

#define HEADER_SIZE 32
#define CRC_SIZE 4
#define SECTION_HEADER 16
#define ARCH_HEADER 40
#define LAYER_RECORD 128
#define SETTING_RECORD 16
#define BLOCK_RECORD 32
#define TRAN_FIXED 120 /* TRAN up to its per-unit list */
#define FITS_FIXED 192 /* FITS up to its best copy */
#define FLAG_CHECKPOINT 1u
#define SECTION_OPTIONAL 1u
/* Layer record flags. */
#define LF_BIAS 1u
#define LF_FROZEN 2u
#define LF_TIED 4u
/* Penalty flags. */
#define PF_KL 1u
#define PF_KL_SUM 2u
#define PF_L1 4u

/* The sections after S_TRAN are those of 1.1, optional: S_VALU (the value
 * convention of the training data; a model may have none) and S_FITS (the
 * position of an ae_fit run, in checkpoints). A 1.0 reader skips them. */
enum { S_ARCH, S_SETS, S_PARM, S_LSTA, S_META, S_OPTM, S_TRAN, S_VALU, S_FITS, S_COUNT };
static const char section_tags[S_COUNT][5] = {"ARCH", "SETS", "PARM", "LSTA", "META", "OPTM",
                                              "TRAN", "VALU", "FITS"};
#define VALU_FIXED 48 /* VALU up to its mean and std values */

static uint32_t crc_of(const unsigned char *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* ======================================================================
 * Writing
 * ====================================================================== */

/* Writes into p[0, cap) when p is set; always advances pos (counting). */
typedef struct wbuf {
    unsigned char *p;
    size_t cap, pos;
} wbuf;

static void put(wbuf *w, const void *src, size_t n) {
    if (w->p && w->pos <= w->cap && n <= w->cap - w->pos) memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

static void le_u32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static void le_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u16(wbuf *w, uint16_t v) {
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(w, b, 2);
}
static void put_u32(wbuf *w, uint32_t v) {
    unsigned char b[4];
    le_u32(b, v);
    put(w, b, 4);
}
static void put_u64(wbuf *w, uint64_t v) {
    unsigned char b[8];
    le_u64(b, v);
    put(w, b, 8);
}
static void put_f32(wbuf *w, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}
static void put_f64(wbuf *w, double f) {
    uint64_t v;
    memcpy(&v, &f, 8);
    put_u64(w, v);
}
static void put_floats(wbuf *w, const float *p, size_t n) {
    for (size_t i = 0; i < n; i++) put_f32(w, p[i]);
}

/* Patches a u64 at `at` (written earlier) when the buffer holds it. */
static void patch_u64(wbuf *w, size_t at, uint64_t v) {
    if (w->p && at + 8 <= w->cap) le_u64(w->p + at, v);
}
static void patch_u32(wbuf *w, size_t at, uint32_t v) {
    if (w->p && at + 4 <= w->cap) le_u32(w->p + at, v);
}

static size_t section_begin(wbuf *w, int tag) {
    put(w, section_tags[tag], 4);
    /* flags: every section of 1.0 is required; those of 1.1 are optional */
    put_u32(w, tag > S_TRAN ? SECTION_OPTIONAL : 0);
    put_u64(w, 0); /* length, patched by section_end */
    return w->pos;
}

static void section_end(wbuf *w, size_t start) { patch_u64(w, start - 8, w->pos - start); }

/* The fields of a layer record (docs/file-format.md, "Layer record"). */
typedef struct layer_rec {
    uint32_t kind, act, flags;
    float slope;
    uint64_t iv[6];
    double fv[4];
    uint32_t pflags;
    double kl_rho, kl_lambda, l1_lambda;
} layer_rec;

/* Fills a record from a spec, as the kind's descriptor lays it out: its
 * integer attributes in iv[], its real ones in fv[], in the order listed;
 * bias, activation and slope only where the kind has them. 0 for a kind
 * this format version lacks. */
static int record_from_spec(const ae_layer_spec *sp, layer_rec *r) {
    memset(r, 0, sizeof *r);
    const ae_layer_desc *d = ae_layer_desc_for(sp->kind);
    if (!d) return 0;
    r->kind = (uint32_t)sp->kind;
    size_t ni = 0, nf = 0;
    for (size_t i = 0; i < d->nattrs; i++) {
        const ae_layer_attr *a = &d->attrs[i];
        if (a->type == AE_ATTR_FLOAT) {
            if (nf == 4) return 0;
            r->fv[nf++] = ae_spec_get_float(sp, a);
        } else {
            if (ni == 6) return 0;
            r->iv[ni++] = (uint64_t)ae_spec_get_int(sp, a);
        }
    }
    if (d->flags & AE_LK_BIAS) r->flags |= sp->bias ? LF_BIAS : 0;
    if (d->flags & AE_LK_ACT) {
        r->act = (uint32_t)sp->act;
        r->slope = sp->slope;
    }
    const ae_penalty_spec *p = &sp->penalty;
    if (p->kl_on) {
        r->pflags |= PF_KL | (p->kl_sum ? PF_KL_SUM : 0);
        r->kl_rho = p->kl_rho;
        r->kl_lambda = p->kl_lambda;
    }
    if (p->l1_on) {
        r->pflags |= PF_L1;
        r->l1_lambda = p->l1_lambda;
    }
    return 1;
}

static void put_record(wbuf *w, const layer_rec *r) {
    put_u32(w, r->kind);
    put_u32(w, r->act);
    put_u32(w, r->flags);
    put_f32(w, r->slope);
    for (int i = 0; i < 6; i++) put_u64(w, r->iv[i]);
    for (int i = 0; i < 4; i++) put_f64(w, r->fv[i]);
    put_u32(w, r->pflags);
    put_u32(w, 0);
    put_f64(w, r->kl_rho);
    put_f64(w, r->kl_lambda);
    put_f64(w, r->l1_lambda);
}

/* The layer a parameter block belongs to and whether it is the bias. */
static int block_owner(const ae_model *m, const ae_param_block *b, size_t *layer, int *bias) {
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (L->w_count && !L->w_transposed && m->w_own[i] == b->off && L->w_count == b->len) {
            *layer = i;
            *bias = 0;
            return 1;
        }
        if (L->b_count && L->b_off == b->off && L->b_count == b->len) {
            *layer = i;
            *bias = 1;
            return 1;
        }
    }
    return 0;
}

static void write_file(const ae_model *m, unsigned flags, wbuf *w) {
    put(w, magic, 8);
    put_u16(w, AE_FORMAT_VERSION_MAJOR);
    put_u16(w, AE_FORMAT_VERSION_MINOR);
    put_u32(w, flags & FLAG_CHECKPOINT);
    put_u64(w, 0); /* file size, patched */
    put_u32(w, 0); /* section count, patched */
    put_u32(w, 0);
    uint32_t nsections = 0;

    /* Architecture. */
    size_t s = section_begin(w, S_ARCH);
    put_u64(w, m->in_shape.c);
    put_u64(w, m->in_shape.h);
    put_u64(w, m->in_shape.w);
    put_u32(w, (uint32_t)m->nlayers);
    put_u32(w, (uint32_t)m->code_layer);
    put_u32(w, (uint32_t)m->mode);
    put_u32(w, 0);
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        layer_rec r;
        record_from_spec(&L->spec, &r); /* kinds checked by the caller */
        r.flags |= L->frozen ? LF_FROZEN : 0;
        r.flags |= i < m->code_layer && ae_model_is_tied(m, i) ? LF_TIED : 0;
        put_record(w, &r);
    }
    section_end(w, s);
    nsections++;

    /* Settings: every row of the table. */
    s = section_begin(w, S_SETS);
    size_t count_at = w->pos, n = 0;
    put_u32(w, 0);
    put_u32(w, 0);
    ae_param id;
    int is_int;
    for (size_t i = 0; ae_settings_row(i, &id, &is_int); i++, n++) {
        put_u32(w, (uint32_t)id);
        put_u32(w, is_int ? 0 : 1);
        int64_t iv = 0;
        double fv = 0.0;
        ae_settings_get(&m->s, NULL, id, is_int, &iv, &fv);
        if (is_int)
            put_u64(w, (uint64_t)iv);
        else
            put_f64(w, fv);
    }
    patch_u32(w, count_at, (uint32_t)n);
    section_end(w, s);
    nsections++;

    /* Parameters: per layer its weight as ae_model_get_weights gives it,
     * then its bias. */
    s = section_begin(w, S_PARM);
    size_t total = 0;
    for (size_t i = 0; i < m->nlayers; i++) total += m->layers[i].w_count + m->layers[i].b_count;
    put_u64(w, total);
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (L->w_transposed) {
            const float *src = m->params + L->w_off; /* the partner's [in, out] */
            for (size_t r = 0; r < L->out; r++)
                for (size_t c = 0; c < L->in; c++) put_f32(w, src[c * L->out + r]);
        } else {
            put_floats(w, m->params + L->w_off, L->w_count);
        }
        put_floats(w, m->params + L->b_off, L->b_count);
    }
    section_end(w, s);
    nsections++;

    /* Layer state (running statistics, thresholds), in layer order. */
    s = section_begin(w, S_LSTA);
    put_u64(w, m->nbuffers);
    put_floats(w, m->buffers, m->nbuffers);
    section_end(w, s);
    nsections++;

    s = section_begin(w, S_META);
    put_u32(w, (uint32_t)m->nmeta);
    put_u32(w, 0);
    for (size_t i = 0; i < m->nmeta; i++) {
        put_u32(w, (uint32_t)m->meta[i].key_len);
        put(w, m->meta[i].key, m->meta[i].key_len);
        put_u32(w, (uint32_t)m->meta[i].value_len);
        put(w, m->meta[i].value, m->meta[i].value_len);
    }
    section_end(w, s);
    nsections++;

    /* The value convention of the training data, when the model has one. */
    if (m->conv.struct_size) {
        const ae_data_convention *c = &m->conv;
        s = section_begin(w, S_VALU);
        put_u32(w, (uint32_t)c->elem);
        put_u32(w, 0);
        put_f64(w, c->scale);
        put_f64(w, c->offset);
        put_f64(w, c->lo);
        put_f64(w, c->hi);
        put_u64(w, c->std_count);
        put_floats(w, m->conv_stats, c->std_count);
        put_floats(w, m->conv_stats + m->conv_cap, c->std_count);
        section_end(w, s);
        nsections++;
    }

    if (flags & FLAG_CHECKPOINT) {
        s = section_begin(w, S_OPTM);
        put_u32(w, (uint32_t)m->nblocks);
        put_u32(w, 0);
        for (size_t b = 0; b < m->nblocks; b++) {
            const ae_param_block *blk = &m->blocks[b];
            size_t layer = 0;
            int bias = 0;
            block_owner(m, blk, &layer, &bias);
            put_u32(w, (uint32_t)layer);
            put_u32(w, (uint32_t)bias);
            put_u64(w, blk->len);
            put_u64(w, blk->step);
            put_u32(w, (uint32_t)blk->momentum_ready);
            put_u32(w, 0);
        }
        for (size_t b = 0; b < m->nblocks; b++) {
            put_floats(w, m->state1 + m->blocks[b].off, m->blocks[b].len);
            put_floats(w, m->state2 + m->blocks[b].off, m->blocks[b].len);
        }
        section_end(w, s);
        nsections++;

        s = section_begin(w, S_TRAN);
        put_u64(w, m->steps);
        for (int i = 0; i < 4; i++) put_u64(w, m->rng.s[i]);
        put_f64(w, m->last_loss);
        put_u32(w, (uint32_t)m->has_stats);
        put_u32(w, 0);
        put_f64(w, m->stat_loss);
        put_f64(w, m->stat_recon);
        put_f64(w, m->stat_kl);
        put_f64(w, m->stat_l1);
        put_f64(w, m->stat_l0);
        put_f64(w, m->stat_vae_kl);
        put_u64(w, m->stat_kept_all);
        size_t code = m->layers[m->code_layer - 1].out;
        put_u64(w, code);
        for (size_t j = 0; j < code; j++) put_u64(w, m->last_active[j]);
        /* A VAE's fixed eps (ae_vae_set_fixed_eps) replace its sampling. */
        put_u64(w, m->vae_eps ? m->vae_eps_count : 0);
        if (m->vae_eps) put_floats(w, m->vae_eps, m->vae_eps_count);
        section_end(w, s);
        nsections++;

        /* The fit's position, while it describes this model. */
        if (ae_fit_state_current(m)) {
            const ae_fit_state *f = m->fit;
            s = section_begin(w, S_FITS);
            put_u32(w, f->flags);
            put_u32(w, 0);
            put_u64(w, f->model_steps);
            put_u64(w, f->samples);
            put_u64(w, f->batch_size);
            put_u64(w, f->shuffle_seed);
            put_u64(w, f->epoch);
            put_u64(w, f->batch);
            put_u64(w, f->step);
            for (int i = 0; i < 4; i++) put_u64(w, f->order[i]);
            put_f64(w, f->acc);
            put_u64(w, f->seen);
            put_f64(w, f->last_lr);
            put_f64(w, f->best);
            put_u64(w, f->best_epoch);
            put_u64(w, f->wait);
            put_f64(w, f->lr_plateau);
            put_f64(w, f->plateau_best);
            put_u64(w, f->bad_epochs);
            put_u64(w, f->cooldown);
            put_u64(w, f->nbest_p);
            put_u64(w, f->nbest_b);
            put_floats(w, f->best_p, f->nbest_p);
            put_floats(w, f->best_b, f->nbest_b);
            section_end(w, s);
            nsections++;
        }
    }

    patch_u64(w, 16, w->pos + CRC_SIZE);
    patch_u32(w, 24, nsections);
    uint32_t crc = w->p && w->pos <= w->cap ? crc_of(w->p, w->pos) : 0;
    put_u32(w, crc);
}

/* A save changes nothing in the model; a failure's message is still kept
 * in its message buffer, as ae_model_create keeps its own in the config's. */
static ae_errbuf *save_err(const ae_model *m) { return (ae_errbuf *)&m->err; }

/* A model that saves loads: the loader refuses non-finite values, so a
 * save refuses to write them (a step or any other call should never leave
 * one; this is the last line). */
static ae_status check_finite_values(const ae_model *m, unsigned flags) {
    const char *what = NULL;
    if (!ae_all_finite(m->params, m->nparams))
        what = "a parameter";
    else if (!ae_all_finite(m->buffers, m->nbuffers))
        what = "the layer state";
    else if (flags & FLAG_CHECKPOINT) {
        double stats[7] = {m->last_loss, m->stat_loss, m->stat_recon, m->stat_kl,
                           m->stat_l1,   m->stat_l0,   m->stat_vae_kl};
        if (!ae_all_finite(m->state1, m->nparams) || !ae_all_finite(m->state2, m->nparams))
            what = "the optimizer state";
        for (int i = 0; i < 7 && !what; i++)
            if (!isfinite(stats[i])) what = "a training statistic";
        const ae_fit_state *f = m->fit;
        if (!what && ae_fit_state_current(m) &&
            (!ae_all_finite(f->best_p, f->nbest_p) || !ae_all_finite(f->best_b, f->nbest_b)))
            what = "the best epoch's copy of the parameters";
    }
    if (!what) return AE_OK;
    return ae_error(save_err(m), AE_ERR_NUMERIC,
                    "%s of the model is not finite: the file would not load; nothing was written",
                    what);
}

/* Checks the arguments, that every layer kind can be saved and that every
 * value is finite. */
static ae_status check_save(const ae_model *m, unsigned flags) {
    if (flags > AE_SAVE_CHECKPOINT)
        return ae_error(save_err(m), AE_ERR_INVALID_ARG, "unknown save flags %u", flags);
    for (size_t i = 0; i < m->nlayers; i++) {
        layer_rec r;
        if (!record_from_spec(&m->layers[i].spec, &r))
            return ae_error(save_err(m), AE_ERR_UNSUPPORTED,
                            "layer %zu (%s) cannot be saved in format version %d.%d", i,
                            ae_layer_kind_name(m->layers[i].kind), AE_FORMAT_VERSION_MAJOR,
                            AE_FORMAT_VERSION_MINOR);
    }
    return check_finite_values(m, flags);
}

static size_t file_size(const ae_model *m, unsigned flags) {
    wbuf w = {NULL, 0, 0};
    write_file(m, flags, &w);
    return w.pos;
}

ae_status ae_model_save_buffer(const ae_model *m, void *buf, size_t capacity, size_t *size,
                               unsigned flags) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!size) return ae_error(save_err(m), AE_ERR_INVALID_ARG, "size is NULL");
    if (!buf && capacity)
        return ae_error(save_err(m), AE_ERR_INVALID_ARG, "buf is NULL but capacity is %zu", capacity);
    ae_status st = check_save(m, flags);
    if (st) return st;
    size_t n = file_size(m, flags);
    *size = n;
    if (capacity < n)
        return ae_error(save_err(m), AE_ERR_RANGE, "the model needs %zu bytes; the buffer holds %zu", n,
                        capacity);
    wbuf w = {buf, capacity, 0};
    write_file(m, flags, &w);
    return AE_OK;
}

/* ---- saving to a path: atomically, through ae_file_replace ---- */

ae_status ae_model_save(const ae_model *m, const char *path, unsigned flags) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!path || !*path) return ae_error(save_err(m), AE_ERR_INVALID_ARG, "the path is NULL or empty");
    ae_status st = check_save(m, flags);
    if (st) return st;
    size_t n = file_size(m, flags);
    unsigned char *buf = ae_alloc(&m->alloc, n);
    if (!buf)
        return ae_error(save_err(m), AE_ERR_OUT_OF_MEMORY, "out of memory saving the model (%zu bytes)",
                        n);
    wbuf w = {buf, n, 0};
    write_file(m, flags, &w);
    ae_span part = {buf, n};
    ae_errbuf why;
    st = ae_file_save(&m->alloc, path, &part, 1, &why);
    if (st) ae_error(save_err(m), st, "cannot save to '%s': %s", path, why.msg);
    ae_free(&m->alloc, buf);
    return st;
}

/* ======================================================================
 * Loading
 * ====================================================================== */

typedef struct rbuf {
    const unsigned char *p;
    size_t len, pos;
} rbuf;

typedef struct loader {
    ae_allocator alloc; /* the caller's config's, or malloc */
    ae_backend backend; /* the caller's config's (ae_config_set_backend), or AUTO */
    ae_errbuf err;
    unsigned minor;
    int checkpoint;
    rbuf sec[S_COUNT];
    int have[S_COUNT];
} loader;

/* Callers check lengths first; reads past the end give zeros regardless. */
static const unsigned char *take(rbuf *r, size_t n) {
    if (r->pos > r->len || n > r->len - r->pos) {
        r->pos = r->len + 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}
static uint32_t rd_u32_at(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t rd_u64_at(const unsigned char *b) {
    return (uint64_t)rd_u32_at(b) | (uint64_t)rd_u32_at(b + 4) << 32;
}
static uint32_t get_u32(rbuf *r) {
    const unsigned char *b = take(r, 4);
    return b ? rd_u32_at(b) : 0;
}
static uint64_t get_u64(rbuf *r) {
    const unsigned char *b = take(r, 8);
    return b ? rd_u64_at(b) : 0;
}
static float get_f32(rbuf *r) {
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}
static double get_f64(rbuf *r) {
    uint64_t v = get_u64(r);
    double f;
    memcpy(&f, &v, 8);
    return f;
}

/* The code for something this release does not know: a newer minor
 * version may legitimately contain it. */
static ae_status unknown_code(const loader *ld) {
    return ld->minor > AE_FORMAT_VERSION_MINOR ? AE_ERR_VERSION : AE_ERR_FORMAT;
}

/* Section `s` must hold exactly `want` bytes (computed with overflow checks). */
static ae_status expect_len(loader *ld, int s, size_t want, int overflow, const char *what) {
    if (overflow || ld->sec[s].len != want)
        return ae_error(&ld->err, AE_ERR_FORMAT,
                        "section %s has %zu bytes but %s needs %s%zu", section_tags[s],
                        ld->sec[s].len, what, overflow ? "more than " : "", overflow ? SIZE_MAX : want);
    return AE_OK;
}

/* Header, size, checksum and the section table. */
static ae_status parse_frame(loader *ld, const unsigned char *p, size_t size) {
    if (size < 8 || memcmp(p, magic, 8) != 0) {
        if (size < 8 && memcmp(p, magic, size) == 0)
            return ae_error(&ld->err, AE_ERR_FORMAT, "truncated: %zu bytes, a model file has at least %d",
                            size, HEADER_SIZE + CRC_SIZE);
        return ae_error(&ld->err, AE_ERR_FORMAT, "not a libae model file (wrong magic)");
    }
    if (size < 12)
        return ae_error(&ld->err, AE_ERR_FORMAT, "truncated: %zu bytes, a model file has at least %d",
                        size, HEADER_SIZE + CRC_SIZE);
    unsigned major = (unsigned)p[8] | (unsigned)p[9] << 8;
    ld->minor = (unsigned)p[10] | (unsigned)p[11] << 8;
    if (major != AE_FORMAT_VERSION_MAJOR)
        return ae_error(&ld->err, AE_ERR_VERSION,
                        "format version %u.%u: this libae reads format %d.x (up to %d.%d)", major,
                        ld->minor, AE_FORMAT_VERSION_MAJOR, AE_FORMAT_VERSION_MAJOR,
                        AE_FORMAT_VERSION_MINOR);
    if (size < HEADER_SIZE + CRC_SIZE)
        return ae_error(&ld->err, AE_ERR_FORMAT, "truncated: %zu bytes, a model file has at least %d",
                        size, HEADER_SIZE + CRC_SIZE);
    uint64_t declared = rd_u64_at(p + 16);
    if (declared > size)
        return ae_error(&ld->err, AE_ERR_FORMAT, "truncated: %zu bytes of %llu", size,
                        (unsigned long long)declared);
    if (declared < size)
        return ae_error(&ld->err, AE_ERR_FORMAT, "%zu bytes where the header says %llu (trailing data)",
                        size, (unsigned long long)declared);
    uint32_t want = rd_u32_at(p + size - CRC_SIZE), got = crc_of(p, size - CRC_SIZE);
    if (want != got)
        return ae_error(&ld->err, AE_ERR_CHECKSUM,
                        "checksum mismatch (CRC-32 %08lx, stored %08lx): the file is damaged",
                        (unsigned long)got, (unsigned long)want);
    uint32_t flags = rd_u32_at(p + 12);
    if (flags & ~FLAG_CHECKPOINT)
        return ae_error(&ld->err, unknown_code(ld), "unknown file flags 0x%lx",
                        (unsigned long)flags);
    ld->checkpoint = (flags & FLAG_CHECKPOINT) != 0;
    if (rd_u32_at(p + 28) != 0)
        return ae_error(&ld->err, unknown_code(ld), "reserved header field is not 0");

    uint32_t nsec = rd_u32_at(p + 24);
    size_t pos = HEADER_SIZE, end = size - CRC_SIZE;
    for (uint32_t k = 0; k < nsec; k++) {
        if (end - pos < SECTION_HEADER)
            return ae_error(&ld->err, AE_ERR_FORMAT, "section %lu of %lu runs past the end",
                            (unsigned long)k, (unsigned long)nsec);
        const unsigned char *h = p + pos;
        uint32_t sflags = rd_u32_at(h + 4);
        uint64_t len = rd_u64_at(h + 8);
        pos += SECTION_HEADER;
        char tag[5];
        for (int i = 0; i < 4; i++) tag[i] = h[i] >= 32 && h[i] < 127 ? (char)h[i] : '?';
        tag[4] = '\0';
        if (len > end - pos)
            return ae_error(&ld->err, AE_ERR_FORMAT, "section %lu ('%s') runs past the end",
                            (unsigned long)k, tag);
        int s = 0;
        while (s < S_COUNT && memcmp(h, section_tags[s], 4) != 0) s++;
        if (sflags & ~SECTION_OPTIONAL)
            return ae_error(&ld->err, unknown_code(ld), "section %lu has unknown flags 0x%lx",
                            (unsigned long)k, (unsigned long)sflags);
        if (s == S_COUNT) {
            if (!(sflags & SECTION_OPTIONAL))
                return ae_error(&ld->err, unknown_code(ld),
                                "unknown required section '%s' (format %d.%u; this libae reads %d.%d)",
                                tag, AE_FORMAT_VERSION_MAJOR, ld->minor, AE_FORMAT_VERSION_MAJOR,
                                AE_FORMAT_VERSION_MINOR);
        } else {
            if (ld->have[s])
                return ae_error(&ld->err, AE_ERR_FORMAT, "section %s appears twice",
                                section_tags[s]);
            ld->have[s] = 1;
            ld->sec[s] = (rbuf){p + pos, (size_t)len, 0};
        }
        pos += (size_t)len;
    }
    if (pos != end)
        return ae_error(&ld->err, AE_ERR_FORMAT, "%zu bytes between the last section and the checksum",
                        end - pos);
    if (ld->have[S_FITS] && !ld->checkpoint)
        return ae_error(&ld->err, AE_ERR_FORMAT, "a FITS section in a file that is not a checkpoint");
    for (int s = 0; s <= S_TRAN; s++) {
        int need = s < S_OPTM || ld->checkpoint;
        if (need && !ld->have[s])
            return ae_error(&ld->err, AE_ERR_FORMAT, "no %s section", section_tags[s]);
        if (!need && ld->have[s])
            return ae_error(&ld->err, AE_ERR_FORMAT, "a %s section in a file that is not a checkpoint",
                            section_tags[s]);
    }
    return AE_OK;
}

static void get_record(rbuf *r, layer_rec *x) {
    x->kind = get_u32(r);
    x->act = get_u32(r);
    x->flags = get_u32(r);
    x->slope = get_f32(r);
    for (int i = 0; i < 6; i++) x->iv[i] = get_u64(r);
    for (int i = 0; i < 4; i++) x->fv[i] = get_f64(r);
    x->pflags = get_u32(r);
    (void)get_u32(r);
    x->kl_rho = get_f64(r);
    x->kl_lambda = get_f64(r);
    x->l1_lambda = get_f64(r);
}

static size_t as_size(uint64_t v) { return v > SIZE_MAX ? SIZE_MAX : (size_t)v; }

/* Adds layer `rec` to the config: a spec read as the kind's descriptor
 * lays it out (record_from_spec), checked by the builder as every builder
 * call is (ae_config_add_spec); its penalties through the public calls.
 * AE_ERR_UNSUPPORTED for an unknown kind. */
static ae_status add_layer(ae_config *cfg, const layer_rec *r) {
    const ae_layer_desc *d = ae_layer_desc_for((ae_layer_kind)r->kind);
    if (!d) return AE_ERR_UNSUPPORTED;
    ae_layer_spec spec;
    ae_layer_spec_init(&spec, d->kind);
    size_t ni = 0, nf = 0;
    for (size_t i = 0; i < d->nattrs; i++) {
        const ae_layer_attr *a = &d->attrs[i];
        if (a->type == AE_ATTR_FLOAT) {
            ae_spec_set_float(&spec, a, r->fv[nf++]);
        } else {
            uint64_t v = r->iv[ni++];
            /* A value over INT64_MAX stays out of bounds. */
            ae_spec_set_int(&spec, a, v > INT64_MAX ? INT64_MAX : (int64_t)v);
        }
    }
    if (d->flags & AE_LK_BIAS) spec.bias = (r->flags & LF_BIAS) != 0;
    if (d->flags & AE_LK_ACT) {
        spec.act = (ae_activation)r->act;
        spec.slope = r->slope;
    }
    ae_status st = ae_config_add_spec(cfg, &spec);
    if (!st && (r->pflags & PF_KL))
        st = ae_config_add_kl_sparsity(cfg, AE_LAST_LAYER, r->kl_rho, r->kl_lambda,
                                       (r->pflags & PF_KL_SUM) ? AE_REDUCE_SUM : AE_REDUCE_MEAN);
    if (!st && (r->pflags & PF_L1)) st = ae_config_add_l1_sparsity(cfg, AE_LAST_LAYER, r->l1_lambda);
    return st;
}

/* Builder errors become format errors (out of memory stays). */
static ae_status builder_error(loader *ld, ae_status st, const ae_config *cfg, const char *where) {
    return ae_error(&ld->err, st == AE_ERR_OUT_OF_MEMORY ? st : AE_ERR_FORMAT, "%s: %s", where,
                    ae_config_last_error(cfg));
}

/* ARCH and SETS into a config, through the public builder calls. The
 * frozen and tied flags are applied to the model later (load_mem). */
static ae_status build_config(loader *ld, ae_config *cfg, size_t *nlayers, size_t *code,
                              uint32_t *mode) {
    rbuf *r = &ld->sec[S_ARCH];
    if (r->len < ARCH_HEADER)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section ARCH has %zu bytes, fewer than %d", r->len,
                        ARCH_HEADER);
    uint64_t c = get_u64(r), h = get_u64(r), w = get_u64(r);
    uint32_t n = get_u32(r);
    *code = get_u32(r);
    *mode = get_u32(r);
    uint32_t reserved = get_u32(r);
    size_t want;
    int ovf = ae_mul_overflow(n, LAYER_RECORD, &want) || want > SIZE_MAX - ARCH_HEADER;
    ae_status st = expect_len(ld, S_ARCH, want + ARCH_HEADER, ovf, "its layer count");
    if (st) return st;
    if (reserved) return ae_error(&ld->err, unknown_code(ld), "ARCH: reserved field is not 0");
    if (*mode != AE_MODE_INFER && *mode != AE_MODE_TRAIN)
        return ae_error(&ld->err, unknown_code(ld), "ARCH: unknown mode %lu", (unsigned long)*mode);
    *nlayers = n;
    st = ae_config_set_input_shape(cfg, as_size(c), as_size(h), as_size(w));
    if (st) return builder_error(ld, st, cfg, "input shape");
    if (*code == 0 || *code >= n)
        return ae_error(&ld->err, AE_ERR_FORMAT,
                        "the code follows layer %zu of %lu: it must have an encoder and a decoder",
                        *code, (unsigned long)n);
    for (size_t i = 0; i < n; i++) {
        layer_rec x;
        get_record(r, &x);
        if (i == *code) {
            st = ae_config_mark_code(cfg);
            if (st) return builder_error(ld, st, cfg, "code");
        }
        st = add_layer(cfg, &x);
        if (st == AE_ERR_UNSUPPORTED)
            return ae_error(&ld->err, unknown_code(ld),
                            "layer %zu has unknown kind %lu (a newer libae may know it)", i,
                            (unsigned long)x.kind);
        char where[64];
        snprintf(where, sizeof where, "layer %zu (%s)", i, ae_layer_kind_name((ae_layer_kind)x.kind));
        if (st) return builder_error(ld, st, cfg, where);
        if (x.flags & ~(LF_BIAS | LF_FROZEN | LF_TIED))
            return ae_error(&ld->err, unknown_code(ld), "%s: unknown flags 0x%lx", where,
                            (unsigned long)x.flags);
        if ((x.flags & LF_TIED) && i >= *code)
            return ae_error(&ld->err, AE_ERR_FORMAT, "%s: only encoder layers are marked tied", where);
        /* Canonical form: what the builder made of the record must be the
         * record, so unused fields are 0, nothing was silently dropped, and
         * a value the builder normalises (a maxpool stride of 0) is stated. */
        layer_rec back;
        record_from_spec(&cfg->layers[i], &back);
        back.flags |= x.flags & (LF_FROZEN | LF_TIED);
        unsigned char a1[LAYER_RECORD], a2[LAYER_RECORD];
        wbuf w1 = {a1, sizeof a1, 0}, w2 = {a2, sizeof a2, 0};
        put_record(&w1, &back);
        put_record(&w2, &x);
        if (memcmp(a1, a2, LAYER_RECORD) != 0)
            return ae_error(&ld->err, unknown_code(ld),
                            "%s: fields the kind does not use are not 0, or a value is not in "
                            "canonical form", where);
    }

    /* Settings. */
    r = &ld->sec[S_SETS];
    if (r->len < 8)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section SETS has %zu bytes, fewer than 8", r->len);
    uint32_t ns = get_u32(r);
    reserved = get_u32(r);
    ovf = ae_mul_overflow(ns, SETTING_RECORD, &want) || want > SIZE_MAX - 8;
    if ((st = expect_len(ld, S_SETS, want + 8, ovf, "its setting count")) != AE_OK) return st;
    if (reserved) return ae_error(&ld->err, unknown_code(ld), "SETS: reserved field is not 0");
    uint64_t seen[2] = {0, 0}; /* ids < 128 seen, for duplicates */
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t id = get_u32(r), type = get_u32(r);
        uint64_t v = get_u64(r);
        int is_int;
        if (id >= 128 || ae_param_bounds((ae_param)id, &is_int, NULL, NULL, NULL) != AE_OK)
            return ae_error(&ld->err, unknown_code(ld), "unknown setting %lu",
                            (unsigned long)id);
        if (seen[id / 64] >> (id % 64) & 1)
            return ae_error(&ld->err, AE_ERR_FORMAT, "setting %lu appears twice", (unsigned long)id);
        seen[id / 64] |= (uint64_t)1 << (id % 64);
        if (type != (is_int ? 0u : 1u))
            return ae_error(&ld->err, AE_ERR_FORMAT, "setting %lu has type %lu, expected %d",
                            (unsigned long)id, (unsigned long)type, is_int ? 0 : 1);
        if (is_int)
            st = ae_config_set_int(cfg, (ae_param)id, (int64_t)v);
        else {
            double f;
            memcpy(&f, &v, 8);
            st = ae_config_set_float(cfg, (ae_param)id, f);
        }
        if (st) return builder_error(ld, st, cfg, "settings");
    }
    return AE_OK;
}

/* The parameter and state floats the architecture implies, from the
 * layers' setup (no allocation), so the sections are checked against them
 * before the model is created. */
static ae_status count_floats(loader *ld, ae_config *cfg, size_t *nparams, size_t *nstate) {
    ae_shape shape = cfg->input_shape;
    size_t np = 0, ns = 0;
    for (size_t i = 0; i < cfg->nlayers; i++) {
        ae_layer L;
        memset(&L, 0, sizeof L);
        L.in_shape = shape;
        L.in = ae_shape_size(shape);
        L.spec = cfg->layers[i];
        ae_status st = ae_layer_ops_for(cfg->layers[i].kind)->setup(&L, &cfg->layers[i], &cfg->err);
        if (st) return builder_error(ld, st, cfg, "architecture");
        if (L.w_count > SIZE_MAX - np - L.b_count || L.s_count > SIZE_MAX - ns)
            return ae_error(&ld->err, AE_ERR_FORMAT, "layer %zu has too many parameters", i);
        np += L.w_count + L.b_count;
        ns += L.s_count;
        shape = L.out_shape;
    }
    *nparams = np;
    *nstate = ns;
    return AE_OK;
}

/* Reads n finite floats into dst (NULL: check and skip). */
static ae_status get_floats(loader *ld, rbuf *r, float *dst, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        float f = get_f32(r);
        if (!isfinite(f))
            return ae_error(&ld->err, AE_ERR_FORMAT, "%s: value %zu is not finite", what, i);
        if (dst) dst[i] = f;
    }
    return AE_OK;
}

static ae_status check_float_section(loader *ld, int s, size_t count, const char *what) {
    rbuf *r = &ld->sec[s];
    if (r->len < 8)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section %s has %zu bytes, fewer than 8",
                        section_tags[s], r->len);
    uint64_t n = get_u64(r);
    if (n != count)
        return ae_error(&ld->err, AE_ERR_FORMAT, "%s: %llu values where the architecture has %zu",
                        what, (unsigned long long)n, count);
    size_t want;
    int ovf = ae_mul_overflow(count, 4, &want) || want > SIZE_MAX - 8;
    return expect_len(ld, s, want + 8, ovf, what);
}

static ae_status restore_params(loader *ld, ae_model *m) {
    rbuf *r = &ld->sec[S_PARM];
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        /* A tied decoder layer's weight is its partner's: already read. */
        ae_status st = get_floats(ld, r, L->w_transposed ? NULL : m->params + L->w_off, L->w_count,
                                  "parameters");
        if (!st) st = get_floats(ld, r, m->params + L->b_off, L->b_count, "parameters");
        if (st) return st;
    }
    ae_model_params_written(m);
    return get_floats(ld, &ld->sec[S_LSTA], m->buffers, m->nbuffers, "layer state");
}

static ae_status restore_meta(loader *ld, ae_model *m) {
    rbuf *r = &ld->sec[S_META];
    if (r->len < 8)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section META has %zu bytes, fewer than 8", r->len);
    uint32_t n = get_u32(r);
    if (get_u32(r)) return ae_error(&ld->err, unknown_code(ld), "META: reserved field is not 0");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t kl = get_u32(r);
        const unsigned char *k = take(r, kl);
        uint32_t vl = get_u32(r);
        const unsigned char *v = take(r, vl);
        if (r->pos > r->len)
            return ae_error(&ld->err, AE_ERR_FORMAT, "META: entry %lu runs past the section",
                            (unsigned long)i);
        const char *vs = v ? (const char *)v : ""; /* an empty value */
        size_t before = m->nmeta;
        ae_errbuf why;
        why.msg[0] = '\0';
        ae_status st = ae_meta_set(m, &why, (const char *)k, kl, vs, vl);
        if (st)
            return ae_error(&ld->err, st == AE_ERR_OUT_OF_MEMORY ? st : AE_ERR_FORMAT,
                            "META entry %lu: %s", (unsigned long)i, why.msg);
        if (m->nmeta == before)
            return ae_error(&ld->err, AE_ERR_FORMAT, "META: key of entry %lu appears twice",
                            (unsigned long)i);
    }
    if (r->pos != r->len)
        return ae_error(&ld->err, AE_ERR_FORMAT, "META: %zu bytes after the last entry",
                        r->len - r->pos);
    return AE_OK;
}

/* VALU: the value convention of the training data, through the public
 * setter (which checks every field against the model). */
static ae_status restore_convention(loader *ld, ae_model *m) {
    rbuf *r = &ld->sec[S_VALU];
    if (r->len < VALU_FIXED)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section VALU has %zu bytes, fewer than %d", r->len,
                        VALU_FIXED);
    ae_data_convention c;
    c.struct_size = sizeof c;
    uint32_t elem = get_u32(r), reserved = get_u32(r);
    c.scale = get_f64(r);
    c.offset = get_f64(r);
    c.lo = get_f64(r);
    c.hi = get_f64(r);
    uint64_t n = get_u64(r);
    /* The count is bounded by the section's length before anything is sized by it. */
    if (n > (r->len - VALU_FIXED) / 8 || r->len - VALU_FIXED != 8 * n)
        return ae_error(&ld->err, AE_ERR_FORMAT,
                        "section VALU has %zu bytes, not what %llu mean/std values need", r->len,
                        (unsigned long long)n);
    if (reserved) return ae_error(&ld->err, unknown_code(ld), "VALU: reserved field is not 0");
    if (elem > AE_ELEM_UINT8)
        return ae_error(&ld->err, unknown_code(ld), "VALU: unknown element type %lu",
                        (unsigned long)elem);
    c.elem = (ae_elem_type)elem;
    c.std_count = (size_t)n;
    float *v = n ? ae_alloc(&ld->alloc, 2 * (size_t)n * sizeof *v) : NULL;
    if (n && !v) return ae_error(&ld->err, AE_ERR_OUT_OF_MEMORY, "out of memory for VALU");
    ae_status st = get_floats(ld, r, v, 2 * (size_t)n, "VALU");
    if (!st && (st = ae_model_set_data_convention(m, &c, v, v ? v + n : NULL)) != AE_OK)
        st = ae_error(&ld->err, st == AE_ERR_OUT_OF_MEMORY ? st : AE_ERR_FORMAT, "VALU: %s",
                      ae_model_last_error(m));
    ae_free(&ld->alloc, v);
    return st;
}

/* TRAN, then OPTM (whose block steps cannot exceed the model's). */
static ae_status restore_checkpoint(loader *ld, ae_model *m) {
    rbuf *r = &ld->sec[S_TRAN];
    size_t want;
    int ovf;
    ae_status st;
    size_t code = m->layers[m->code_layer - 1].out, rest = 0;
    /* The fixed eps count is read from the file: the bytes left are divided
       by 4 and compared with it (4 times it could wrap around). */
    if (ae_mul_overflow(code, 8, &want) || r->len < TRAN_FIXED + want + 8 ||
        (rest = r->len - (TRAN_FIXED + want + 8)) % 4 != 0 ||
        rest / 4 != rd_u64_at(r->p + TRAN_FIXED + want))
        return ae_error(&ld->err, AE_ERR_FORMAT,
                        "section TRAN has %zu bytes, not what a code of %zu units and its fixed "
                        "eps need", r->len, code);
    m->steps = get_u64(r);
    uint64_t any = 0;
    for (int i = 0; i < 4; i++) any |= m->rng.s[i] = get_u64(r);
    if (!any) return ae_error(&ld->err, AE_ERR_FORMAT, "TRAN: the RNG state is all zero");
    m->last_loss = get_f64(r);
    uint32_t hs = get_u32(r), res = get_u32(r);
    if (hs > 1 || res) return ae_error(&ld->err, AE_ERR_FORMAT, "TRAN: invalid flags");
    m->has_stats = (int)hs;
    double *stats[6] = {&m->stat_loss, &m->stat_recon, &m->stat_kl,
                        &m->stat_l1,   &m->stat_l0,    &m->stat_vae_kl};
    int finite = isfinite(m->last_loss);
    for (int i = 0; i < 6; i++) finite &= isfinite(*stats[i] = get_f64(r));
    m->stat_kept_all = as_size(get_u64(r));
    if (!finite || m->stat_kept_all > m->nlayers)
        return ae_error(&ld->err, AE_ERR_FORMAT, "TRAN: invalid statistics");
    if (get_u64(r) != code)
        return ae_error(&ld->err, AE_ERR_FORMAT, "TRAN: the code width differs from the model's");
    for (size_t j = 0; j < code; j++) {
        m->last_active[j] = get_u64(r);
        if (m->last_active[j] > m->steps)
            return ae_error(&ld->err, AE_ERR_FORMAT, "TRAN: unit %zu was active after the last step",
                            j);
    }
    /* Length checked above: 4 bytes per value, so the count is bounded by the file. */
    size_t neps = as_size(get_u64(r));
    if (neps) {
        if (!m->has_vae || neps % code != 0 || neps / code > AE_MAX_DIM)
            return ae_error(&ld->err, AE_ERR_FORMAT,
                            "TRAN: %zu fixed eps do not fit the model (a VAE with %zu latents)", neps,
                            code);
        float *eps = ae_alloc(&m->alloc, neps * sizeof(float));
        if (!eps) return ae_error(&ld->err, AE_ERR_OUT_OF_MEMORY, "out of memory for the fixed eps");
        st = get_floats(ld, r, eps, neps, "fixed eps");
        if (!st && (st = ae_vae_set_fixed_eps(m, eps, neps)) != AE_OK)
            st = ae_error(&ld->err, st == AE_ERR_OUT_OF_MEMORY ? st : AE_ERR_FORMAT, "TRAN: %s",
                          ae_model_last_error(m));
        ae_free(&m->alloc, eps);
        if (st) return st;
    }
    r = &ld->sec[S_OPTM];
    if (r->len < 8)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section OPTM has %zu bytes, fewer than 8", r->len);
    uint32_t nb = get_u32(r);
    if (get_u32(r)) return ae_error(&ld->err, unknown_code(ld), "OPTM: reserved field is not 0");
    if (nb != m->nblocks)
        return ae_error(&ld->err, AE_ERR_FORMAT, "OPTM: %lu parameter blocks where the model has %zu",
                        (unsigned long)nb, m->nblocks);
    size_t floats = 0;
    for (size_t b = 0; b < m->nblocks; b++) floats += m->blocks[b].len;
    ovf = ae_mul_overflow(floats, 8, &want) || want > SIZE_MAX - 8 - nb * (size_t)BLOCK_RECORD;
    st = expect_len(ld, S_OPTM, 8 + nb * (size_t)BLOCK_RECORD + want, ovf,
                              "the optimizer state");
    if (st) return st;
    for (size_t b = 0; b < m->nblocks; b++) {
        ae_param_block *blk = &m->blocks[b];
        size_t layer = 0;
        int bias = 0;
        block_owner(m, blk, &layer, &bias);
        uint32_t fl = get_u32(r), fb = get_u32(r);
        uint64_t len = get_u64(r), step = get_u64(r);
        uint32_t ready = get_u32(r), res = get_u32(r);
        if (fl != layer || fb != (uint32_t)bias || len != blk->len)
            return ae_error(&ld->err, AE_ERR_FORMAT,
                            "OPTM: block %zu is layer %lu %s (%llu values); the model's is layer "
                            "%zu %s (%zu)",
                            b, (unsigned long)fl, fb ? "bias" : "weight", (unsigned long long)len,
                            layer, bias ? "bias" : "weight", blk->len);
        if (ready > 1 || res || step > m->steps)
            return ae_error(&ld->err, AE_ERR_FORMAT, "OPTM: block %zu has invalid fields", b);
        blk->step = step;
        blk->momentum_ready = (int)ready;
    }
    for (size_t b = 0; b < m->nblocks; b++) {
        const ae_param_block *blk = &m->blocks[b];
        st = get_floats(ld, r, m->state1 + blk->off, blk->len, "optimizer state");
        if (!st) st = get_floats(ld, r, m->state2 + blk->off, blk->len, "optimizer state");
        if (st) return st;
    }

    return AE_OK;
}

/* FITS: the position of the ae_fit run that wrote the checkpoint, checked
 * against the model it was saved with (TRAN read before). */
static ae_status restore_fit_state(loader *ld, ae_model *m) {
    rbuf *r = &ld->sec[S_FITS];
    if (r->len < FITS_FIXED)
        return ae_error(&ld->err, AE_ERR_FORMAT, "section FITS has %zu bytes, fewer than %d", r->len,
                        FITS_FIXED);
    uint64_t np = rd_u64_at(r->p + FITS_FIXED - 16), nb = rd_u64_at(r->p + FITS_FIXED - 8);
    uint32_t flags = rd_u32_at(r->p);
    int best = (flags & AE_FITS_BEST) != 0;
    if (flags & ~(uint32_t)(AE_FITS_SHUFFLE | AE_FITS_DROP_LAST | AE_FITS_BEST) ||
        rd_u32_at(r->p + 4))
        return ae_error(&ld->err, unknown_code(ld), "FITS: unknown flags or a reserved field not 0");
    if (best ? np != m->nparams || nb != m->nbuffers : np || nb)
        return ae_error(&ld->err, AE_ERR_FORMAT,
                        "FITS: a best copy of %llu parameters and %llu state values where the "
                        "model has %zu and %zu",
                        (unsigned long long)np, (unsigned long long)nb, m->nparams, m->nbuffers);
    size_t floats = (size_t)np + (size_t)nb, want;
    int ovf = ae_mul_overflow(floats, 4, &want) || want > SIZE_MAX - FITS_FIXED;
    ae_status st = expect_len(ld, S_FITS, FITS_FIXED + want, ovf, "its best copy");
    if (st) return st;
    ae_fit_state *f = ae_fit_state_new(&m->alloc, (size_t)np, (size_t)nb);
    if (!f) return ae_error(&ld->err, AE_ERR_OUT_OF_MEMORY, "out of memory for the fit state");
    r->pos = 8;
    f->flags = flags;
    f->model_steps = get_u64(r);
    f->samples = get_u64(r);
    f->batch_size = get_u64(r);
    f->shuffle_seed = get_u64(r);
    f->epoch = get_u64(r);
    f->batch = get_u64(r);
    f->step = get_u64(r);
    uint64_t any = 0;
    for (int i = 0; i < 4; i++) any |= f->order[i] = get_u64(r);
    f->acc = get_f64(r);
    f->seen = get_u64(r);
    f->last_lr = get_f64(r);
    f->best = get_f64(r);
    f->best_epoch = get_u64(r);
    f->wait = get_u64(r);
    f->lr_plateau = get_f64(r);
    f->plateau_best = get_f64(r);
    f->bad_epochs = get_u64(r);
    f->cooldown = get_u64(r);
    r->pos = FITS_FIXED;
    uint64_t bs = f->batch_size, n = f->samples;
    uint64_t nbatch = bs ? (flags & AE_FITS_DROP_LAST ? n / bs : n / bs + (n % bs != 0)) : 0;
    const char *why = NULL;
    if (f->model_steps != m->steps)
        why = "its step count differs from the model's";
    else if (!n || n > AE_MAX_DIM * (uint64_t)AE_MAX_DIM || !bs || bs > AE_MAX_DIM || !nbatch)
        why = "invalid sample count or batch size";
    else if (f->batch > nbatch || f->seen > n || f->step > f->model_steps || f->wait > f->epoch ||
             f->best_epoch > f->epoch)
        why = "a position beyond its run";
    else if (!any)
        why = "the shuffle RNG state is all zero";
    else if (!isfinite(f->acc) || !isfinite(f->last_lr) || isnan(f->best) ||
             isnan(f->plateau_best) || !isfinite(f->lr_plateau))
        why = "invalid losses or rates";
    if (why) st = ae_error(&ld->err, AE_ERR_FORMAT, "FITS: %s", why);
    if (!st) st = get_floats(ld, r, f->best_p, f->nbest_p, "FITS best parameters");
    if (!st) st = get_floats(ld, r, f->best_b, f->nbest_b, "FITS best layer state");
    if (st) {
        ae_fit_state_free(&m->alloc, f);
        return st;
    }
    ae_fit_state_free(&m->alloc, m->fit);
    m->fit = f;
    return AE_OK;
}

static ae_status load_mem(loader *ld, ae_model **out, const unsigned char *p, size_t size) {
    ae_status st = parse_frame(ld, p, size);
    if (st) return st;
    ae_config *cfg = NULL;
    if (ae_config_create(&cfg, &ld->alloc) != AE_OK)
        return ae_error(&ld->err, AE_ERR_OUT_OF_MEMORY, "out of memory loading the model");
    cfg->backend = ld->backend;
    size_t nlayers = 0, code = 0, np = 0, ns = 0;
    uint32_t mode = 0;
    ae_model *m = NULL;
    st = build_config(ld, cfg, &nlayers, &code, &mode);
    /* Format 1.0 stored a Gaussian noise level as a variance; 1.1 as the
       standard deviation it now is (the same noise either way). */
    if (!st && ld->minor == 0 && cfg->s.noise.kind == AE_NOISE_GAUSSIAN)
        cfg->s.noise.level = sqrt(cfg->s.noise.level);
    if (!st) st = count_floats(ld, cfg, &np, &ns);
    if (!st) st = check_float_section(ld, S_PARM, np, "parameters");
    if (!st) st = check_float_section(ld, S_LSTA, ns, "layer state");
    if (!st && (st = ae_model_create(&m, cfg)) != AE_OK) st = builder_error(ld, st, cfg, "model");
    if (st) goto fail;
    /* Tying and freezing, through the public calls. */
    rbuf arch = ld->sec[S_ARCH];
    for (size_t i = 0; i < nlayers && !st; i++) {
        arch.pos = ARCH_HEADER + i * LAYER_RECORD + 8;
        uint32_t flags = get_u32(&arch);
        if (flags & LF_TIED) st = ae_model_tie_layers(m, i, i);
        if (!st && (flags & LF_FROZEN)) st = ae_model_freeze(m, i, i);
        if (st)
            st = ae_error(&ld->err, AE_ERR_FORMAT, "layer %zu: %s", i, ae_model_last_error(m));
    }
    if (!st) st = restore_params(ld, m);
    if (!st) ae_model_set_mode(m, (ae_mode)mode);
    if (!st) st = restore_meta(ld, m);
    if (!st && ld->have[S_VALU]) st = restore_convention(ld, m);
    if (!st && ld->checkpoint) st = restore_checkpoint(ld, m);
    if (!st && ld->have[S_FITS]) st = restore_fit_state(ld, m);
    if (st) goto fail;
    ae_config_destroy(cfg);
    m->err.msg[0] = '\0';
    *out = m;
    return AE_OK;
fail:
    ae_model_destroy(m);
    ae_config_destroy(cfg);
    return st;
}

/* A failure's message goes to the caller's config, the one handle it has
 * (as ae_model_create reports); its message buffer is the only part written. */
static ae_status report(const loader *ld, const ae_config *cfg, ae_status st, const char *prefix) {
    if (!cfg) return st;
    ae_errbuf *e = &((ae_config *)cfg)->err;
    return prefix ? ae_error(e, st, "%s: %s", prefix, ld->err.msg) : ae_error(e, st, "%s", ld->err.msg);
}

static ae_status load_begin(loader *ld, ae_model **out, const ae_config *cfg) {
    memset(ld, 0, sizeof *ld);
    if (!out) return report(ld, cfg, ae_error(&ld->err, AE_ERR_INVALID_ARG, "out is NULL"), NULL);
    *out = NULL;
    /* The config's allocator (checked when it was made), or malloc. */
    if (cfg) {
        ld->alloc = cfg->alloc;
        ld->backend = cfg->backend;
    } else {
        ae_allocator_init(&ld->alloc, NULL);
    }
    return AE_OK;
}

ae_status ae_model_load_buffer(ae_model **out, const void *buf, size_t size, const ae_config *cfg) {
    loader ld;
    ae_status st = load_begin(&ld, out, cfg);
    if (st) return st;
    if (!buf && size)
        return report(&ld, cfg, ae_error(&ld.err, AE_ERR_INVALID_ARG, "buf is NULL"), NULL);
    st = load_mem(&ld, out, buf ? buf : (const void *)"", size);
    return st ? report(&ld, cfg, st, NULL) : AE_OK;
}

ae_status ae_model_load(ae_model **out, const char *path, const ae_config *cfg) {
    loader ld;
    ae_status st = load_begin(&ld, out, cfg);
    if (st) return st;
    if (!path) return report(&ld, cfg, ae_error(&ld.err, AE_ERR_INVALID_ARG, "path is NULL"), NULL);
    unsigned char *buf = NULL;
    size_t size = 0;
    const char *why = NULL;
    int fd = ae_file_open_read(path, &size, &why);
    if (fd == -2) {
        st = ae_error(&ld.err, AE_ERR_IO, "is %s, not a regular file", why);
    } else if (fd < 0) {
        st = ae_error(&ld.err, AE_ERR_IO, "%s: %s", why, strerror(errno));
    } else if (size > SIZE_MAX - 1) {
        st = ae_error(&ld.err, AE_ERR_OUT_OF_MEMORY, "too large to read (%zu bytes)", size);
    } else {
        buf = ae_alloc(&ld.alloc, size ? size : 1);
        if (!buf) st = ae_error(&ld.err, AE_ERR_OUT_OF_MEMORY, "out of memory reading %zu bytes", size);
        size_t got = 0;
        while (!st && got < size) {
            ssize_t k = read(fd, buf + got, size - got > (1u << 30) ? (1u << 30) : size - got);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) st = ae_error(&ld.err, AE_ERR_IO, "read error: %s", strerror(errno));
            if (k == 0) size = got; /* shrank while reading: the checks below catch it */
            if (k > 0) got += (size_t)k;
        }
    }
    if (fd >= 0) close(fd);
    if (!st) st = load_mem(&ld, out, buf, size);
    ae_free(&ld.alloc, buf);
    return st ? report(&ld, cfg, st, path) : AE_OK;
}
