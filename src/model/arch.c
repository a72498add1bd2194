/* Architecture descriptions (<libae/arch.h>, docs/arch.md): a parser and a
 * printer over the layer kinds' descriptors (src/layers/layers.h) and the
 * settings table (config.c). A layer line is read as its kind's descriptor
 * lays out the attributes (values in the attributes' order, then
 * name=value) and ends in ae_config_add_spec, as every builder call does;
 * a layer is printed from the same descriptor, so what a kind gains in its
 * descriptor the text format gains with it, with no switch on the kind.
 * The lines that are not layers (input, code, tied, mirror, penalties,
 * set) have their own small table here. Numbers are read and written in
 * the C locale, whatever the program's. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libae/arch.h>

#include "model.h"

#define MAX_WORDS 64

/* ======================================================================
 * Names the format adds to the descriptors
 * ====================================================================== */

/* PyTorch's spellings of kinds whose libae name differs. */
static const struct {
    const char *alias;
    ae_layer_kind kind;
} kind_aliases[] = {
    {"linear", AE_LAYER_DENSE},
    {"convtranspose2d", AE_LAYER_CONV_TRANSPOSE2D},
    {"batchnorm1d", AE_LAYER_BATCHNORM},
    {"batchnorm2d", AE_LAYER_BATCHNORM},
    {"adaptive_avgpool2d", AE_LAYER_AVGPOOL_1X1},
};
#define N_ALIASES (sizeof kind_aliases / sizeof kind_aliases[0])

/* PyTorch arguments that have one value in libae: accepted when true and
 * the attribute `attr` has the value `when` (then also printed, so a
 * PyTorch reader sees the semantics), refused as unsupported when false. */
static const struct {
    ae_layer_kind kind;
    const char *name, *attr;
    int64_t when;
    const char *why;
} fixed_kws[] = {
    {AE_LAYER_UPSAMPLE, "align_corners", "mode", AE_UPSAMPLE_BILINEAR,
     "libae's bilinear upsampling is align_corners=True"},
};
#define N_FIXED (sizeof fixed_kws / sizeof fixed_kws[0])

static const float default_slope = 0.01f;

/* ======================================================================
 * Reading
 * ====================================================================== */

typedef struct word {
    const char *s; /* the word, n bytes */
    size_t n, col; /* col: its first byte, from 1 */
    const char *key, *val; /* name=value: both parts; key NULL for a plain value */
    size_t keyn, valn, vcol;
} word;

typedef struct parser {
    ae_config *cfg; /* the copy being built */
    ae_errbuf *err; /* where messages go: the caller's config */
    size_t line;
    word w[MAX_WORDS];
    size_t nw;
    size_t input_line; /* the line of `input`; 0 before */
} parser;

/* A value of an attribute or argument as read. */
typedef struct argval {
    int64_t i;
    double f;
    int set;
} argval;

static ae_status perr(parser *p, ae_status st, size_t col, const char *fmt, ...) AE_PRINTF(4, 5);
static ae_status perr(parser *p, ae_status st, size_t col, const char *fmt, ...) {
    char msg[sizeof p->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ae_error(p->err, st, "line %zu, column %zu: %s", p->line, col, msg);
}

/* Up to 40 bytes of s for a message, bytes outside printable ASCII as '?'. */
static const char *shown(char buf[48], const char *s, size_t n) {
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++) buf[i] = s[i] >= 32 && s[i] < 127 ? s[i] : '?';
    strcpy(buf + k, n > k ? "..." : "");
    return buf;
}

static int same(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static ae_status read_int(parser *p, const char *what, const char *s, size_t n, size_t col,
                          int64_t *out) {
    char sh[48], buf[24];
    size_t i = n && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    int digits = n > i;
    for (size_t j = i; digits && j < n; j++) digits = s[j] >= '0' && s[j] <= '9';
    if (!digits)
        return perr(p, AE_ERR_FORMAT, col, "%s takes an integer, got '%s'", what, shown(sh, s, n));
    long long v = 0;
    if (n < sizeof buf) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        v = strtoll(buf, NULL, 10);
    }
    if (n >= sizeof buf || errno == ERANGE)
        return perr(p, AE_ERR_RANGE, col, "%s: %s is out of range", what, shown(sh, s, n));
    *out = (int64_t)v;
    return AE_OK;
}

static ae_status read_real(parser *p, const char *what, const char *s, size_t n, size_t col,
                           double *out) {
    char sh[48], buf[64];
    int starts = n && ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '-' || s[0] == '+');
    char *end = buf;
    double v = 0.0;
    if (starts && n < sizeof buf) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        v = strtod(buf, &end);
    }
    if (end != buf + n || !starts)
        return perr(p, AE_ERR_FORMAT, col, "%s takes a number, got '%s'", what, shown(sh, s, n));
    if (!isfinite(v))
        return perr(p, AE_ERR_RANGE, col, "%s must be finite, got '%s'", what, shown(sh, s, n));
    *out = v;
    return AE_OK;
}

static ae_status read_bool(parser *p, const char *what, const char *s, size_t n, size_t col,
                           int *out) {
    char sh[48];
    if (same(s, n, "true") || same(s, n, "True") || same(s, n, "1")) *out = 1;
    else if (same(s, n, "false") || same(s, n, "False") || same(s, n, "0")) *out = 0;
    else
        return perr(p, AE_ERR_FORMAT, col, "%s takes true or false, got '%s'", what,
                    shown(sh, s, n));
    return AE_OK;
}

/* One of the names lo..hi of `values` (NULL-terminated or not). */
static int find_name(const char *const *values, double lo, double hi, const char *s, size_t n,
                     int64_t *out) {
    for (int64_t v = (int64_t)lo; v <= (int64_t)hi && values[v - (int64_t)lo]; v++)
        if (same(s, n, values[v - (int64_t)lo])) {
            *out = v;
            return 1;
        }
    return 0;
}

static void list_names(char *buf, size_t cap, const char *const *values, double lo, double hi) {
    size_t len = 0;
    buf[0] = '\0';
    for (int64_t v = (int64_t)lo; v <= (int64_t)hi && values[v - (int64_t)lo] && len < cap; v++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "",
                                values[v - (int64_t)lo]);
}

/* A value of attribute `a` of `owner` ("conv2d"), checked against its bounds. */
static ae_status read_attr(parser *p, const char *owner, const ae_layer_attr *a, const char *s,
                           size_t n, size_t col, argval *v) {
    char what[96], sh[48], names[160];
    snprintf(what, sizeof what, "%s %s", owner, a->name);
    ae_status st;
    if (a->type == AE_ATTR_FLOAT) {
        if ((st = read_real(p, what, s, n, col, &v->f)) != AE_OK) return st;
        if (!((a->lo_open ? v->f > a->lo : v->f >= a->lo) && v->f <= a->hi))
            return perr(p, AE_ERR_RANGE, col, "%s must be in %c%g, %g], got %g", what,
                        a->lo_open ? '(' : '[', a->lo, a->hi, v->f);
    } else if (a->type == AE_ATTR_ENUM) {
        if (!find_name(a->values, a->lo, a->hi, s, n, &v->i)) {
            list_names(names, sizeof names, a->values, a->lo, a->hi);
            return perr(p, AE_ERR_FORMAT, col, "%s must be one of %s; got '%s'", what, names,
                        shown(sh, s, n));
        }
    } else {
        if ((st = read_int(p, what, s, n, col, &v->i)) != AE_OK) return st;
        if ((double)v->i < a->lo || (double)v->i > a->hi)
            return perr(p, AE_ERR_RANGE, col, "%s must be in [%.0f, %.0f], got %lld", what, a->lo,
                        a->hi, (long long)v->i);
    }
    v->set = 1;
    return AE_OK;
}

/* A keyword a line takes besides its attributes: returns 1 when it took
 * the word (*st set to the outcome), 0 when the word is not one of its. */
typedef int (*extra_fn)(parser *p, const word *w, void *ctx, ae_status *st);

/* Reads the arguments of the current line: values in the attributes'
 * order, then name=value for attributes or for `extra`'s keywords
 * (named in `extra_names` for messages); then defaults, and the check
 * that every attribute without one was given. */
static ae_status read_args(parser *p, const char *owner, const ae_layer_attr *attrs, size_t nattrs,
                           argval *vals, extra_fn extra, void *ctx, const char *extra_names) {
    char sh[48], names[256];
    size_t len = 0, npos = 0;
    names[0] = '\0';
    for (size_t i = 0; i < nattrs && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                attrs[i].name);
    if (extra_names && *extra_names && len < sizeof names)
        snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", extra_names);
    int keywords = 0;
    memset(vals, 0, nattrs * sizeof *vals);
    for (size_t k = 1; k < p->nw; k++) {
        const word *w = &p->w[k];
        ae_status st;
        if (!w->key) {
            if (keywords)
                return perr(p, AE_ERR_FORMAT, w->col,
                            "'%s' follows name=value arguments: give it as name=value",
                            shown(sh, w->s, w->n));
            if (npos >= nattrs)
                return perr(p, AE_ERR_FORMAT, w->col, "%s takes %s%s; '%s' is one value too many",
                            owner, nattrs ? "the values " : "no values",
                            nattrs ? names : "", shown(sh, w->s, w->n));
            if ((st = read_attr(p, owner, &attrs[npos], w->s, w->n, w->col, &vals[npos])) != AE_OK)
                return st;
            npos++;
            continue;
        }
        keywords = 1;
        size_t a = 0;
        while (a < nattrs && !same(w->key, w->keyn, attrs[a].name)) a++;
        if (a < nattrs) {
            if (vals[a].set)
                return perr(p, AE_ERR_FORMAT, w->col, "%s %s is given twice", owner, attrs[a].name);
            if ((st = read_attr(p, owner, &attrs[a], w->val, w->valn, w->vcol, &vals[a])) != AE_OK)
                return st;
            continue;
        }
        if (extra && extra(p, w, ctx, &st)) {
            if (st) return st;
            continue;
        }
        return perr(p, AE_ERR_FORMAT, w->col, "%s has no argument '%s'%s%s%s", owner,
                    shown(sh, w->key, w->keyn), *names ? " (it takes " : "", names,
                    *names ? ")" : "");
    }
    for (size_t i = 0; i < nattrs; i++) {
        if (vals[i].set) continue;
        if (!attrs[i].has_default)
            return perr(p, AE_ERR_FORMAT, p->w[0].col, "%s needs %s", owner, attrs[i].name);
        vals[i].i = (int64_t)attrs[i].def;
        vals[i].f = attrs[i].def;
    }
    return AE_OK;
}

/* The builder refused the line: its message, at the line's first word. */
static ae_status builder_err(parser *p, ae_status st) {
    return perr(p, st, p->w[0].col, "%s", p->cfg->err.msg);
}

/* ---- activation, slope and bias keywords ---- */

typedef struct act_opts {
    ae_activation act;
    double slope;
    int act_set, slope_set;
} act_opts;

static int act_extra(parser *p, const word *w, act_opts *o, ae_status *st) {
    char sh[48], buf[24];
    *st = AE_OK;
    if (same(w->key, w->keyn, "activation")) {
        if (o->act_set) *st = perr(p, AE_ERR_FORMAT, w->col, "the activation is given twice");
        else if (w->valn >= sizeof buf ||
                 (memcpy(buf, w->val, w->valn), buf[w->valn] = '\0',
                  ae_activation_from_name(buf, &o->act) != AE_OK))
            *st = perr(p, AE_ERR_FORMAT, w->vcol,
                       "unknown activation '%s' (identity, relu, leaky_relu, sigmoid, tanh, gelu, "
                       "softplus, elu)",
                       shown(sh, w->val, w->valn));
        o->act_set = 1;
        return 1;
    }
    if (same(w->key, w->keyn, "slope")) {
        if (o->slope_set) *st = perr(p, AE_ERR_FORMAT, w->col, "slope is given twice");
        else if ((*st = read_real(p, "slope", w->val, w->valn, w->vcol, &o->slope)) == AE_OK &&
                 !(o->slope >= 0.0 && o->slope <= 1e3))
            *st = perr(p, AE_ERR_RANGE, w->vcol, "slope must be in [0, 1000], got %g", o->slope);
        o->slope_set = 1;
        return 1;
    }
    return 0;
}

typedef struct layer_ctx {
    const ae_layer_desc *d;
    act_opts act;
    int bias, bias_set;
    int fixed[N_FIXED + 1], fixed_set[N_FIXED + 1];
    size_t fixed_col[N_FIXED + 1];
} layer_ctx;

static int layer_extra(parser *p, const word *w, void *vctx, ae_status *st) {
    layer_ctx *c = vctx;
    *st = AE_OK;
    if ((c->d->flags & AE_LK_ACT) && act_extra(p, w, &c->act, st)) return 1;
    if ((c->d->flags & AE_LK_BIAS) && same(w->key, w->keyn, "bias")) {
        if (c->bias_set) *st = perr(p, AE_ERR_FORMAT, w->col, "bias is given twice");
        else *st = read_bool(p, "bias", w->val, w->valn, w->vcol, &c->bias);
        c->bias_set = 1;
        return 1;
    }
    for (size_t f = 0; f < N_FIXED; f++) {
        if (fixed_kws[f].kind != c->d->kind || !same(w->key, w->keyn, fixed_kws[f].name)) continue;
        if (c->fixed_set[f]) *st = perr(p, AE_ERR_FORMAT, w->col, "%s is given twice", fixed_kws[f].name);
        else *st = read_bool(p, fixed_kws[f].name, w->val, w->valn, w->vcol, &c->fixed[f]);
        c->fixed_set[f] = 1;
        c->fixed_col[f] = w->col;
        return 1;
    }
    return 0;
}

/* The keywords a kind takes besides its attributes, for messages and docs. */
static void layer_extra_names(const ae_layer_desc *d, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    if (d->flags & AE_LK_ACT) len += (size_t)snprintf(buf, cap, "activation, slope");
    if ((d->flags & AE_LK_BIAS) && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%sbias", len ? ", " : "");
    for (size_t f = 0; f < N_FIXED && len < cap; f++)
        if (fixed_kws[f].kind == d->kind)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", fixed_kws[f].name);
}

static const ae_layer_attr *attr_named(const ae_layer_desc *d, const char *name) {
    for (size_t i = 0; i < d->nattrs; i++)
        if (strcmp(d->attrs[i].name, name) == 0) return &d->attrs[i];
    return NULL;
}

/* A layer line: kind `d`; `act_word` when the line is an activation's name. */
static ae_status run_layer(parser *p, const ae_layer_desc *d, int act_word, ae_activation act) {
    layer_ctx c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.act.act = act;
    c.act.act_set = act_word;
    argval vals[16];
    char extras[96];
    layer_extra_names(d, extras, sizeof extras);
    if (d->nattrs > sizeof vals / sizeof vals[0])
        return perr(p, AE_ERR_UNSUPPORTED, p->w[0].col, "%s has too many attributes", d->name);
    ae_status st = read_args(p, act_word ? ae_act_name(act) : d->name, d->attrs, d->nattrs, vals,
                             layer_extra, &c, extras);
    if (st) return st;
    ae_layer_spec spec;
    ae_layer_spec_init(&spec, d->kind);
    for (size_t i = 0; i < d->nattrs; i++) {
        if (d->attrs[i].type == AE_ATTR_FLOAT) ae_spec_set_float(&spec, &d->attrs[i], vals[i].f);
        else ae_spec_set_int(&spec, &d->attrs[i], vals[i].i);
    }
    if (c.act.act_set) spec.act = c.act.act;
    if (c.act.slope_set) spec.slope = (float)c.act.slope;
    if (c.bias_set) spec.bias = c.bias;
    for (size_t f = 0; f < N_FIXED; f++) {
        if (!c.fixed_set[f]) continue;
        const ae_layer_attr *a = attr_named(d, fixed_kws[f].attr);
        if (!c.fixed[f])
            return perr(p, AE_ERR_UNSUPPORTED, c.fixed_col[f], "%s=false is not supported: %s",
                        fixed_kws[f].name, fixed_kws[f].why);
        if (a && ae_spec_get_int(&spec, a) != fixed_kws[f].when)
            return perr(p, AE_ERR_FORMAT, c.fixed_col[f], "%s needs %s=%s", fixed_kws[f].name,
                        fixed_kws[f].attr,
                        a->values ? a->values[fixed_kws[f].when - (int64_t)a->lo] : "?");
    }
    if ((st = ae_config_add_spec(p->cfg, &spec)) != AE_OK) return builder_err(p, st);
    return AE_OK;
}

/* ---- the lines that are not layers ---- */

static const char *const reduction_values[] = {"mean", "sum", NULL};

static const ae_layer_attr input_attrs[] = {
    {.name = "channels", .type = AE_ATTR_INT, .slot = 0, .lo = 1, .hi = (double)AE_MAX_DIM},
    {.name = "height", .type = AE_ATTR_INT, .slot = 1, .lo = 1, .hi = (double)AE_MAX_DIM,
     .has_default = 1, .def = 1},
    {.name = "width", .type = AE_ATTR_INT, .slot = 2, .lo = 1, .hi = (double)AE_MAX_DIM,
     .has_default = 1, .def = 1},
};
static const ae_layer_attr kl_attrs[] = {
    {.name = "rho", .type = AE_ATTR_FLOAT, .slot = 0, .lo = 0, .hi = 1, .lo_open = 1},
    {.name = "weight", .type = AE_ATTR_FLOAT, .slot = 1, .lo = 0, .hi = 1e6},
    {.name = "reduction", .type = AE_ATTR_ENUM, .slot = 2, .lo = AE_REDUCE_MEAN,
     .hi = AE_REDUCE_SUM, .has_default = 1, .def = AE_REDUCE_MEAN, .values = reduction_values},
};
static const ae_layer_attr l1_attrs[] = {
    {.name = "weight", .type = AE_ATTR_FLOAT, .slot = 0, .lo = 0, .hi = 1e6},
};

static ae_status st_input(parser *p, const argval *v, const act_opts *a) {
    (void)a;
    if (p->input_line)
        return perr(p, AE_ERR_FORMAT, p->w[0].col, "a second input line (the first is line %zu)",
                    p->input_line);
    p->input_line = p->line;
    ae_status st = ae_config_set_input_shape(p->cfg, (size_t)v[0].i, (size_t)v[1].i, (size_t)v[2].i);
    return st ? builder_err(p, st) : AE_OK;
}

static ae_status st_code(parser *p, const argval *v, const act_opts *a) {
    (void)v, (void)a;
    ae_status st = ae_config_mark_code(p->cfg);
    return st ? builder_err(p, st) : AE_OK;
}

static ae_status st_tied(parser *p, const argval *v, const act_opts *a) {
    (void)v, (void)a;
    ae_status st = ae_config_tie(p->cfg);
    return st ? builder_err(p, st) : AE_OK;
}

static ae_status st_mirror(parser *p, const argval *v, const act_opts *a) {
    (void)v;
    ae_status st = ae_config_mirror_decoder(p->cfg, a->act);
    if (!st && a->slope_set)
        st = ae_config_layer_set_float(p->cfg, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, a->slope);
    return st ? builder_err(p, st) : AE_OK;
}

static ae_status st_kl(parser *p, const argval *v, const act_opts *a) {
    (void)a;
    ae_status st = ae_config_add_kl_sparsity(p->cfg, AE_LAST_LAYER, v[0].f, v[1].f,
                                             (ae_reduction)v[2].i);
    return st ? builder_err(p, st) : AE_OK;
}

static ae_status st_l1(parser *p, const argval *v, const act_opts *a) {
    (void)a;
    ae_status st = ae_config_add_l1_sparsity(p->cfg, AE_LAST_LAYER, v[0].f);
    return st ? builder_err(p, st) : AE_OK;
}

typedef struct stmt {
    const char *name;
    const ae_layer_attr *attrs;
    size_t nattrs;
    int takes_act; /* activation= and slope= */
    ae_status (*run)(parser *p, const argval *v, const act_opts *a);
    const char *doc; /* one sentence for docs/arch.md */
} stmt;

#define ATTRS(a) a, sizeof a / sizeof a[0]
static const stmt stmts[] = {
    {"input", ATTRS(input_attrs), 0, st_input,
     "The sample shape: `input C H W` for images, `input N` for vectors of N features "
     "(ae_config_set_input_shape). First, once."},
    {"code", NULL, 0, 0, st_code,
     "The code (bottleneck) is the output of the layers so far (ae_config_mark_code). A "
     "`gaussian` layer is the code itself."},
    {"tied", NULL, 0, 0, st_tied,
     "Every encoder-decoder pair of dense layers shares its weight (ae_config_tie)."},
    {"mirror", NULL, 0, 1, st_mirror,
     "Adds the decoder that mirrors a dense encoder, `activation` (default identity) and "
     "`slope` on its output layer (ae_config_mirror_decoder). Nothing follows it."},
    {"kl_sparsity", ATTRS(kl_attrs), 0, st_kl,
     "A KL sparsity penalty on the output of the layer before (ae_config_add_kl_sparsity)."},
    {"l1", ATTRS(l1_attrs), 0, st_l1,
     "An L1 penalty on the output of the layer before (ae_config_add_l1_sparsity)."},
};
#define N_STMTS (sizeof stmts / sizeof stmts[0])

static int stmt_extra(parser *p, const word *w, void *ctx, ae_status *st) {
    return act_extra(p, w, ctx, st);
}

static ae_status run_stmt(parser *p, const stmt *s) {
    argval vals[4];
    act_opts a;
    memset(&a, 0, sizeof a);
    a.act = AE_ACT_IDENTITY;
    ae_status st = read_args(p, s->name, s->attrs, s->nattrs, vals, s->takes_act ? stmt_extra : NULL,
                             &a, s->takes_act ? "activation, slope" : NULL);
    return st ? st : s->run(p, vals, &a);
}

/* ---- set: the model settings (ae_param), named as in the settings table ---- */

/* "AE_P_LEARNING_RATE" as the text spells it: "learning_rate". */
static const char *setting_text_name(const ae_setting_info *si, char buf[48]) {
    const char *s = si->name + 5; /* after "AE_P_" */
    size_t i = 0;
    for (; s[i] && i < 47; i++) buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    buf[i] = '\0';
    return buf;
}

/* PyTorch's short names of settings. */
static const struct {
    const char *alias;
    ae_param id;
} setting_aliases[] = {{"lr", AE_P_LEARNING_RATE}, {"eps", AE_P_EPSILON}};

static int find_setting(const char *s, size_t n, ae_setting_info *out) {
    char name[48];
    ae_param alias = (ae_param)0;
    for (size_t a = 0; a < sizeof setting_aliases / sizeof setting_aliases[0]; a++)
        if (same(s, n, setting_aliases[a].alias)) alias = setting_aliases[a].id;
    for (size_t i = 0; ae_settings_info(i, out); i++)
        if (out->id == alias || same(s, n, setting_text_name(out, name))) return 1;
    return 0;
}

static ae_status run_set(parser *p) {
    char sh[48], name[48], names[160];
    ae_param seen[MAX_WORDS];
    if (p->nw < 2) return perr(p, AE_ERR_FORMAT, p->w[0].col, "set needs name=value");
    for (size_t k = 1; k < p->nw; k++) {
        const word *w = &p->w[k];
        ae_setting_info si;
        if (!w->key)
            return perr(p, AE_ERR_FORMAT, w->col, "set takes name=value, got '%s'",
                        shown(sh, w->s, w->n));
        if (!find_setting(w->key, w->keyn, &si))
            return perr(p, AE_ERR_FORMAT, w->col, "unknown setting '%s' (docs/arch.md lists them)",
                        shown(sh, w->key, w->keyn));
        setting_text_name(&si, name);
        for (size_t j = 1; j < k; j++)
            if (seen[j] == si.id) return perr(p, AE_ERR_FORMAT, w->col, "%s is given twice", name);
        seen[k] = si.id;
        ae_status st;
        if (si.is_int) {
            int64_t v = 0;
            int b = 0;
            if (si.values) {
                /* Yes/no settings also take the spellings of read_bool. */
                int is_bool = si.lo == 0 && si.hi == 1 && strcmp(si.values[0], "false") == 0;
                int found = find_name(si.values, si.lo, si.hi, w->val, w->valn, &v);
                if (!found && is_bool && read_bool(p, name, w->val, w->valn, w->vcol, &b) == AE_OK)
                    v = b, found = 1;
                if (!found) {
                    list_names(names, sizeof names, si.values, si.lo, si.hi);
                    return perr(p, AE_ERR_FORMAT, w->vcol, "%s must be one of %s; got '%s'", name,
                                names, shown(sh, w->val, w->valn));
                }
            } else if ((st = read_int(p, name, w->val, w->valn, w->vcol, &v)) != AE_OK) {
                return st;
            }
            st = ae_config_set_int(p->cfg, si.id, v);
        } else {
            double v = 0.0;
            if ((st = read_real(p, name, w->val, w->valn, w->vcol, &v)) != AE_OK) return st;
            st = ae_config_set_float(p->cfg, si.id, v);
        }
        if (st) return perr(p, st, w->vcol, "%s: %s", name, p->cfg->err.msg);
    }
    return AE_OK;
}

/* ---- lines ---- */

static ae_status run_line(parser *p) {
    const word *w0 = &p->w[0];
    char sh[48], buf[48];
    if (w0->key)
        return perr(p, AE_ERR_FORMAT, w0->col,
                    "a line starts with a layer kind or a statement, not '%s'",
                    shown(sh, w0->s, w0->n));
    for (size_t i = 0; i < N_STMTS; i++)
        if (same(w0->s, w0->n, stmts[i].name)) return run_stmt(p, &stmts[i]);
    if (same(w0->s, w0->n, "set")) return run_set(p);
    for (size_t i = 0; i < N_ALIASES; i++)
        if (same(w0->s, w0->n, kind_aliases[i].alias))
            return run_layer(p, ae_layer_desc_for(kind_aliases[i].kind), 0, AE_ACT_IDENTITY);
    if (w0->n < sizeof buf) {
        memcpy(buf, w0->s, w0->n);
        buf[w0->n] = '\0';
        ae_layer_kind kind;
        ae_activation act;
        if (ae_layer_kind_from_name(buf, &kind) == AE_OK)
            return run_layer(p, ae_layer_desc_for(kind), 0, AE_ACT_IDENTITY);
        if (ae_activation_from_name(buf, &act) == AE_OK)
            return run_layer(p, ae_layer_desc_for(AE_LAYER_ACTIVATION), 1, act);
    }
    return perr(p, AE_ERR_FORMAT, w0->col, "unknown layer kind or statement '%s'",
                shown(sh, w0->s, w0->n));
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits line [s, e) into words; '#' starts a comment. */
static ae_status split_line(parser *p, const char *s, const char *e) {
    p->nw = 0;
    const char *q = s;
    while (q < e) {
        if (*q == '#') break;
        if (*q == '\0') return perr(p, AE_ERR_FORMAT, (size_t)(q - s) + 1, "a NUL byte");
        if (is_space(*q)) {
            q++;
            continue;
        }
        const char *b = q;
        while (q < e && !is_space(*q) && *q != '#' && *q != '\0') q++;
        if (p->nw == MAX_WORDS)
            return perr(p, AE_ERR_FORMAT, (size_t)(b - s) + 1, "more than %d words on a line",
                        MAX_WORDS);
        word *w = &p->w[p->nw++];
        memset(w, 0, sizeof *w);
        w->s = b;
        w->n = (size_t)(q - b);
        w->col = (size_t)(b - s) + 1;
        const char *eq = memchr(b, '=', w->n);
        if (eq) {
            w->key = b;
            w->keyn = (size_t)(eq - b);
            w->val = eq + 1;
            w->valn = w->n - w->keyn - 1;
            w->vcol = w->col + w->keyn + 1;
            if (!w->keyn) return perr(p, AE_ERR_FORMAT, w->col, "'=' without a name before it");
            if (!w->valn) {
                char sh[48];
                return perr(p, AE_ERR_FORMAT, w->col, "%s= without a value",
                            shown(sh, w->key, w->keyn));
            }
        }
    }
    return AE_OK;
}

/* The C locale for numbers, per thread (uselocale), as the CSV reader does. */
typedef struct c_numeric {
    locale_t c, old;
} c_numeric;

static int c_numeric_begin(c_numeric *l) {
    l->c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (l->c == (locale_t)0) return -1;
    l->old = uselocale(l->c);
    return 0;
}

static void c_numeric_end(c_numeric *l) {
    uselocale(l->old);
    freelocale(l->c);
}

/* The caller's config copied, so that a failing line changes nothing. */
static ae_config *config_copy(const ae_config *src) {
    ae_config *c = ae_alloc(&src->alloc, sizeof *c);
    if (!c) return NULL;
    *c = *src;
    c->layers = NULL;
    c->cap = 0;
    if (src->nlayers) {
        c->layers = ae_alloc(&src->alloc, src->nlayers * sizeof *c->layers);
        if (!c->layers) {
            ae_free(&src->alloc, c);
            return NULL;
        }
        memcpy(c->layers, src->layers, src->nlayers * sizeof *c->layers);
        c->cap = src->nlayers;
    }
    return c;
}

ae_status ae_arch_parse(ae_config *cfg, const char *text, size_t len) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (!text) return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "the description is NULL");
    parser *p = ae_alloc(&cfg->alloc, sizeof *p);
    ae_config *tmp = config_copy(cfg);
    c_numeric loc;
    int have_loc = p && tmp && c_numeric_begin(&loc) == 0;
    if (!have_loc) {
        ae_free(&cfg->alloc, p);
        ae_config_destroy(tmp);
        return ae_error(&cfg->err, AE_ERR_OUT_OF_MEMORY, "out of memory reading a description");
    }
    memset(p, 0, sizeof *p);
    p->cfg = tmp;
    p->err = &cfg->err;
    ae_status st = AE_OK;
    const char *s = text, *end = text + len;
    while (!st && s < end) {
        const char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e) e = end;
        p->line++;
        st = split_line(p, s, e);
        if (!st && p->nw) st = run_line(p);
        s = e + 1;
    }
    c_numeric_end(&loc);
    ae_free(&cfg->alloc, p);
    if (st) {
        ae_config_destroy(tmp);
        return st;
    }
    /* Success: the copy becomes the config (its own message buffer stays). */
    ae_errbuf keep = cfg->err;
    ae_free(&cfg->alloc, cfg->layers);
    *cfg = *tmp;
    cfg->err = keep;
    ae_free(&cfg->alloc, tmp);
    return AE_OK;
}

ae_status ae_config_from_arch(ae_config *cfg, const char *text) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    return ae_arch_parse(cfg, text, text ? strlen(text) : 0);
}

/* ======================================================================
 * Writing
 * ====================================================================== */

/* Counts when p is NULL; writes when the whole text fits (the caller
 * counted first). */
typedef struct obuf {
    char *p;
    size_t cap, len;
} obuf;

static void out(obuf *o, const char *fmt, ...) AE_PRINTF(2, 3);
static void out(obuf *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = o->p ? vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

/* The shortest text that reads back as v (as a double, or as a float). */
static const char *fmt_real(char buf[40], double v, int as_float) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (as_float ? (float)back == (float)v : back == v) break;
    }
    return buf;
}

static void out_attr_value(obuf *o, const ae_layer_attr *a, const ae_layer_spec *sp) {
    char num[40];
    if (a->type == AE_ATTR_FLOAT) {
        out(o, "%s", fmt_real(num, ae_spec_get_float(sp, a), 0));
        return;
    }
    int64_t v = ae_spec_get_int(sp, a);
    if (a->type == AE_ATTR_ENUM && v >= (int64_t)a->lo && v <= (int64_t)a->hi)
        out(o, "%s", a->values[v - (int64_t)a->lo]);
    else
        out(o, "%lld", (long long)v);
}

/* How many leading attributes are written as plain values: those without a default. */
static size_t positional_count(const ae_layer_attr *attrs, size_t n) {
    size_t k = 0;
    while (k < n && !attrs[k].has_default) k++;
    return k;
}

static void out_layer(obuf *o, const ae_layer_spec *sp) {
    const ae_layer_desc *d = ae_layer_desc_for(sp->kind);
    char num[40];
    int slope = (d->flags & AE_LK_ACT) && (sp->act == AE_ACT_LEAKY_RELU || sp->slope != default_slope);
    if (d->kind == AE_LAYER_ACTIVATION) {
        /* A standalone activation is written as its name: "relu". */
        out(o, "%s", ae_act_name(sp->act));
    } else {
        out(o, "%s", d->name);
        size_t npos = positional_count(d->attrs, d->nattrs);
        for (size_t i = 0; i < d->nattrs; i++) {
            out(o, i < npos ? " " : " %s=", d->attrs[i].name);
            out_attr_value(o, &d->attrs[i], sp);
        }
        if (d->flags & AE_LK_ACT) out(o, " activation=%s", ae_act_name(sp->act));
    }
    if (slope) out(o, " slope=%s", fmt_real(num, (double)sp->slope, 1));
    if ((d->flags & AE_LK_BIAS) && !sp->bias) out(o, " bias=false");
    for (size_t f = 0; f < N_FIXED; f++) {
        const ae_layer_attr *a = fixed_kws[f].kind == d->kind ? attr_named(d, fixed_kws[f].attr) : NULL;
        if (a && ae_spec_get_int(sp, a) == fixed_kws[f].when) out(o, " %s=true", fixed_kws[f].name);
    }
    out(o, "\n");
    const ae_penalty_spec *pen = &sp->penalty;
    if (pen->kl_on) {
        out(o, "kl_sparsity rho=%s", fmt_real(num, pen->kl_rho, 0));
        out(o, " weight=%s reduction=%s\n", fmt_real(num, pen->kl_lambda, 0),
            reduction_values[pen->kl_sum ? 1 : 0]);
    }
    if (pen->l1_on) out(o, "l1 weight=%s\n", fmt_real(num, pen->l1_lambda, 0));
}

/* `set` lines for the settings that differ from their defaults (the
 * weight decay's default follows the optimizer, as when it is chosen). */
static void out_settings(obuf *o, const ae_settings *s) {
    ae_settings d, dopt;
    ae_settings_default(&d);
    dopt = d;
    ae_settings_set(&dopt, NULL, AE_P_OPTIMIZER, 1, s->optimizer, 0.0, 0);
    ae_setting_info si;
    char name[48], num[40];
    for (size_t i = 0; ae_settings_info(i, &si); i++) {
        int64_t iv = 0, dv = 0;
        double fv = 0.0, df = 0.0;
        ae_settings_get(s, NULL, si.id, si.is_int, &iv, &fv);
        ae_settings_get(si.id == AE_P_WEIGHT_DECAY ? &dopt : &d, NULL, si.id, si.is_int, &dv, &df);
        if (si.is_int ? iv == dv : fv == df) continue;
        out(o, "set %s=", setting_text_name(&si, name));
        if (si.is_int && si.values && iv >= (int64_t)si.lo && iv <= (int64_t)si.hi)
            out(o, "%s\n", si.values[iv - (int64_t)si.lo]);
        else if (si.is_int)
            out(o, "%lld\n", (long long)iv);
        else
            out(o, "%s\n", fmt_real(num, fv, 0));
    }
}

/* What a description says, from a config or a model. */
typedef struct arch_view {
    int has_input;
    ae_shape in;
    const ae_layer_spec *(*spec)(const void *src, size_t i);
    const void *src;
    size_t n, code_at;
    int code_marked, tied;
    const ae_settings *s;
    const ae_model *m; /* for the comments on a model's frozen and tied layers; NULL for a config */
} arch_view;

static void out_arch(obuf *o, const arch_view *v) {
    if (v->has_input) {
        if (v->in.h == 1 && v->in.w == 1) out(o, "input %zu\n", v->in.c);
        else out(o, "input %zu %zu %zu\n", v->in.c, v->in.h, v->in.w);
    }
    for (size_t i = 0; i < v->n; i++) {
        const ae_layer_spec *sp = v->spec(v->src, i);
        out_layer(o, sp);
        if (v->code_marked && i + 1 == v->code_at &&
            !(ae_layer_desc_for(sp->kind)->flags & AE_LK_CODE))
            out(o, "code\n");
    }
    if (v->tied) out(o, "tied\n");
    out_settings(o, v->s);
    if (!v->m) return;
    /* What the text cannot say: state set on the model by <libae/stack.h>. */
    size_t nfrozen = 0, ntied = 0;
    for (size_t i = 0; i < v->n; i++) {
        nfrozen += ae_model_is_frozen(v->m, i) != 0;
        ntied += i < v->code_at && ae_model_is_tied(v->m, i);
    }
    if (nfrozen) {
        out(o, "# frozen (ae_model_freeze):");
        for (size_t i = 0; i < v->n; i++)
            if (ae_model_is_frozen(v->m, i)) out(o, " %zu", i);
        out(o, "\n");
    }
    if (ntied && !v->tied) {
        out(o, "# tied (ae_model_tie_layers), encoder layers:");
        for (size_t i = 0; i < v->code_at; i++)
            if (ae_model_is_tied(v->m, i)) out(o, " %zu", i);
        out(o, "\n");
    }
}

/* Counts, then writes when it fits, in the C locale. */
static ae_status print_view(const arch_view *v, ae_errbuf *err, char *buf, size_t capacity,
                            size_t *size) {
    c_numeric loc;
    if (c_numeric_begin(&loc) != 0)
        return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory describing the architecture");
    obuf o = {NULL, 0, 0};
    out_arch(&o, v);
    *size = o.len;
    ae_status st = AE_OK;
    if (capacity <= o.len) {
        st = ae_error(err, AE_ERR_RANGE, "the description has %zu bytes (and a NUL); the buffer holds %zu",
                      o.len, capacity);
    } else {
        obuf w = {buf, capacity, 0};
        out_arch(&w, v);
        buf[w.len] = '\0';
    }
    c_numeric_end(&loc);
    return st;
}

static const ae_layer_spec *config_spec(const void *src, size_t i) {
    return &((const ae_config *)src)->layers[i];
}

static const ae_layer_spec *model_spec(const void *src, size_t i) {
    return &((const ae_model *)src)->layers[i].spec;
}

ae_status ae_arch_print_config(const ae_config *cfg, char *buf, size_t capacity, size_t *size) {
    if (!cfg || !size || (!buf && capacity)) return AE_ERR_INVALID_ARG;
    arch_view v = {cfg->input_size != 0, cfg->input_shape, config_spec, cfg, cfg->nlayers,
                   cfg->code_at, cfg->code_marked, cfg->tied, &cfg->s, NULL};
    return print_view(&v, (ae_errbuf *)&cfg->err, buf, capacity, size);
}

ae_status ae_model_describe(const ae_model *m, char *buf, size_t capacity, size_t *size) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_errbuf *err = (ae_errbuf *)&m->err; /* the message buffer only, as a save */
    if (!size) return ae_error(err, AE_ERR_INVALID_ARG, "size is NULL");
    if (!buf && capacity)
        return ae_error(err, AE_ERR_INVALID_ARG, "buf is NULL but capacity is %zu", capacity);
    /* Tied when every encoder layer with a weight is (ae_config_tie's pairs). */
    int tied = 0, untied = 0;
    for (size_t i = 0; i < m->code_layer; i++) {
        if (!m->layers[i].w_count) continue;
        if (ae_model_is_tied(m, i)) tied = 1;
        else untied = 1;
    }
    arch_view v = {1, m->in_shape, model_spec, m, m->nlayers, m->code_layer, 1, tied && !untied,
                   &m->s, m};
    return print_view(&v, err, buf, capacity, size);
}

/* ======================================================================
 * The reference of docs/arch.md, from the tables
 * ====================================================================== */

/* An integer bound; 2^63 - 1 (which a double cannot hold) by name. */
static const char *fmt_int_bound(char buf[40], double v) {
    if (v >= 9223372036854775807.0) return "2^63 - 1";
    snprintf(buf, 40, "%.0f", v);
    return buf;
}

static void out_range(obuf *o, const ae_layer_attr *a) {
    char lo[40], hi[40];
    if (a->type == AE_ATTR_ENUM) {
        for (int64_t v = (int64_t)a->lo; v <= (int64_t)a->hi; v++)
            out(o, "%s`%s`", v > (int64_t)a->lo ? ", " : "", a->values[v - (int64_t)a->lo]);
    } else if (a->type == AE_ATTR_FLOAT) {
        out(o, "%c%s, %s]", a->lo_open ? '(' : '[', fmt_real(lo, a->lo, 0), fmt_real(hi, a->hi, 0));
    } else {
        out(o, "[%.0f, %s]", a->lo, fmt_int_bound(hi, a->hi));
    }
}

static void out_attr_table(obuf *o, const ae_layer_attr *attrs, size_t n, int positional) {
    char num[40];
    if (!n) return;
    out(o, "\n| argument | value | range | default |\n|---|---|---|---|\n");
    size_t npos = positional ? positional_count(attrs, n) : 0;
    for (size_t i = 0; i < n; i++) {
        const ae_layer_attr *a = &attrs[i];
        out(o, "| `%s`%s | %s | ", a->name, i < npos ? " (positional)" : "",
            a->type == AE_ATTR_INT ? "integer" : a->type == AE_ATTR_FLOAT ? "number" : "name");
        out_range(o, a);
        if (!a->has_default) out(o, " | required |\n");
        else if (a->type == AE_ATTR_ENUM) out(o, " | `%s` |\n", a->values[(int64_t)(a->def - a->lo)]);
        else out(o, " | %s |\n", fmt_real(num, a->def, 0));
    }
}

static void out_reference(obuf *o) {
    char extras[96];
    out(o, "### Layers\n");
    for (size_t k = 0; ae_layer_desc_at(k); k++) {
        const ae_layer_desc *d = ae_layer_desc_at(k);
        out(o, "\n#### `%s`\n", d->name);
        /* One paragraph of sentences, when there is anything to say. */
        const char *sep = "\n";
        if (d->kind == AE_LAYER_ACTIVATION) {
            out(o, "%sWritten as the activation's name: `relu`, `leaky_relu slope=0.2`.", sep);
            sep = " ";
        }
        size_t na = 0;
        for (size_t i = 0; i < N_ALIASES; i++) {
            if (kind_aliases[i].kind != d->kind) continue;
            if (!na++) out(o, "%sAlso spelled", sep);
            out(o, "%s `%s`", na > 1 ? "," : "", kind_aliases[i].alias);
        }
        if (na) {
            out(o, ".");
            sep = " ";
        }
        layer_extra_names(d, extras, sizeof extras);
        if (*extras) {
            out(o, "%sKeywords:", sep);
            if (d->flags & AE_LK_ACT)
                out(o, " `activation` (default `identity`), `slope` (LeakyReLU, default 0.01)");
            if (d->flags & AE_LK_BIAS) out(o, "%s `bias` (default `true`)", d->flags & AE_LK_ACT ? "," : "");
            for (size_t f = 0; f < N_FIXED; f++) {
                if (fixed_kws[f].kind != d->kind) continue;
                const ae_layer_attr *a = attr_named(d, fixed_kws[f].attr);
                out(o, "%s `%s` (`true` only, with `%s=%s`: %s)",
                    (d->flags & (AE_LK_ACT | AE_LK_BIAS)) ? "," : "", fixed_kws[f].name,
                    fixed_kws[f].attr, a->values[fixed_kws[f].when - (int64_t)a->lo], fixed_kws[f].why);
            }
            out(o, ".");
            sep = " ";
        }
        if (d->flags & AE_LK_CODE) {
            out(o, "%sIt is the code: it ends the encoder.", sep);
            sep = " ";
        }
        if (!d->nattrs) {
            out(o, "%sNo arguments.", sep);
            sep = " ";
        }
        if (*sep == ' ') out(o, "\n");
        out_attr_table(o, d->attrs, d->nattrs, 1);
    }
    out(o, "\n### Other lines\n");
    for (size_t i = 0; i < N_STMTS; i++) {
        out(o, "\n#### `%s`\n\n%s%s\n", stmts[i].name, stmts[i].doc,
            stmts[i].takes_act ? " Keywords: `activation`, `slope`." : "");
        out_attr_table(o, stmts[i].attrs, stmts[i].nattrs, 1);
    }
    out(o, "\n#### `set`\n\n`set name=value ...`: model settings (ae_param), later lines "
           "overriding earlier ones. Also spelled: `lr` (learning_rate), `eps` (epsilon).\n\n"
           "| setting | parameter | value | range | default |\n|---|---|---|---|---|\n");
    ae_settings d;
    ae_settings_default(&d);
    ae_setting_info si;
    char name[48], lo[40], hi[40], num[40];
    for (size_t i = 0; ae_settings_info(i, &si); i++) {
        int64_t iv = 0;
        double fv = 0.0;
        ae_settings_get(&d, NULL, si.id, si.is_int, &iv, &fv);
        out(o, "| `%s` | %s | ", setting_text_name(&si, name), si.name);
        if (si.values) {
            out(o, "name | ");
            for (int64_t v = (int64_t)si.lo; v <= (int64_t)si.hi; v++)
                out(o, "%s`%s`", v > (int64_t)si.lo ? ", " : "", si.values[v - (int64_t)si.lo]);
            out(o, " | `%s` |\n", si.values[iv - (int64_t)si.lo]);
        } else if (si.is_int) {
            out(o, "integer | [%.0f, %s] | %lld |\n", si.lo, fmt_int_bound(hi, si.hi), (long long)iv);
        } else {
            out(o, "number | %c%s, %s%c | %s |\n", si.lo_open ? '(' : '[', fmt_real(lo, si.lo, 0),
                fmt_real(hi, si.hi, 0), si.hi_open ? ')' : ']',
                si.id == AE_P_WEIGHT_DECAY ? "0 (0.01 with adamw)" : fmt_real(num, fv, 0));
        }
    }
}

ae_status ae_arch_reference(char *buf, size_t capacity, size_t *size) {
    c_numeric loc;
    if (c_numeric_begin(&loc) != 0) return AE_ERR_OUT_OF_MEMORY;
    obuf o = {NULL, 0, 0};
    out_reference(&o);
    *size = o.len;
    ae_status st = AE_ERR_RANGE;
    if (buf && capacity > o.len) {
        obuf w = {buf, capacity, 0};
        out_reference(&w);
        buf[w.len] = '\0';
        st = AE_OK;
    }
    c_numeric_end(&loc);
    return st;
}
