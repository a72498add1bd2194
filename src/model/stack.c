/* Weight tying, freezing and stacking (greedy layer-wise training).
 *
 * Pairs: the layers with a weight are paired from the outside in, the k-th
 * of the encoder with the k-th from the end of the decoder; layers without
 * weights (e.g. top-k) are skipped, so a model with a sparsity layer after
 * its code still pairs its dense layers.
 *
 * A tied decoder layer points its w_off at its encoder partner's weight and
 * reads it transposed; its own weight range (m->w_own) stays reserved in
 * the arena but leaves the block table, so the optimizer, the gradient norm
 * and the parameter count see the shared weight once. Backward runs the
 * decoder layer first, so the encoder layer accumulates (m->accumulate_w).
 * Untying copies the transposed weight back into the reserved range and
 * gives it a fresh block. Nothing here allocates. */
#include <stdio.h>
#include <string.h>

#include "model.h"

/* ---- helpers ---- */

#define NO_LAYER ((size_t)-1)

static int weighted(const ae_model *m, size_t i) { return m->layers[i].w_count != 0; }

/* Number of layers with a weight in [from, to). */
static size_t count_weighted(const ae_model *m, size_t from, size_t to) {
    size_t n = 0;
    for (size_t i = from; i < to; i++) n += (size_t)weighted(m, i);
    return n;
}

/* The k-th (0-based) layer with a weight in [from, to). */
static size_t nth_weighted(const ae_model *m, size_t from, size_t to, size_t k) {
    for (size_t i = from; i < to; i++)
        if (weighted(m, i) && k-- == 0) return i;
    return NO_LAYER;
}

static int symmetric(const ae_model *m) {
    size_t ne = count_weighted(m, 0, m->code_layer);
    return ne > 0 && ne == count_weighted(m, m->code_layer, m->nlayers);
}

/* The mirror partner of layer i, or NO_LAYER (no weight, or not symmetric). */
static size_t partner_of(const ae_model *m, size_t i) {
    if (i >= m->nlayers || !weighted(m, i) || !symmetric(m)) return NO_LAYER;
    size_t c = m->code_layer, n = m->nlayers, k = count_weighted(m, c, n);
    if (i < c) return nth_weighted(m, c, n, k - 1 - count_weighted(m, 0, i));
    return nth_weighted(m, 0, c, k - 1 - count_weighted(m, c, i));
}

/* 1 when encoder layer `enc` (with a partner) shares its weight with it. */
static int pair_tied(const ae_model *m, size_t enc) {
    return m->layers[partner_of(m, enc)].w_transposed;
}

void ae_stack_read_weight(const ae_model *m, const ae_layer *L, float *dst) {
    const float *w = m->params + L->w_off;
    if (L->w_transposed) /* stored as the partner's [in, out] */
        ae_transpose(w, L->in, L->out, dst);
    else
        memcpy(dst, w, L->w_count * sizeof(float));
}

void ae_stack_write_weight(ae_model *m, const ae_layer *L, const float *src) {
    float *w = m->params + L->w_off;
    if (L->w_transposed)
        ae_transpose(src, L->out, L->in, w);
    else
        memcpy(w, src, L->w_count * sizeof(float));
}

static size_t find_block(const ae_model *m, size_t off) {
    for (size_t b = 0; b < m->nblocks; b++)
        if (m->blocks[b].off == off) return b;
    return m->nblocks;
}

static void remove_block(ae_model *m, size_t off) {
    size_t b = find_block(m, off);
    if (b == m->nblocks) return;
    memmove(&m->blocks[b], &m->blocks[b + 1], (m->nblocks - b - 1) * sizeof *m->blocks);
    m->nblocks--;
}

/* Keeps the table in arena order. The table has room for two blocks per layer. */
static void insert_block(ae_model *m, ae_param_block blk) {
    size_t b = 0;
    while (b < m->nblocks && m->blocks[b].off < blk.off) b++;
    memmove(&m->blocks[b + 1], &m->blocks[b], (m->nblocks - b) * sizeof *m->blocks);
    m->blocks[b] = blk;
    m->nblocks++;
}

void ae_stack_sync_frozen(ae_model *m) {
    for (size_t i = 0; i < m->nlayers; i++) m->layers[i].w_frozen = m->layers[i].frozen;
    if (symmetric(m))
        for (size_t i = 0; i < m->code_layer; i++) {
            if (!weighted(m, i) || !pair_tied(m, i)) continue;
            ae_layer *E = &m->layers[i], *D = &m->layers[partner_of(m, i)];
            E->w_frozen = D->w_frozen = E->frozen || D->frozen;
        }
    for (size_t b = 0; b < m->nblocks; b++) {
        ae_param_block *blk = &m->blocks[b];
        for (size_t i = 0; i < m->nlayers; i++) {
            const ae_layer *L = &m->layers[i];
            if (L->w_count && blk->off == m->w_own[i]) blk->frozen = L->w_frozen;
            if (L->b_count && blk->off == L->b_off) blk->frozen = L->frozen;
        }
    }
}

static ae_status check_encoder_range(const ae_model *m, size_t first, size_t last,
                                     ae_errbuf *err) {
    if (first > last)
        return ae_error(err, AE_ERR_RANGE, "the first layer (%zu) is after the last (%zu)", first,
                        last);
    if (last >= m->code_layer)
        return ae_error(err, AE_ERR_RANGE,
                        "layer %zu is not an encoder layer: the encoder has layers 0 to %zu "
                        "(a pair is named by its encoder layer)",
                        last, m->code_layer - 1);
    return AE_OK;
}

/* A range of encoder layers holding no layer with a weight (`what`: "tie", "untie"). */
static ae_status check_has_weight(const ae_model *m, size_t first, size_t last, const char *what,
                                  ae_errbuf *err) {
    if (!count_weighted(m, first, last + 1))
        return ae_error(err, AE_ERR_INVALID_ARG, "encoder layers %zu to %zu have no weight to %s",
                        first, last, what);
    return AE_OK;
}

/* Checks that [first, last] names encoder layers of a symmetric dense model
 * whose pairs mirror each other. The range comes first: a bad range is
 * reported as AE_ERR_RANGE whatever the model. */
static ae_status check_pairs(const ae_model *m, size_t first, size_t last, ae_errbuf *err) {
    ae_status st = check_encoder_range(m, first, last, err);
    if (st) return st;
    if (!symmetric(m)) {
        /* Name the layers with weights on each side. */
        char lists[2][128];
        for (int side = 0; side < 2; side++) {
            size_t from = side ? m->code_layer : 0, to = side ? m->nlayers : m->code_layer, len = 0;
            lists[side][0] = '\0';
            for (size_t i = from; i < to && len < sizeof lists[side]; i++) {
                if (!weighted(m, i)) continue;
                int k = snprintf(lists[side] + len, sizeof lists[side] - len, "%s%zu",
                                 len ? ", " : "", i);
                if (k > 0) len += (size_t)k;
            }
        }
        return ae_error(err, AE_ERR_SHAPE,
                        "the model is not symmetric: its layers with weights are %s in the "
                        "encoder but %s in the decoder",
                        lists[0][0] ? lists[0] : "none", lists[1][0] ? lists[1] : "none");
    }
    /* After the symmetry: an encoder without weights is a model that is not symmetric. */
    if ((st = check_has_weight(m, first, last, "tie", err)) != AE_OK) return st;
    for (size_t i = first; i <= last; i++) {
        if (!weighted(m, i)) continue;
        const ae_layer *E = &m->layers[i], *D = &m->layers[partner_of(m, i)];
        if (E->kind != AE_LAYER_DENSE || D->kind != AE_LAYER_DENSE)
            return ae_error(err, AE_ERR_UNSUPPORTED,
                            "only dense layers can be tied: layer %zu is %s, layer %zu is %s", i,
                            E->ops->desc->name, partner_of(m, i), D->ops->desc->name);
    }
    char msg[sizeof err->msg];
    size_t len = 0, bad = 0;
    msg[0] = '\0';
    for (size_t i = first; i <= last; i++) {
        if (!weighted(m, i)) continue;
        const ae_layer *E = &m->layers[i], *D = &m->layers[partner_of(m, i)];
        if (E->in == D->out && E->out == D->in) continue;
        if (len < sizeof msg) {
            int k = snprintf(msg + len, sizeof msg - len, "%slayer %zu (%zu->%zu) and layer %zu (%zu->%zu)",
                             bad ? "; " : "", i, E->in, E->out, partner_of(m, i), D->in, D->out);
            if (k > 0) len += (size_t)k;
        }
        bad++;
    }
    if (bad)
        return ae_error(err, AE_ERR_SHAPE, "the model is not symmetric: %s do not mirror each other",
                        msg);
    return AE_OK;
}

static void tie_pair(ae_model *m, size_t enc) {
    size_t dec = partner_of(m, enc);
    ae_layer *E = &m->layers[enc], *D = &m->layers[dec];
    size_t own = m->w_own[dec], n = D->w_count;
    remove_block(m, own);
    memset(m->params + own, 0, n * sizeof(float));
    memset(m->grads + own, 0, n * sizeof(float));
    memset(m->state1 + own, 0, n * sizeof(float));
    memset(m->state2 + own, 0, n * sizeof(float));
    D->w_off = E->w_off;
    D->w_transposed = 1;
    m->accumulate_w[enc] = 1; /* backward runs the decoder layer first */
    m->params_gen++; /* the parameters were written */
}

static void untie_pair(ae_model *m, size_t enc) {
    size_t dec = partner_of(m, enc);
    ae_layer *E = &m->layers[enc], *D = &m->layers[dec];
    size_t own = m->w_own[dec], n = D->w_count;
    /* E's weight [E.out, E.in] transposed is D's [D.out = E.in, D.in = E.out]. */
    ae_transpose(m->params + E->w_off, E->out, E->in, m->params + own);
    memset(m->grads + own, 0, n * sizeof(float));
    memset(m->state1 + own, 0, n * sizeof(float));
    memset(m->state2 + own, 0, n * sizeof(float));
    D->w_off = own;
    D->w_transposed = 0;
    m->accumulate_w[enc] = 0;
    insert_block(m, (ae_param_block){own, n, 0, 0, 0});
    m->params_gen++;
}

ae_status ae_stack_tie(ae_model *m, size_t first, size_t last, ae_errbuf *err) {
    ae_status st = check_pairs(m, first, last, err);
    if (st) return st;
    for (size_t i = first; i <= last; i++)
        if (weighted(m, i) && pair_tied(m, i))
            return ae_error(err, AE_ERR_STATE, "layers %zu and %zu are already tied", i,
                            partner_of(m, i));
    for (size_t i = first; i <= last; i++)
        if (weighted(m, i)) tie_pair(m, i);
    ae_stack_sync_frozen(m);
    return AE_OK;
}

/* ---- tying ---- */

ae_status ae_config_tie(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (cfg->tied) return ae_error(&cfg->err, AE_ERR_STATE, "the config is already tied");
    cfg->tied = 1;
    return AE_OK;
}

ae_status ae_model_tie(ae_model *m) {
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_stack_tie(m, 0, m->code_layer - 1, &m->err);
}

ae_status ae_model_tie_layers(ae_model *m, size_t first, size_t last) {
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_stack_tie(m, first, last, &m->err);
}

static ae_status untie(ae_model *m, size_t first, size_t last, int all) {
    /* A bad range is reported as such, whatever is tied. */
    if (!all) {
        ae_status st = check_encoder_range(m, first, last, &m->err);
        if (!st) st = check_has_weight(m, first, last, "untie", &m->err);
        if (st) return st;
    }
    size_t tied = 0;
    if (symmetric(m))
        for (size_t i = 0; i < m->code_layer; i++)
            tied += (size_t)(weighted(m, i) && pair_tied(m, i));
    if (!tied) return ae_error(&m->err, AE_ERR_STATE, "no layer of the model is tied");
    if (all) {
        first = 0;
        last = m->code_layer - 1;
    } else {
        for (size_t i = first; i <= last; i++)
            if (weighted(m, i) && !pair_tied(m, i))
                return ae_error(&m->err, AE_ERR_STATE, "layers %zu and %zu are not tied", i,
                                partner_of(m, i));
    }
    for (size_t i = first; i <= last; i++)
        if (weighted(m, i) && pair_tied(m, i)) untie_pair(m, i);
    ae_stack_sync_frozen(m);
    return AE_OK;
}

ae_status ae_model_untie(ae_model *m) {
    if (!m) return AE_ERR_INVALID_ARG;
    return untie(m, 0, 0, 1);
}

ae_status ae_model_untie_layers(ae_model *m, size_t first, size_t last) {
    if (!m) return AE_ERR_INVALID_ARG;
    return untie(m, first, last, 0);
}

int ae_model_is_tied(const ae_model *m, size_t layer) {
    if (!m) return 0;
    size_t p = partner_of(m, layer);
    if (p == NO_LAYER) return 0;
    return m->layers[layer < m->code_layer ? p : layer].w_transposed;
}

/* ---- freezing ---- */

static ae_status set_frozen(ae_model *m, size_t first, size_t last, int frozen) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (first == AE_LAST_LAYER) first = m->nlayers - 1;
    if (last == AE_LAST_LAYER) last = m->nlayers - 1;
    if (last >= m->nlayers)
        return ae_error(&m->err, AE_ERR_RANGE, "layer %zu does not exist (the model has %zu)",
                        last, m->nlayers);
    if (first > last)
        return ae_error(&m->err, AE_ERR_RANGE, "the first layer (%zu) is after the last (%zu)",
                        first, last);
    for (size_t i = first; i <= last; i++) m->layers[i].frozen = frozen;
    ae_stack_sync_frozen(m);
    return AE_OK;
}

ae_status ae_model_freeze(ae_model *m, size_t first, size_t last) {
    return set_frozen(m, first, last, 1);
}

ae_status ae_model_unfreeze(ae_model *m, size_t first, size_t last) {
    return set_frozen(m, first, last, 0);
}

int ae_model_is_frozen(const ae_model *m, size_t layer) {
    return m && layer < m->nlayers && m->layers[layer].frozen;
}

/* ---- stacking ---- */

static int same_shape(ae_shape a, ae_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

static ae_status check_copy(ae_model *dst, size_t di, const ae_model *src, size_t si) {
    const ae_layer *D = &dst->layers[di], *S = &src->layers[si];
    if (D->kind != S->kind || !same_shape(D->in_shape, S->in_shape) ||
        !same_shape(D->out_shape, S->out_shape) || D->w_count != S->w_count ||
        D->b_count != S->b_count || D->s_count != S->s_count)
        return ae_error(&dst->err, AE_ERR_SHAPE,
                        "layer %zu of the source (%s %zux%zux%zu->%zux%zux%zu, %zu weights, %zu "
                        "biases) does not match layer %zu of the destination (%s "
                        "%zux%zux%zu->%zux%zux%zu, %zu weights, %zu biases)",
                        si, S->ops->desc->name, S->in_shape.c, S->in_shape.h, S->in_shape.w,
                        S->out_shape.c, S->out_shape.h, S->out_shape.w, S->w_count, S->b_count,
                        di, D->ops->desc->name, D->in_shape.c, D->in_shape.h, D->in_shape.w,
                        D->out_shape.c, D->out_shape.h, D->out_shape.w, D->w_count, D->b_count);
    if (ae_model_is_tied(dst, di))
        return ae_error(&dst->err, AE_ERR_STATE,
                        "layer %zu of the destination is tied to layer %zu: untie it first", di,
                        partner_of(dst, di));
    return AE_OK;
}

/* Weight, bias and non-trainable state (BatchNorm's running statistics). */
static void copy_layer(ae_model *dst, size_t di, const ae_model *src, size_t si) {
    const ae_layer *D = &dst->layers[di], *S = &src->layers[si];
    if (S->w_count) ae_stack_read_weight(src, S, dst->params + D->w_off);
    if (S->b_count)
        memcpy(dst->params + D->b_off, src->params + S->b_off, S->b_count * sizeof(float));
    if (S->s_count)
        memcpy(dst->buffers + D->s_off, src->buffers + S->s_off, S->s_count * sizeof(float));
    ae_model_params_written(dst);
}

ae_status ae_model_copy_layers(ae_model *dst, size_t dst_first, const ae_model *src,
                               size_t src_first, size_t count) {
    if (!dst) return AE_ERR_INVALID_ARG;
    if (!src) return ae_error(&dst->err, AE_ERR_INVALID_ARG, "the source model is NULL");
    if (src == dst)
        return ae_error(&dst->err, AE_ERR_INVALID_ARG, "copy between two different models");
    if (!count) return ae_error(&dst->err, AE_ERR_INVALID_ARG, "no layer to copy (count 0)");
    if (src_first >= src->nlayers || count > src->nlayers - src_first)
        return ae_error(&dst->err, AE_ERR_RANGE,
                        "cannot copy %zu layers from layer %zu of the source: it has %zu layers",
                        count, src_first, src->nlayers);
    if (dst_first >= dst->nlayers || count > dst->nlayers - dst_first)
        return ae_error(&dst->err, AE_ERR_RANGE,
                        "cannot copy %zu layers to layer %zu of the destination: it has %zu layers",
                        count, dst_first, dst->nlayers);
    for (size_t k = 0; k < count; k++) {
        ae_status st = check_copy(dst, dst_first + k, src, src_first + k);
        if (st) return st;
    }
    for (size_t k = 0; k < count; k++) copy_layer(dst, dst_first + k, src, src_first + k);
    return AE_OK;
}

ae_status ae_model_copy_outer(ae_model *dst, const ae_model *src) {
    if (!dst) return AE_ERR_INVALID_ARG;
    if (!src) return ae_error(&dst->err, AE_ERR_INVALID_ARG, "the source model is NULL");
    if (src == dst)
        return ae_error(&dst->err, AE_ERR_INVALID_ARG, "copy between two different models");
    size_t se = src->code_layer, sd = src->nlayers - se;
    size_t de = dst->code_layer, dd = dst->nlayers - de;
    if (se > de || sd > dd)
        return ae_error(&dst->err, AE_ERR_SHAPE,
                        "the source has %zu encoder and %zu decoder layers, more than the "
                        "destination's %zu and %zu",
                        se, sd, de, dd);
    for (size_t k = 0; k < se; k++) {
        ae_status st = check_copy(dst, k, src, k);
        if (st) return st;
    }
    for (size_t k = 0; k < sd; k++) {
        ae_status st = check_copy(dst, dst->nlayers - sd + k, src, se + k);
        if (st) return st;
    }
    for (size_t k = 0; k < se; k++) copy_layer(dst, k, src, k);
    for (size_t k = 0; k < sd; k++) copy_layer(dst, dst->nlayers - sd + k, src, se + k);
    return AE_OK;
}
