#include <float.h>
#include <stddef.h>
#include <string.h>

#include "model.h"

/* ---- the settings table: one row per ae_param ---- */
typedef struct param_row {
    ae_param id;
    const char *name;
    int is_int;
    double lo, hi;
    int lo_open, hi_open; /* bound excluded */
    int changeable;
    size_t off;
    /* Float settings: a nonzero value must stay a normal float (a smaller
     * one would be 0 or subnormal where it is used, and 0 is not the same
     * setting: e.g. a momentum of 1e-50 would be on in double, off in float). */
    int normal;
    const char *const *values; /* names of an int setting's values lo..hi, or NULL */
} param_row;

#define ROW_I(id, name, lo, hi, ch, field) \
    {id, name, 1, lo, hi, 0, 0, ch, offsetof(ae_settings, field), 0, NULL}
#define ROW_E(id, name, lo, hi, ch, field, values) \
    {id, name, 1, lo, hi, 0, 0, ch, offsetof(ae_settings, field), 0, values}
#define ROW_F(id, name, lo, hi, lo_open, hi_open, ch, field) \
    {id, name, 0, lo, hi, lo_open, hi_open, ch, offsetof(ae_settings, field), 0, NULL}
#define ROW_FN(id, name, lo, hi, lo_open, hi_open, ch, field) \
    {id, name, 0, lo, hi, lo_open, hi_open, ch, offsetof(ae_settings, field), 1, NULL}

/* Value names, as architecture descriptions spell them (src/model/arch.c). */
static const char *const loss_names[] = {"mse", "bce", NULL};
static const char *const reduction_names[] = {"mean", "sum", NULL};
static const char *const optimizer_names[] = {"sgd", "adam", "adamw", NULL};
static const char *const noise_names[] = {"none",    "gaussian", "mask", "bernoulli",
                                          "dropout", "salt_pepper", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

static const param_row param_table[] = {
    ROW_E(AE_P_LOSS, "AE_P_LOSS", 0, 1, 0, loss, loss_names),
    ROW_E(AE_P_REDUCTION, "AE_P_REDUCTION", 0, 1, 0, reduction, reduction_names),
    ROW_E(AE_P_OPTIMIZER, "AE_P_OPTIMIZER", 0, 2, 0, optimizer, optimizer_names),
    /* Every int64: the seed is its 64 bits (a uint64_t seed as int64). */
    ROW_I(AE_P_SEED, "AE_P_SEED", -9223372036854775808.0, 9223372036854775807.0, 0, seed),
    ROW_F(AE_P_LEARNING_RATE, "AE_P_LEARNING_RATE", 0, 1e6, 0, 0, 1, lr),
    ROW_FN(AE_P_MOMENTUM, "AE_P_MOMENTUM", 0, 1, 0, 1, 1, momentum),
    ROW_E(AE_P_NESTEROV, "AE_P_NESTEROV", 0, 1, 1, nesterov, bool_names),
    ROW_F(AE_P_WEIGHT_DECAY, "AE_P_WEIGHT_DECAY", 0, 1e6, 0, 0, 1, weight_decay),
    ROW_F(AE_P_BETA1, "AE_P_BETA1", 0, 1, 0, 1, 1, beta1),
    ROW_F(AE_P_BETA2, "AE_P_BETA2", 0, 1, 0, 1, 1, beta2),
    /* Adam divides by it in float: its float must be a positive normal. */
    ROW_F(AE_P_EPSILON, "AE_P_EPSILON", FLT_MIN, 1, 0, 0, 1, eps),
    ROW_F(AE_P_GRAD_CLIP_NORM, "AE_P_GRAD_CLIP_NORM", 0, 1e12, 0, 0, 1, clip_norm),
    ROW_F(AE_P_DAMPENING, "AE_P_DAMPENING", 0, 1e6, 0, 0, 1, dampening),
    ROW_E(AE_P_NOISE_KIND, "AE_P_NOISE_KIND", 0, 5, 1, noise.kind, noise_names),
    ROW_F(AE_P_NOISE_LEVEL, "AE_P_NOISE_LEVEL", 0, 1e6, 0, 0, 1, noise.level),
    ROW_F(AE_P_NOISE_MEAN, "AE_P_NOISE_MEAN", -1e6, 1e6, 0, 0, 1, noise.mean),
    ROW_E(AE_P_NOISE_CLIP, "AE_P_NOISE_CLIP", 0, 1, 1, noise.clip, bool_names),
    ROW_F(AE_P_NOISE_CLIP_LO, "AE_P_NOISE_CLIP_LO", -1e30, 1e30, 0, 0, 1, noise.lo),
    ROW_F(AE_P_NOISE_CLIP_HI, "AE_P_NOISE_CLIP_HI", -1e30, 1e30, 0, 0, 1, noise.hi),
    ROW_F(AE_P_NOISE_VALUE, "AE_P_NOISE_VALUE", -1e30, 1e30, 0, 0, 1, noise.value),
    ROW_F(AE_P_VAE_BETA, "AE_P_VAE_BETA", 0, 1e6, 0, 0, 1, vae_beta),
    ROW_I(AE_P_VAE_BETA_WARMUP_STEPS, "AE_P_VAE_BETA_WARMUP_STEPS", 0, 9223372036854775807.0, 1,
          vae_warmup),
    ROW_I(AE_P_DEAD_WINDOW, "AE_P_DEAD_WINDOW", 1, 2147483647.0, 1, dead_window),
};

static const param_row *find_param(ae_param p) {
    for (size_t i = 0; i < sizeof param_table / sizeof param_table[0]; i++)
        if (param_table[i].id == p) return &param_table[i];
    return NULL;
}

int ae_settings_row(size_t i, ae_param *id, int *is_int) {
    if (i >= sizeof param_table / sizeof param_table[0]) return 0;
    *id = param_table[i].id;
    *is_int = param_table[i].is_int;
    return 1;
}

int ae_settings_info(size_t i, ae_setting_info *out) {
    if (i >= sizeof param_table / sizeof param_table[0]) return 0;
    const param_row *r = &param_table[i];
    *out = (ae_setting_info){r->id, r->name, r->is_int, r->lo, r->hi, r->lo_open, r->hi_open,
                             r->values};
    return 1;
}

void ae_settings_default(ae_settings *s) {
    memset(s, 0, sizeof *s);
    s->loss = AE_LOSS_MSE;
    s->reduction = AE_REDUCE_MEAN;
    s->optimizer = AE_OPT_ADAM;
    s->lr = 1e-3;
    s->beta1 = 0.9;
    s->beta2 = 0.999;
    s->eps = 1e-8;
    s->noise.hi = 1.0;
    s->dead_window = 1000;
    s->vae_beta = 1.0;
}

ae_status ae_param_bounds(ae_param param, int *is_int, double *min_value, double *max_value,
                          int *changeable) {
    const param_row *r = find_param(param);
    if (!r) return AE_ERR_INVALID_ARG;
    if (is_int) *is_int = r->is_int;
    if (min_value) *min_value = r->lo;
    if (max_value) *max_value = r->hi;
    if (changeable) *changeable = r->changeable;
    return AE_OK;
}

ae_status ae_settings_set(ae_settings *s, ae_errbuf *err, ae_param p, int is_int, int64_t iv,
                          double fv, int created) {
    const param_row *r = find_param(p);
    if (!r) return ae_error(err, AE_ERR_INVALID_ARG, "unknown setting %d", (int)p);
    if (r->is_int != is_int)
        return ae_error(err, AE_ERR_INVALID_ARG, "%s is %s setting: use ae_*_set_%s", r->name,
                        r->is_int ? "an int" : "a float", r->is_int ? "int" : "float");
    if (created && !r->changeable)
        return ae_error(err, AE_ERR_STATE, "%s is fixed when the model is created", r->name);
    char *field = (char *)s + r->off;
    if (is_int) {
        if ((double)iv < r->lo || (double)iv > r->hi)
            return ae_error(err, AE_ERR_RANGE, "%s must be in [%.0f, %.0f], got %lld", r->name,
                            r->lo, r->hi, (long long)iv);
        memcpy(field, &iv, sizeof iv);
        if (p == AE_P_OPTIMIZER && !s->weight_decay_set)
            s->weight_decay = iv == AE_OPT_ADAMW ? 1e-2 : 0.0;
    } else {
        /* Stored as double, used (mostly) as float: the bounds must hold
         * for both, so a value that rounds onto an excluded bound (a beta
         * of 1 - 1e-10 is 1 as a float) is refused. Every bound is within
         * float range, so the conversion below is defined. */
        int ok = fv == fv && (r->lo_open ? fv > r->lo : fv >= r->lo) &&
                 (r->hi_open ? fv < r->hi : fv <= r->hi);
        char lb = r->lo_open ? '(' : '[', hb = r->hi_open ? ')' : ']';
        if (!ok)
            return ae_error(err, AE_ERR_RANGE, "%s must be in %c%g, %g%c, got %g", r->name, lb,
                            r->lo, r->hi, hb, fv);
        float f = (float)fv, flo = (float)r->lo, fhi = (float)r->hi;
        if (!((r->lo_open ? f > flo : f >= flo) && (r->hi_open ? f < fhi : f <= fhi)))
            return ae_error(err, AE_ERR_RANGE,
                            "%s must be in %c%g, %g%c as the float it is used as, got %.17g (%.9g "
                            "as a float)",
                            r->name, lb, r->lo, r->hi, hb, fv, (double)f);
        if (r->normal && fv != 0.0 && !(f >= FLT_MIN || f <= -FLT_MIN))
            return ae_error(err, AE_ERR_RANGE,
                            "%s must be 0 or a normal float (magnitude at least %g) in %c%g, %g%c, "
                            "got %g",
                            r->name, (double)FLT_MIN, lb, r->lo, r->hi, hb, fv);
        if (fv == 0.0) fv = 0.0; /* -0.0 is stored as 0 */
        memcpy(field, &fv, sizeof fv);
        if (p == AE_P_WEIGHT_DECAY) s->weight_decay_set = 1;
    }
    return AE_OK;
}

ae_status ae_settings_get(const ae_settings *s, ae_errbuf *err, ae_param p, int is_int,
                          int64_t *iv, double *fv) {
    const param_row *r = find_param(p);
    if (!r) return ae_error(err, AE_ERR_INVALID_ARG, "unknown setting %d", (int)p);
    if (r->is_int != is_int)
        return ae_error(err, AE_ERR_INVALID_ARG, "%s is %s setting", r->name,
                        r->is_int ? "an int" : "a float");
    const char *field = (const char *)s + r->off;
    if (is_int)
        memcpy(iv, field, sizeof *iv);
    else
        memcpy(fv, field, sizeof *fv);
    return AE_OK;
}

void ae_settings_to_optim(const ae_settings *s, ae_optim_settings *o) {
    o->kind = (ae_optimizer)s->optimizer;
    o->lr = s->lr;
    o->momentum = s->momentum;
    o->dampening = s->dampening;
    o->weight_decay = s->weight_decay;
    o->beta1 = s->beta1;
    o->beta2 = s->beta2;
    o->eps = s->eps;
    o->nesterov = (int)s->nesterov;
    o->clip_norm = s->clip_norm;
    o->threads = 0;
}

/* ---- the builder ---- */

static const char null_cfg_msg[] = "config is NULL";

ae_status ae_config_create(ae_config **out, const ae_allocator *alloc) {
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    ae_allocator a;
    if (ae_allocator_init(&a, alloc) != AE_OK) return AE_ERR_INVALID_ARG;
    ae_config *c = ae_calloc(&a, 1, sizeof *c);
    if (!c) return AE_ERR_OUT_OF_MEMORY;
    c->alloc = a;
    ae_settings_default(&c->s);
    *out = c;
    return AE_OK;
}

void ae_config_destroy(ae_config *cfg) {
    if (!cfg) return;
    ae_allocator a = cfg->alloc;
    ae_free(&a, cfg->layers);
    ae_free(&a, cfg);
}

const char *ae_config_last_error(const ae_config *cfg) { return cfg ? cfg->err.msg : null_cfg_msg; }

ae_status ae_config_set_input_size(ae_config *cfg, size_t features) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (cfg->nlayers)
        return ae_error(&cfg->err, AE_ERR_STATE, "the input size must be set before adding layers");
    if (features == 0 || features > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_RANGE, "input size must be in [1, %zu], got %zu",
                        AE_MAX_DIM, features);
    cfg->input_size = features;
    cfg->input_shape = (ae_shape){features, 1, 1};
    return AE_OK;
}

ae_status ae_config_push_layer(ae_config *cfg, const ae_layer_spec *spec) {
    if (cfg->nlayers == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 8;
        ae_layer_spec *n = ae_alloc(&cfg->alloc, cap * sizeof *n);
        if (!n) return ae_error(&cfg->err, AE_ERR_OUT_OF_MEMORY, "out of memory adding a layer");
        if (cfg->nlayers) memcpy(n, cfg->layers, cfg->nlayers * sizeof *n);
        ae_free(&cfg->alloc, cfg->layers);
        cfg->layers = n;
        cfg->cap = cap;
    }
    cfg->layers[cfg->nlayers++] = *spec;
    return AE_OK;
}

/* The sample shape after the config's layers so far. */
static ae_status current_shape(ae_config *cfg, ae_shape *out) {
    ae_shape shape = cfg->input_shape;
    for (size_t i = 0; i < cfg->nlayers; i++) {
        ae_layer L;
        memset(&L, 0, sizeof L);
        L.in_shape = shape;
        L.in = ae_shape_size(shape);
        L.spec = cfg->layers[i];
        ae_status st = ae_layer_ops_for(cfg->layers[i].kind)->setup(&L, &cfg->layers[i], &cfg->err);
        if (st) return st;
        shape = L.out_shape;
    }
    *out = shape;
    return AE_OK;
}

ae_status ae_config_add_spec(ae_config *cfg, ae_layer_spec *spec) {
    const ae_layer_desc *d = ae_layer_desc_for(spec->kind);
    if (!d)
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown layer kind %d", (int)spec->kind);
    if (!cfg->input_size)
        return ae_error(&cfg->err, AE_ERR_STATE,
                        "set the input size (or shape) before adding layers (a %s layer)", d->name);
    if (cfg->mirrored)
        return ae_error(&cfg->err, AE_ERR_STATE,
                        "the decoder was mirrored from the encoder; no layer can follow it");
    if ((d->flags & AE_LK_CODE) && cfg->code_marked)
        return ae_error(&cfg->err, AE_ERR_STATE,
                        "the code is already marked: the %s layer is the code and ends the "
                        "encoder (add it instead of ae_config_mark_code)", d->name);
    if (d->flags & AE_LK_ACT) {
        if (!ae_act_valid((int)spec->act))
            return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown activation %d", (int)spec->act);
        if (!(spec->slope >= 0.0f && spec->slope <= 1e3f))
            return ae_error(&cfg->err, AE_ERR_RANGE,
                            "AE_LAYER_LEAKY_SLOPE must be in [0, 1000], got %g",
                            (double)spec->slope);
    }
    ae_status st = ae_layer_spec_check(spec, &cfg->err);
    if (st) return st;
    /* The layer must fit the shape reached so far: refused when added. */
    ae_shape in;
    if ((st = current_shape(cfg, &in)) != AE_OK) return st;
    ae_layer L;
    memset(&L, 0, sizeof L);
    L.in_shape = in;
    L.in = ae_shape_size(in);
    L.spec = *spec;
    if ((st = ae_layer_ops_for(spec->kind)->setup(&L, spec, &cfg->err)) != AE_OK) return st;
    size_t out = ae_shape_size(L.out_shape);
    if (out == 0 || out > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_SHAPE,
                        "a %s layer on %zux%zux%zu gives %zux%zux%zu: outside [1, %zu] values",
                        d->name, in.c, in.h, in.w, L.out_shape.c, L.out_shape.h, L.out_shape.w,
                        AE_MAX_DIM);
    if ((st = ae_config_push_layer(cfg, spec)) != AE_OK) return st;
    if (d->flags & AE_LK_CODE) {
        cfg->code_marked = 1;
        cfg->code_at = cfg->nlayers;
    }
    return AE_OK;
}

ae_status ae_config_add_dense(ae_config *cfg, size_t units, ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec spec;
    ae_layer_spec_init(&spec, AE_LAYER_DENSE);
    spec.units = units;
    spec.act = act;
    return ae_config_add_spec(cfg, &spec);
}

static ae_status layer_index(ae_config *cfg, size_t *layer) {
    if (*layer == AE_LAST_LAYER) {
        if (!cfg->nlayers) return ae_error(&cfg->err, AE_ERR_STATE, "no layer added yet");
        *layer = cfg->nlayers - 1;
    }
    if (*layer >= cfg->nlayers)
        return ae_error(&cfg->err, AE_ERR_RANGE, "layer %zu does not exist (the config has %zu)",
                        *layer, cfg->nlayers);
    return AE_OK;
}

/* The attribute a per-layer setting changes, or NULL. */
static const ae_layer_attr *setting_attr(ae_layer_kind kind, ae_layer_param param) {
    const ae_layer_desc *d = ae_layer_desc_for(kind);
    for (size_t i = 0; d && i < d->nattrs; i++)
        if (d->attrs[i].setting == param) return &d->attrs[i];
    return NULL;
}

/* Whether a layer kind has a per-layer setting (its descriptor says). */
static int layer_has_setting(ae_layer_kind kind, ae_layer_param param) {
    const ae_layer_desc *d = ae_layer_desc_for(kind);
    if (param == AE_LAYER_BIAS) return (d->flags & AE_LK_BIAS) != 0;
    if (param == AE_LAYER_LEAKY_SLOPE) return (d->flags & AE_LK_ACT) != 0;
    return setting_attr(kind, param) != NULL;
}

static const char *layer_param_name(ae_layer_param param) {
    switch (param) {
    case AE_LAYER_BIAS: return "AE_LAYER_BIAS";
    case AE_LAYER_LEAKY_SLOPE: return "AE_LAYER_LEAKY_SLOPE";
    case AE_LAYER_BN_MOMENTUM: return "AE_LAYER_BN_MOMENTUM";
    case AE_LAYER_BN_EPS: return "AE_LAYER_BN_EPS";
    }
    return NULL;
}

/* The layer index resolved, the setting known, of the right type and one the layer has. */
static ae_status layer_setting(ae_config *cfg, size_t *layer, ae_layer_param param, int is_int) {
    ae_status st = layer_index(cfg, layer);
    if (st) return st;
    const char *name = layer_param_name(param);
    if (!name) return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown layer setting %d", (int)param);
    if ((param == AE_LAYER_BIAS) != is_int)
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "%s is %s setting: use ae_config_layer_set_%s",
                        name, is_int ? "a float" : "an int", is_int ? "float" : "int");
    ae_layer_kind kind = cfg->layers[*layer].kind;
    if (!layer_has_setting(kind, param))
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "layer %zu (%s) has no setting %s", *layer,
                        ae_layer_kind_name(kind), name);
    return AE_OK;
}

ae_status ae_config_layer_set_int(ae_config *cfg, size_t layer, ae_layer_param param,
                                  int64_t value) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_status st = layer_setting(cfg, &layer, param, 1);
    if (st) return st;
    /* AE_LAYER_BIAS is the only int setting. */
    if (value != 0 && value != 1)
        return ae_error(&cfg->err, AE_ERR_RANGE, "AE_LAYER_BIAS must be 0 or 1, got %lld",
                        (long long)value);
    cfg->layers[layer].bias = (int)value;
    return AE_OK;
}

ae_status ae_config_layer_set_float(ae_config *cfg, size_t layer, ae_layer_param param,
                                    double value) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_status st = layer_setting(cfg, &layer, param, 0);
    if (st) return st;
    ae_layer_spec *sp = &cfg->layers[layer];
    if (param == AE_LAYER_LEAKY_SLOPE) {
        if (!(value >= 0.0 && value <= 1e3))
            return ae_error(&cfg->err, AE_ERR_RANGE, "AE_LAYER_LEAKY_SLOPE must be in [0, 1000], got %g",
                            value);
        sp->slope = value == 0.0 ? 0.0f : (float)value; /* -0.0 is kept as 0 */
        return AE_OK;
    }
    /* A setting of one of the kind's attributes: its bounds. */
    const ae_layer_attr *a = setting_attr(sp->kind, param);
    if (!((a->lo_open ? value > a->lo : value >= a->lo) && value <= a->hi))
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s must be in %c%g, %g], got %g",
                        layer_param_name(param), a->lo_open ? '(' : '[', a->lo, a->hi, value);
    ae_spec_set_float(sp, a, value == 0.0 ? 0.0 : value);
    return AE_OK;
}

ae_status ae_config_mark_code(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (!cfg->nlayers) return ae_error(&cfg->err, AE_ERR_STATE, "add encoder layers before the code");
    /* ae_config_add_gaussian marks the code itself; marking it again right after is harmless. */
    if (cfg->code_marked && cfg->code_at == cfg->nlayers &&
        (ae_layer_desc_for(cfg->layers[cfg->nlayers - 1].kind)->flags & AE_LK_CODE))
        return AE_OK;
    if (cfg->code_marked) return ae_error(&cfg->err, AE_ERR_STATE, "the code is already marked");
    cfg->code_marked = 1;
    cfg->code_at = cfg->nlayers;
    return AE_OK;
}

static int is_selection(ae_layer_kind kind) {
    return (ae_layer_desc_for(kind)->flags & AE_LK_SELECT) != 0;
}

ae_status ae_config_mirror_decoder(ae_config *cfg, ae_activation output_act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (!ae_act_valid((int)output_act))
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown activation %d", (int)output_act);
    if (!cfg->nlayers) return ae_error(&cfg->err, AE_ERR_STATE, "add encoder layers before mirroring");
    if (cfg->mirrored || (cfg->code_marked && cfg->nlayers > cfg->code_at))
        return ae_error(&cfg->err, AE_ERR_STATE, "the config already has decoder layers");
    size_t n = cfg->nlayers;
    /* The decoder mirrors the parametric layers only: dense layers and a
     * Gaussian code (the last encoder layer, mirrored as a dense layer from
     * its dim). Selection layers are skipped wherever they are: they act on
     * the encoder's side, and a selection on the code stays the code. */
    size_t nparam = 0;
    for (size_t i = 0; i < n; i++) {
        ae_layer_kind kind = cfg->layers[i].kind;
        if (is_selection(kind)) continue;
        if (kind != AE_LAYER_DENSE && !(kind == AE_LAYER_GAUSSIAN && i + 1 == n))
            return ae_error(&cfg->err, AE_ERR_STATE,
                            "only a dense encoder (with selection layers anywhere, optionally "
                            "ending in a Gaussian code) can be mirrored; layer %zu is %s",
                            i, ae_layer_kind_name(kind));
        nparam++;
    }
    if (!nparam)
        return ae_error(&cfg->err, AE_ERR_STATE,
                        "the encoder has no dense layer to mirror (only selection layers)");
    size_t old_n = cfg->nlayers, old_code = cfg->code_at;
    int old_marked = cfg->code_marked;
    if (!cfg->code_marked) {
        cfg->code_marked = 1;
        cfg->code_at = n;
    }
    /* From the last parametric layer back: each decoder layer maps the
     * output width of its partner back to the partner's input width (the
     * output of the parametric layer before it, or the input) with that
     * layer's activation; the output activation last. */
    size_t p = n;
    while (p-- > 0) {
        const ae_layer_spec *partner = &cfg->layers[p];
        if (is_selection(partner->kind)) continue;
        size_t q = p;
        while (q > 0 && is_selection(cfg->layers[q - 1].kind)) q--;
        ae_layer_spec spec = {.kind = AE_LAYER_DENSE, .units = cfg->input_size, .act = output_act,
                              .slope = 0.01f, .bias = partner->bias};
        if (q > 0) {
            const ae_layer_spec *prev = &cfg->layers[q - 1];
            spec.units = prev->units;
            spec.act = prev->act;
            spec.slope = prev->slope;
        }
        ae_status st = ae_config_push_layer(cfg, &spec);
        if (st) {
            cfg->nlayers = old_n;
            cfg->code_at = old_code;
            cfg->code_marked = old_marked;
            return st;
        }
    }
    cfg->mirrored = 1;
    return AE_OK;
}

ae_status ae_config_set_int(ae_config *cfg, ae_param param, int64_t value) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    return ae_settings_set(&cfg->s, &cfg->err, param, 1, value, 0.0, 0);
}

ae_status ae_config_set_float(ae_config *cfg, ae_param param, double value) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    return ae_settings_set(&cfg->s, &cfg->err, param, 0, 0, value, 0);
}

ae_status ae_config_get_int(const ae_config *cfg, ae_param param, int64_t *value) {
    if (!cfg || !value) return AE_ERR_INVALID_ARG;
    return ae_settings_get(&cfg->s, NULL, param, 1, value, NULL);
}

ae_status ae_config_get_float(const ae_config *cfg, ae_param param, double *value) {
    if (!cfg || !value) return AE_ERR_INVALID_ARG;
    return ae_settings_get(&cfg->s, NULL, param, 0, NULL, value);
}

ae_status ae_config_set_backend(ae_config *cfg, ae_backend backend) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    const char *name = ae_backend_name(backend);
    if (!name)
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG,
                        "unknown backend %d (AE_BACKEND_AUTO, _OPENBLAS or _ONEDNN)", (int)backend);
    if (!ae_backend_available(backend))
        return ae_error(&cfg->err, AE_ERR_UNSUPPORTED,
                        "the %s backend is not built into this libae (meson option -D%s)", name,
                        name);
    cfg->backend = backend;
    return AE_OK;
}

ae_backend ae_config_get_backend(const ae_config *cfg) {
    return cfg ? cfg->backend : AE_BACKEND_AUTO;
}
