/* Convolutions on oneDNN's primitives (conv_plan.h). Measured on the seed
 * models, oneDNN's direct kernels on blocked layouts (nChw16c and the like)
 * beat im2col + GEMM by up to 4x, most for few channels (3-channel images,
 * 6x6 kernels over 8 channels) and large spatial sizes (docs/performance.md).
 *
 * A plan binds libae's plain buffers (x, pre, the gradients: NCHW; W and
 * dW: PyTorch's [out, in, k, k]) to the layouts the primitives chose. Where the two differ,
 * a buffer in the layer's scratch and a reorder stand between them; the
 * forward pass keeps the reordered input there for the weight gradient.
 * Everything is created at plan_make, so a pass only executes. */
#include <string.h>

#include "conv_plan.h"

#ifndef AE_HAVE_ONEDNN

ae_status ae_conv_plan_make(const ae_conv_shape *cs, size_t batch, const ae_allocator *a,
                            ae_conv_plan **out, ae_errbuf *err) {
    (void)cs, (void)batch, (void)a, (void)err;
    *out = NULL;
    return AE_OK;
}
void ae_conv_plan_free(ae_conv_plan *p, const ae_allocator *a) { (void)p, (void)a; }
size_t ae_conv_plan_floats(const ae_conv_plan *p) {
    (void)p;
    return 0;
}
void ae_conv_plan_forward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                          const float *bias, float *pre) {
    (void)p, (void)scratch, (void)x, (void)W, (void)bias, (void)pre;
}
void ae_conv_plan_backward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                           const float *d, float *dW, int accumulate, float *dx) {
    (void)p, (void)scratch, (void)x, (void)W, (void)d, (void)dW, (void)accumulate, (void)dx;
}

#else

#include <oneapi/dnnl/dnnl.h>

/* One primitive argument: `user` is libae's plain buffer (bound at every
 * call), `blk` the primitive's layout: the same object when they agree,
 * else a buffer at `off` floats into the scratch, filled or emptied by
 * `reorder` (user -> blk for inputs, blk -> user for outputs). An argument
 * may lend its buffer to a later one of the same layout (make_arg). */
typedef struct plan_arg {
    dnnl_memory_t user, blk;
    dnnl_primitive_t reorder;
    size_t off;
} plan_arg;

struct ae_conv_plan {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t fwd, bwd_d, bwd_w;
    /* x: forward's input, xw: the weight gradient's (often x's buffer);
     * y: forward's output into pre; dy, dyw: dL/dpre for the data and the
     * weight gradient; dx; w, wb: the weights of the forward and the data
     * gradient; dw: the weight gradient; b: the bias. */
    plan_arg x, xw, y, dy, dyw, dx, w, wb, dw;
    dnnl_memory_t b, pad;
    /* tmp_off: dW in its plain layout, when the gradient is added to dW. */
    size_t pad_off, tmp_off, floats, w_count;
    int has_bias;
    float *bound; /* the scratch the blocked buffers point into */
    /* Every memory object and primitive, for binding and destroying. */
    dnnl_memory_t mems[24];
    size_t nmems;
    dnnl_primitive_t prims[16];
    size_t nprims;
};

static size_t floats_of(const dnnl_memory_desc_t *md) {
    return (dnnl_memory_desc_get_size(md) / sizeof(float) + 15) & ~(size_t)15;
}

static dnnl_status_t new_mem(ae_conv_plan *p, const dnnl_memory_desc_t *md, dnnl_memory_t *m) {
    dnnl_status_t s = dnnl_memory_create(m, md, p->eng, DNNL_MEMORY_NONE);
    if (s == dnnl_success) p->mems[p->nmems++] = *m;
    return s;
}

static dnnl_status_t new_prim(ae_conv_plan *p, const_dnnl_primitive_desc_t pd,
                              dnnl_primitive_t *prim) {
    dnnl_status_t s = dnnl_primitive_create(prim, pd);
    if (s == dnnl_success) p->prims[p->nprims++] = *prim;
    return s;
}

/* The scratchpad a primitive descriptor needs, into the shared one's size. */
static size_t pad_floats(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? floats_of(md) : 0;
}

static dnnl_primitive_attr_t user_pad_attr(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

/* Sets up `arg` between the plain `user_md` and the primitive's `want`:
 * `share` (an argument set up before, or NULL) lends its buffer when it has
 * the same layout; `to_blk`: the reorder runs user -> blk. *pad_max grows
 * to the reorder's scratchpad. */
static dnnl_status_t make_arg(ae_conv_plan *p, plan_arg *arg, const dnnl_memory_desc_t *user_md,
                              const dnnl_memory_desc_t *want, const plan_arg *share, int to_blk,
                              dnnl_primitive_attr_t attr, size_t *pad_max) {
    dnnl_status_t s = new_mem(p, user_md, &arg->user);
    if (s != dnnl_success) return s;
    if (dnnl_memory_desc_equal(want, user_md)) {
        arg->blk = arg->user;
        return dnnl_success;
    }
    const dnnl_memory_desc_t *share_md = NULL;
    if (share && share->blk != share->user &&
        dnnl_memory_get_memory_desc(share->blk, &share_md) == dnnl_success &&
        dnnl_memory_desc_equal(want, share_md)) {
        arg->blk = share->blk;
        arg->off = share->off;
    } else {
        if ((s = new_mem(p, want, &arg->blk)) != dnnl_success) return s;
        arg->off = p->floats;
        p->floats += floats_of(want);
    }
    dnnl_primitive_desc_t rpd = NULL;
    s = to_blk ? dnnl_reorder_primitive_desc_create(&rpd, user_md, p->eng, want, p->eng, attr)
               : dnnl_reorder_primitive_desc_create(&rpd, want, p->eng, user_md, p->eng, attr);
    if (s != dnnl_success) return s;
    size_t need = pad_floats(rpd);
    if (need > *pad_max) *pad_max = need;
    s = new_prim(p, rpd, &arg->reorder);
    dnnl_primitive_desc_destroy(rpd);
    return s;
}

void ae_conv_plan_free(ae_conv_plan *p, const ae_allocator *a) {
    if (!p) return;
    for (size_t i = 0; i < p->nprims; i++) dnnl_primitive_destroy(p->prims[i]);
    for (size_t i = 0; i < p->nmems; i++) dnnl_memory_destroy(p->mems[i]);
    if (p->st) dnnl_stream_destroy(p->st);
    if (p->eng) dnnl_engine_destroy(p->eng);
    ae_free(a, p);
}

size_t ae_conv_plan_floats(const ae_conv_plan *p) { return p ? p->floats : 0; }

static dnnl_status_t tag_md(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t dims,
                            dnnl_format_tag_t tag) {
    return dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_f32, tag);
}

/* The primitive descriptor of a pass (0 forward, 1 data gradient, 2
 * weight gradient) on any layouts but the bias. */
static dnnl_status_t make_pd(const ae_conv_shape *cs, int pass, const dnnl_memory_desc_t *src,
                             const dnnl_memory_desc_t *w, const dnnl_memory_desc_t *b,
                             const dnnl_memory_desc_t *dst, dnnl_engine_t eng,
                             dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                             dnnl_primitive_desc_t *pd) {
    dnnl_dims_t str = {(dnnl_dim_t)cs->s, (dnnl_dim_t)cs->s};
    dnnl_dims_t pad = {(dnnl_dim_t)cs->p, (dnnl_dim_t)cs->p};
    dnnl_convolution_desc_t od;
    dnnl_status_t s;
    if (pass == 0)
        s = dnnl_convolution_forward_desc_init(&od, dnnl_forward_training, dnnl_convolution_direct,
                                               src, w, b, dst, str, pad, pad);
    else if (pass == 1)
        s = dnnl_convolution_backward_data_desc_init(&od, dnnl_convolution_direct, src, w, dst, str,
                                                     pad, pad);
    else
        s = dnnl_convolution_backward_weights_desc_init(&od, dnnl_convolution_direct, src, w, NULL,
                                                        dst, str, pad, pad);
    if (s != dnnl_success) return s;
    return dnnl_primitive_desc_create(pd, &od, attr, eng, hint);
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t q) {
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

ae_status ae_conv_plan_make(const ae_conv_shape *cs, size_t batch, const ae_allocator *a,
                            ae_conv_plan **out, ae_errbuf *err) {
    *out = NULL;
    ae_conv_plan *p = ae_calloc(a, 1, sizeof *p);
    if (!p) return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory for a convolution plan");
    p->has_bias = cs->bias;
    p->w_count = cs->Ci * cs->Co * cs->k * cs->k;
    dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    size_t pad_max = 0;
    dnnl_status_t s = dnnl_engine_create(&p->eng, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&p->st, p->eng, dnnl_stream_default_flags);
    if (s == dnnl_success && !(attr = user_pad_attr())) s = dnnl_out_of_memory;

    dnnl_dim_t B = (dnnl_dim_t)batch, k = (dnnl_dim_t)cs->k;
    dnnl_dims_t xd = {B, (dnnl_dim_t)cs->Ci, (dnnl_dim_t)cs->H, (dnnl_dim_t)cs->W};
    dnnl_dims_t yd = {B, (dnnl_dim_t)cs->Co, (dnnl_dim_t)cs->Ho, (dnnl_dim_t)cs->Wo};
    dnnl_dims_t wd = {(dnnl_dim_t)cs->Co, (dnnl_dim_t)cs->Ci, k, k};
    dnnl_dims_t bd = {(dnnl_dim_t)cs->Co};
    dnnl_memory_desc_t ux, uy, uw, ub, ax, ay, aw;
    if (s == dnnl_success) s = tag_md(&ux, 4, xd, dnnl_nchw);
    if (s == dnnl_success) s = tag_md(&uy, 4, yd, dnnl_nchw);
    if (s == dnnl_success) s = tag_md(&uw, 4, wd, dnnl_oihw);
    if (s == dnnl_success) s = tag_md(&ub, 1, bd, dnnl_x);
    if (s == dnnl_success) s = tag_md(&ax, 4, xd, dnnl_format_tag_any);
    if (s == dnnl_success) s = tag_md(&ay, 4, yd, dnnl_format_tag_any);
    if (s == dnnl_success) s = tag_md(&aw, 4, wd, dnnl_format_tag_any);
    if (s == dnnl_success)
        s = make_pd(cs, 0, &ax, &aw, cs->bias ? &ub : NULL, &ay, p->eng, attr, NULL, &fpd);
    /* The data gradient of a convolution with fewer than 16 channels on
     * either side runs on channels-last buffers: oneDNN's blocked kernels
     * pad the channels to 16 there and measured 2-6x slower (8-channel 6x6
     * convolutions, 32 -> 3 channels at 64x64; docs/performance.md). */
    dnnl_memory_desc_t dx_md = ax, dy_md = ay;
    if (s == dnnl_success && (cs->Ci < 16 || cs->Co < 16)) {
        s = tag_md(&dx_md, 4, xd, dnnl_nhwc);
        if (s == dnnl_success) s = tag_md(&dy_md, 4, yd, dnnl_nhwc);
    }
    if (s == dnnl_success)
        s = make_pd(cs, 1, &dx_md, &aw, NULL, &dy_md, p->eng, attr, fpd, &dpd);
    if (s == dnnl_success) s = make_pd(cs, 2, &ax, &aw, NULL, &ay, p->eng, attr, fpd, &wpd);
    if (s == dnnl_success) {
        size_t n[3] = {pad_floats(fpd), pad_floats(dpd), pad_floats(wpd)};
        for (int i = 0; i < 3; i++)
            if (n[i] > pad_max) pad_max = n[i];
    }
    /* Inputs first, so that outputs may reuse their buffers where the
     * passes' order allows: dx the input's (the weight gradient runs first),
     * dy forward's output's. */
    if (s == dnnl_success)
        s = make_arg(p, &p->x, &ux, md_of(fpd, dnnl_query_src_md), NULL, 1, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->xw, &ux, md_of(wpd, dnnl_query_src_md), &p->x, 1, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->w, &uw, md_of(fpd, dnnl_query_weights_md), NULL, 1, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->wb, &uw, md_of(dpd, dnnl_query_weights_md), &p->w, 1, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->y, &uy, md_of(fpd, dnnl_query_dst_md), NULL, 0, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->dy, &uy, md_of(dpd, dnnl_query_diff_dst_md), &p->y, 1, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->dyw, &uy, md_of(wpd, dnnl_query_diff_dst_md), &p->dy, 1, attr,
                     &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->dx, &ux, md_of(dpd, dnnl_query_diff_src_md), &p->x, 0, attr, &pad_max);
    if (s == dnnl_success)
        s = make_arg(p, &p->dw, &uw, md_of(wpd, dnnl_query_diff_weights_md), NULL, 0, attr,
                     &pad_max);
    if (s == dnnl_success && cs->bias) s = new_mem(p, &ub, &p->b);
    if (s == dnnl_success) {
        p->tmp_off = p->floats;
        p->floats += floats_of(&uw);
    }
    if (s == dnnl_success && pad_max) {
        dnnl_memory_desc_t pmd;
        dnnl_dims_t pd1 = {(dnnl_dim_t)(pad_max * sizeof(float))};
        s = dnnl_memory_desc_init_by_tag(&pmd, 1, pd1, dnnl_u8, dnnl_x);
        if (s == dnnl_success) s = new_mem(p, &pmd, &p->pad);
        p->pad_off = p->floats;
        p->floats += pad_max;
    }
    if (s == dnnl_success) s = new_prim(p, fpd, &p->fwd);
    if (s == dnnl_success) s = new_prim(p, dpd, &p->bwd_d);
    if (s == dnnl_success) s = new_prim(p, wpd, &p->bwd_w);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(dpd);
    dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_attr_destroy(attr);
    if (s == dnnl_success) {
        *out = p;
        return AE_OK;
    }
    ae_conv_plan_free(p, a);
    if (s == dnnl_out_of_memory)
        return ae_error(err, AE_ERR_OUT_OF_MEMORY,
                        "out of memory creating oneDNN's convolution for batch %zu", batch);
    return AE_OK; /* no primitive for this shape: the GEMM path */
}

/* Points the blocked buffers into `scratch` when it moved (binding a padded
 * layout zeroes its padding: not done at every call). */
static void bind(ae_conv_plan *p, float *scratch) {
    if (p->bound == scratch) return;
    const plan_arg *args[] = {&p->x, &p->xw, &p->y, &p->dy, &p->dyw, &p->dx, &p->w, &p->wb, &p->dw};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        if (args[i]->blk != args[i]->user)
            dnnl_memory_set_data_handle_v2(args[i]->blk, scratch + args[i]->off, p->st);
    if (p->pad) dnnl_memory_set_data_handle(p->pad, scratch + p->pad_off);
    p->bound = scratch;
}

static void user(dnnl_memory_t m, const void *ptr) { dnnl_memory_set_data_handle(m, (void *)ptr); }

static void run(ae_conv_plan *p, dnnl_primitive_t prim, dnnl_exec_arg_t *args, int n) {
    if (p->pad) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->pad};
    dnnl_primitive_execute(prim, p->st, n, args);
}

static void reorder(ae_conv_plan *p, const plan_arg *arg, int to_blk) {
    if (!arg->reorder) return;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, to_blk ? arg->user : arg->blk},
                               {DNNL_ARG_TO, to_blk ? arg->blk : arg->user}};
    run(p, arg->reorder, args, 2);
}

void ae_conv_plan_forward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                          const float *bias, float *pre) {
    bind(p, scratch);
    user(p->x.user, x);
    user(p->w.user, W);
    user(p->y.user, pre);
    reorder(p, &p->x, 1);
    reorder(p, &p->w, 1);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, p->x.blk}, {DNNL_ARG_WEIGHTS, p->w.blk},
                               {DNNL_ARG_DST, p->y.blk}};
    int n = 3;
    if (p->has_bias && bias) {
        user(p->b, bias);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->b};
    }
    run(p, p->fwd, args, n);
    reorder(p, &p->y, 0);
    dnnl_stream_wait(p->st);
}

void ae_conv_plan_backward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                           const float *d, float *dW, int accumulate, float *dx) {
    bind(p, scratch);
    user(p->dy.user, d);
    user(p->dyw.user, d);
    reorder(p, &p->dy, 1);
    if (dW) {
        user(p->xw.user, x);
        /* The forward pass left the input in x's buffer; another layout
         * is reordered from x again. */
        if (p->xw.blk != p->x.blk) reorder(p, &p->xw, 1);
        if (p->dyw.blk != p->dy.blk) reorder(p, &p->dyw, 1);
        /* A gradient added to dW goes through tmp, in dW's layout. */
        float *tmp = scratch + p->tmp_off;
        user(p->dw.user, accumulate ? tmp : dW);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->xw.blk},
                                   {DNNL_ARG_DIFF_DST, p->dyw.blk},
                                   {DNNL_ARG_DIFF_WEIGHTS, p->dw.blk}};
        run(p, p->bwd_w, args, 3);
        reorder(p, &p->dw, 0);
        dnnl_stream_wait(p->st);
        if (accumulate)
            for (size_t i = 0; i < p->w_count; i++) dW[i] += tmp[i];
    }
    if (dx) {
        user(p->wb.user, W);
        user(p->dx.user, dx);
        if (p->wb.blk != p->w.blk) reorder(p, &p->wb, 1);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, p->dy.blk},
                                   {DNNL_ARG_WEIGHTS, p->wb.blk},
                                   {DNNL_ARG_DIFF_SRC, p->dx.blk}};
        run(p, p->bwd_d, args, 3);
        reorder(p, &p->dx, 0);
    }
    dnnl_stream_wait(p->st);
}

#endif
