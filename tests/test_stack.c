/* Tests of src/model/stack.c: weight tying and untying, freezing, copying
 * layers between models, misuse (and that it changes nothing), gradients
 * by finite differences, and the optimizer state the blocks keep. */
#include "test_util.h"

#include "model/model.h"

#define OK(call) assert_int_equal((call), AE_OK)

/* A dense model with the given widths d0..dL; layers [0, enc) form the
 * encoder; hidden layers ReLU-free smooth activations so finite
 * differences work; no bias where nobias is set (bit l for layer l). */
static ae_model *make_with(const ae_allocator *a, const size_t *d, size_t layers, size_t enc,
                           ae_optimizer opt, int tied, unsigned nobias, int64_t seed) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, a) != AE_OK) return NULL;
    ae_status st = ae_config_set_input_size(c, d[0]);
    for (size_t l = 0; l < layers && !st; l++) {
        if (l == enc) st = ae_config_mark_code(c);
        ae_activation act = l + 1 == layers ? AE_ACT_SIGMOID : (l + 1 == enc ? AE_ACT_IDENTITY : AE_ACT_TANH);
        if (!st) st = ae_config_add_dense(c, d[l + 1], act);
        if (!st && (nobias >> l & 1u)) st = ae_config_layer_set_int(c, l, AE_LAYER_BIAS, 0);
    }
    if (!st) st = ae_config_set_int(c, AE_P_OPTIMIZER, opt);
    if (!st) st = ae_config_set_int(c, AE_P_SEED, seed);
    if (!st && tied) st = ae_config_tie(c);
    if (!st) st = ae_model_create(&m, c);
    if (st) print_error("make: %s: %s\n", ae_status_name(st), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

static ae_model *make(const size_t *d, size_t layers, size_t enc, ae_optimizer opt, int tied,
                      unsigned nobias, int64_t seed) {
    return make_with(NULL, d, layers, enc, opt, tied, nobias, seed);
}

static const size_t D5[5] = {12, 8, 4, 8, 12};
static const size_t D3[3] = {12, 8, 12};

/* Every weight (effective, [out, in]) and bias, concatenated; caller frees. */
static float *snapshot(const ae_model *m, size_t *n_out) {
    size_t total = 0;
    ae_layer_info info = {.struct_size = sizeof info};
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        OK(ae_model_layer_info(m, l, &info));
        total += info.weight_count + info.bias_count;
    }
    float *p = malloc(total * sizeof *p), *q = p;
    assert_non_null(p);
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        OK(ae_model_layer_info(m, l, &info));
        OK(ae_model_get_weights(m, l, q, info.weight_count));
        q += info.weight_count;
        OK(ae_model_get_bias(m, l, q, info.bias_count));
        q += info.bias_count;
    }
    *n_out = total;
    return p;
}

/* One layer's weight; caller frees. */
static float *weights(const ae_model *m, size_t l, size_t *n) {
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, l, &info));
    float *w = malloc(info.weight_count * sizeof *w);
    assert_non_null(w);
    OK(ae_model_get_weights(m, l, w, info.weight_count));
    *n = info.weight_count;
    return w;
}

static float *bias_of(const ae_model *m, size_t l, size_t *n) {
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, l, &info));
    float *b = malloc((info.bias_count ? info.bias_count : 1) * sizeof *b);
    assert_non_null(b);
    OK(ae_model_get_bias(m, l, b, info.bias_count));
    *n = info.bias_count;
    return b;
}

/* Everything the model keeps between steps, bitwise: parameters, optimizer
 * state, blocks, flags. */
typedef struct full_state {
    size_t n, nblocks;
    float *p, *s1, *s2;
    ae_param_block blocks[16];
    int tied[8], frozen[8];
    size_t count;
    uint64_t steps;
} full_state;

static void capture(const ae_model *m, full_state *f) {
    memset(f, 0, sizeof *f);
    f->n = m->nparams;
    f->p = malloc(f->n * sizeof(float));
    f->s1 = malloc(f->n * sizeof(float));
    f->s2 = malloc(f->n * sizeof(float));
    assert_true(f->p && f->s1 && f->s2);
    memcpy(f->p, m->params, f->n * sizeof(float));
    memcpy(f->s1, m->state1, f->n * sizeof(float));
    memcpy(f->s2, m->state2, f->n * sizeof(float));
    assert_true(m->nblocks <= 16 && m->nlayers <= 8);
    f->nblocks = m->nblocks;
    memcpy(f->blocks, m->blocks, m->nblocks * sizeof *m->blocks);
    for (size_t l = 0; l < m->nlayers; l++) {
        f->tied[l] = ae_model_is_tied(m, l);
        f->frozen[l] = ae_model_is_frozen(m, l);
    }
    f->count = ae_model_param_count(m);
    f->steps = ae_model_step_count(m);
}

static void assert_same_state(const ae_model *m, full_state *f) {
    full_state g;
    capture(m, &g);
    assert_int_equal(g.n, f->n);
    assert_memory_equal(g.p, f->p, f->n * sizeof(float));
    assert_memory_equal(g.s1, f->s1, f->n * sizeof(float));
    assert_memory_equal(g.s2, f->s2, f->n * sizeof(float));
    assert_int_equal(g.nblocks, f->nblocks);
    assert_memory_equal(g.blocks, f->blocks, f->nblocks * sizeof *f->blocks);
    assert_memory_equal(g.tied, f->tied, sizeof g.tied);
    assert_memory_equal(g.frozen, f->frozen, sizeof g.frozen);
    assert_int_equal(g.count, f->count);
    assert_int_equal(g.steps, f->steps);
    free(g.p);
    free(g.s1);
    free(g.s2);
}

static void release(full_state *f) {
    free(f->p);
    free(f->s1);
    free(f->s2);
}

static const ae_param_block *block_at(const ae_model *m, size_t off) {
    for (size_t b = 0; b < m->nblocks; b++)
        if (m->blocks[b].off == off) return &m->blocks[b];
    return NULL;
}

static void train(ae_model *m, int steps, uint32_t seed) {
    size_t d = ae_model_input_size(m);
    float *x = malloc(6 * d * sizeof *x), loss;
    for (int s = 0; s < steps; s++) {
        test_fill(x, 6 * d, seed + (uint32_t)s, 0.05f, 0.95f);
        ae_status st = ae_train_step(m, x, NULL, 6, &loss);
        if (st) fail_msg("train step: %s", ae_model_last_error(m));
    }
    free(x);
}

static void assert_transposed(const float *a, const float *b, size_t rows, size_t cols) {
    /* a is [rows, cols], b is [cols, rows] */
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            if (a[r * cols + c] != b[c * rows + r])
                fail_msg("element [%zu,%zu] is not the transpose", r, c);
}

/* ---- tying ---- */

static void test_tie_at_creation(void **state) {
    (void)state;
    ae_model *u = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 1);
    ae_model *t = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 1);
    assert_non_null(u);
    assert_non_null(t);
    /* The decoder weights (8*4 + 12*8) are counted once. */
    assert_int_equal(ae_model_param_count(u), 2 * (12 * 8 + 8 * 4) + 8 + 4 + 8 + 12);
    assert_int_equal(ae_model_param_count(t), 12 * 8 + 8 * 4 + 8 + 4 + 8 + 12);
    for (size_t l = 0; l < 4; l++) {
        assert_int_equal(ae_model_is_tied(t, l), 1);
        assert_int_equal(ae_model_is_tied(u, l), 0);
    }
    assert_int_equal(ae_model_is_tied(t, 4), 0);
    assert_int_equal(ae_model_is_tied(NULL, 0), 0);
    /* A tied decoder layer reports its effective weight, the partner's transpose. */
    size_t n0, n3, n1, n2;
    float *w0 = weights(t, 0, &n0), *w3 = weights(t, 3, &n3);
    float *w1 = weights(t, 1, &n1), *w2 = weights(t, 2, &n2);
    assert_int_equal(n0, n3);
    assert_transposed(w0, w3, 8, 12);
    assert_transposed(w1, w2, 4, 8);
    /* Training keeps them tied: one weight. */
    train(t, 5, 10);
    free(w0);
    free(w3);
    w0 = weights(t, 0, &n0);
    w3 = weights(t, 3, &n3);
    assert_transposed(w0, w3, 8, 12);
    /* Writing through the decoder sets the shared weight. */
    for (size_t i = 0; i < n3; i++) w3[i] = (float)i * 0.001f;
    OK(ae_model_set_weights(t, 3, w3, n3));
    float *w0b = weights(t, 0, &n0);
    assert_transposed(w0b, w3, 8, 12);
    free(w0);
    free(w0b);
    free(w1);
    free(w2);
    free(w3);
    ae_model_destroy(u);
    ae_model_destroy(t);
}

static void test_tie_later_and_untie(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 3);
    train(m, 3, 20);
    size_t full = ae_model_param_count(m), n0, n3, nb;
    float *w0 = weights(m, 0, &n0), *b3 = bias_of(m, 3, &nb);
    size_t enc_off = m->layers[0].w_off;
    uint64_t enc_step = block_at(m, enc_off)->step;
    OK(ae_model_tie(m));
    assert_int_equal(ae_model_param_count(m), full - 12 * 8 - 8 * 4);
    /* The encoder's weight and its optimizer state are kept, and the decoder's bias. */
    float *w0t = weights(m, 0, &n0), *w3 = weights(m, 3, &n3), *b3t = bias_of(m, 3, &nb);
    assert_memory_equal(w0, w0t, n0 * sizeof(float));
    assert_transposed(w0, w3, 8, 12);
    assert_memory_equal(b3, b3t, nb * sizeof(float));
    assert_int_equal(block_at(m, enc_off)->step, enc_step);
    assert_null(block_at(m, m->w_own[3]));
    train(m, 2, 30);
    assert_int_equal(block_at(m, enc_off)->step, enc_step + 2);

    /* Untying: the same function, the decoder's own copy with fresh state. */
    float x[3 * 12], before[3 * 12], after[3 * 12];
    test_fill(x, 36, 5, 0, 1);
    OK(ae_reconstruct(m, x, 3, before));
    float *s1 = malloc(m->nparams * sizeof *s1);
    memcpy(s1, m->state1, m->nparams * sizeof *s1);
    OK(ae_model_untie(m));
    assert_int_equal(ae_model_param_count(m), full);
    for (size_t l = 0; l < 4; l++) assert_int_equal(ae_model_is_tied(m, l), 0);
    OK(ae_reconstruct(m, x, 3, after));
    assert_close_arrays(after, before, 36, 1e-6, 1e-7, "reconstruction after untying");
    free(w0t);
    free(w3);
    w0t = weights(m, 0, &n0);
    w3 = weights(m, 3, &n3);
    assert_transposed(w0t, w3, 8, 12);
    assert_int_equal(m->layers[3].w_off, m->w_own[3]);
    const ae_param_block *blk = block_at(m, m->w_own[3]);
    assert_non_null(blk);
    assert_int_equal(blk->step, 0);
    assert_int_equal(block_at(m, enc_off)->step, enc_step + 2);
    for (size_t i = 0; i < n3; i++) {
        assert_true(m->state1[m->w_own[3] + i] == 0.0f);
        assert_true(m->state2[m->w_own[3] + i] == 0.0f);
    }
    /* The encoder's state is untouched by untying. */
    assert_memory_equal(m->state1 + enc_off, s1 + enc_off, n0 * sizeof(float));
    /* The first update of the decoder's own weight is a fresh Adam step:
     * lr * g / (|g| + eps), so every element moves by lr (up to eps). */
    float *w3a = weights(m, 3, &n3);
    train(m, 1, 40);
    float *w3b = weights(m, 3, &n3);
    for (size_t i = 0; i < n3; i++) {
        double d = fabs((double)w3b[i] - w3a[i]);
        if (!(fabs(d - 1e-3) < 2e-5)) fail_msg("decoder weight %zu moved by %g, not lr", i, d);
    }
    /* Tie and untie again (tying a model that was tied at creation too). */
    OK(ae_model_tie(m));
    OK(ae_model_untie(m));
    free(s1);
    free(w0);
    free(w0t);
    free(w3);
    free(w3a);
    free(w3b);
    free(b3);
    free(b3t);
    ae_model_destroy(m);
}

/* Untying a model tied at creation moves no other offset. */
static void test_untie_after_tied_creation_keeps_layout(void **state) {
    (void)state;
    ae_model *t = make(D5, 4, 2, AE_OPT_SGD, 1, 0, 4);
    ae_model *u = make(D5, 4, 2, AE_OPT_SGD, 0, 0, 4);
    for (size_t l = 0; l < 4; l++) {
        assert_int_equal(t->w_own[l], u->w_own[l]);
        assert_int_equal(t->layers[l].b_off, u->layers[l].b_off);
    }
    assert_int_equal(t->nparams, u->nparams);
    assert_int_equal(t->layers[3].w_off, t->layers[0].w_off);
    OK(ae_model_untie(t));
    for (size_t l = 0; l < 4; l++) {
        assert_int_equal(t->layers[l].w_off, u->layers[l].w_off);
        assert_int_equal(t->layers[l].b_off, u->layers[l].b_off);
    }
    assert_int_equal(t->nblocks, u->nblocks);
    for (size_t b = 0; b < t->nblocks; b++) {
        assert_int_equal(t->blocks[b].off, u->blocks[b].off);
        assert_int_equal(t->blocks[b].len, u->blocks[b].len);
    }
    ae_model_destroy(t);
    ae_model_destroy(u);
}

static void test_tie_layers_and_no_bias(void **state) {
    (void)state;
    /* Layers 1 and 2 have no bias. */
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0x6u, 5);
    size_t full = ae_model_param_count(m);
    OK(ae_model_tie_layers(m, 1, 1));
    assert_int_equal(ae_model_param_count(m), full - 8 * 4);
    assert_int_equal(ae_model_is_tied(m, 0), 0);
    assert_int_equal(ae_model_is_tied(m, 1), 1);
    assert_int_equal(ae_model_is_tied(m, 2), 1);
    assert_int_equal(ae_model_is_tied(m, 3), 0);
    train(m, 4, 50);
    size_t n1, n2;
    float *w1 = weights(m, 1, &n1), *w2 = weights(m, 2, &n2);
    assert_transposed(w1, w2, 4, 8);
    free(w1);
    free(w2);
    /* Tying the rest is allowed; the pair already tied is not tied twice. */
    assert_int_equal(ae_model_tie_layers(m, 0, 1), AE_ERR_STATE);
    OK(ae_model_tie_layers(m, 0, 0));
    assert_int_equal(ae_model_param_count(m), full - 8 * 4 - 12 * 8);
    OK(ae_model_untie_layers(m, 1, 1));
    assert_int_equal(ae_model_is_tied(m, 1), 0);
    assert_int_equal(ae_model_is_tied(m, 0), 1);
    assert_int_equal(ae_model_untie_layers(m, 1, 1), AE_ERR_STATE);
    train(m, 2, 60);
    ae_model_destroy(m);
}

static void test_tie_misuse_changes_nothing(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 6);
    train(m, 2, 70);
    full_state f;
    capture(m, &f);
    assert_int_equal(ae_model_tie(m), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "already tied"));
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_STATE);
    assert_int_equal(ae_model_tie_layers(m, 0, 2), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "layer 2 is not an encoder layer"));
    assert_int_equal(ae_model_tie_layers(m, 1, 0), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 0, 3), AE_ERR_RANGE);
    assert_int_equal(ae_model_tie(NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_untie(NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_tie_layers(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_untie_layers(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_same_state(m, &f);
    release(&f);
    OK(ae_model_untie(m));
    capture(m, &f);
    assert_int_equal(ae_model_untie(m), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "no layer"));
    assert_int_equal(ae_model_untie_layers(m, 0, 0), AE_ERR_STATE);
    assert_same_state(m, &f);
    release(&f);
    /* The model is still usable. */
    train(m, 1, 80);
    ae_model_destroy(m);

    /* Configs: tying twice. */
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_tie(c));
    assert_int_equal(ae_config_tie(c), AE_ERR_STATE);
    assert_int_equal(ae_config_tie(NULL), AE_ERR_INVALID_ARG);
    ae_config_destroy(c);
}

static void test_not_symmetric_refused(void **state) {
    (void)state;
    /* 12-8-4 | 4-6-12: neither pair mirrors the other. */
    static const size_t d[5] = {12, 8, 4, 6, 12};
    ae_model *m = make(d, 4, 2, AE_OPT_ADAM, 0, 0, 7);
    full_state f;
    capture(m, &f);
    assert_int_equal(ae_model_tie(m), AE_ERR_SHAPE);
    const char *msg = ae_model_last_error(m);
    assert_non_null(strstr(msg, "layer 0 (12->8) and layer 3 (6->12)"));
    assert_non_null(strstr(msg, "layer 1 (8->4) and layer 2 (4->6)"));
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);

    /* Only dense layers can be tied (white-box: a layer of another kind). */
    m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 7);
    capture(m, &f);
    m->layers[2].kind = (ae_layer_kind)1;
    assert_int_equal(ae_model_tie(m), AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_model_last_error(m), "only dense layers can be tied"));
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_UNSUPPORTED);
    assert_same_state(m, &f);
    OK(ae_model_tie_layers(m, 0, 0)); /* the dense pair can be */
    m->layers[2].kind = AE_LAYER_DENSE;
    release(&f);
    ae_model_destroy(m);

    /* More decoder than encoder layers. */
    static const size_t e[4] = {12, 8, 8, 12};
    m = make(e, 3, 1, AE_OPT_ADAM, 0, 0, 7);
    capture(m, &f);
    assert_int_equal(ae_model_tie(m), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(m), "its layers with weights are 0 in the encoder but 1, 2 in the decoder"));
    assert_int_equal(ae_model_untie(m), AE_ERR_STATE);
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);

    /* At creation: the config's message names the layers. */
    ae_config *c;
    ae_model *out = (ae_model *)1;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 12));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    OK(ae_config_tie(c));
    OK(ae_model_create(&out, c)); /* 12-8 | 8-12 is symmetric */
    ae_model_destroy(out);
    ae_config_destroy(c);
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 12));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 4, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 7, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    OK(ae_config_tie(c));
    out = (ae_model *)1;
    assert_int_equal(ae_model_create(&out, c), AE_ERR_SHAPE);
    assert_null(out);
    assert_non_null(strstr(ae_config_last_error(c), "layer 0 (12->8) and layer 3 (7->12)"));
    ae_config_destroy(c);
}

/* Layers without weights (a top-k layer, say) are skipped when pairing.
 * White-box: a 4->4 decoder layer is made to look weightless. */
static void test_pairs_skip_layers_without_weights(void **state) {
    (void)state;
    static const size_t d[6] = {12, 8, 4, 4, 8, 12};
    ae_model *m = make(d, 5, 2, AE_OPT_ADAM, 0, 0, 24);
    assert_int_equal(ae_model_tie(m), AE_ERR_SHAPE); /* 2 against 3 */
    m->layers[2].w_count = 0;
    size_t before = ae_model_param_count(m);
    OK(ae_model_tie(m));
    assert_int_equal(ae_model_param_count(m), before - 8 * 12 - 4 * 8);
    const int tied[5] = {1, 1, 0, 1, 1};
    for (size_t l = 0; l < 5; l++) assert_int_equal(ae_model_is_tied(m, l), tied[l]);
    assert_int_equal(m->layers[4].w_off, m->layers[0].w_off);
    assert_int_equal(m->layers[3].w_off, m->layers[1].w_off);
    assert_int_equal(ae_model_untie_layers(m, 2, 2), AE_ERR_RANGE);
    OK(ae_model_untie_layers(m, 1, 1));
    assert_int_equal(ae_model_is_tied(m, 3), 0);
    assert_int_equal(ae_model_is_tied(m, 4), 1);
    OK(ae_model_untie(m));
    assert_int_equal(ae_model_param_count(m), before);
    ae_model_destroy(m);

    /* A range with no weight in it. */
    static const size_t e[5] = {12, 8, 8, 8, 12};
    m = make(e, 4, 2, AE_OPT_ADAM, 0, 0, 25);
    m->layers[1].w_count = 0;
    m->layers[2].w_count = 0;
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "no weight"));
    OK(ae_model_tie(m));
    assert_int_equal(ae_model_untie_layers(m, 1, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_is_tied(m, 3), 1);
    ae_model_destroy(m);
}

/* in-8-topk(2) | 12: layer 1 (the code) has no weight. With `enc_weight`
 * 0, the encoder is the top-k layer alone. */
static ae_model *make_topk(int enc_weight) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 12));
    if (enc_weight) OK(ae_config_add_dense(c, 8, AE_ACT_TANH));
    OK(ae_config_add_topk(c, 2));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* Every error code stack.h lists for the calls on a layer range, each
 * reached, and a bad range reported as AE_ERR_RANGE before anything about
 * the model's state (nothing tied, not symmetric); each failure changes
 * nothing. */
static void test_range_checked_first(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 26); /* 4 layers, nothing tied */
    train(m, 1, 260);
    full_state f;
    capture(m, &f);
    /* Untie: a bad range on an untied model is a range error, not "nothing tied". */
    assert_int_equal(ae_model_untie_layers(m, 0, 5), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "layer 5 is not an encoder layer"));
    assert_int_equal(ae_model_untie_layers(m, 0, 2), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 1, 0), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "the first layer (1) is after the last (0)"));
    assert_int_equal(ae_model_untie_layers(m, (size_t)-1, (size_t)-1), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 0, 1), AE_ERR_STATE); /* a good range */
    assert_non_null(strstr(ae_model_last_error(m), "no layer of the model is tied"));
    assert_int_equal(ae_model_untie(m), AE_ERR_STATE);
    assert_same_state(m, &f);
    release(&f);
    /* Partly tied: a pair of the range that is not tied. */
    OK(ae_model_tie_layers(m, 1, 1));
    capture(m, &f);
    assert_int_equal(ae_model_untie_layers(m, 0, 1), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "layers 0 and 3 are not tied"));
    assert_int_equal(ae_model_untie_layers(m, 0, 4), AE_ERR_RANGE);
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "already tied"));
    assert_int_equal(ae_model_tie_layers(m, 1, 9), AE_ERR_RANGE); /* range before "already tied" */
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);

    /* Tie: a bad range on a model that is not symmetric is a range error. */
    static const size_t d[5] = {12, 8, 4, 6, 12};
    m = make(d, 4, 2, AE_OPT_ADAM, 0, 0, 27);
    capture(m, &f);
    assert_int_equal(ae_model_tie_layers(m, 0, 5), AE_ERR_RANGE);
    assert_int_equal(ae_model_tie_layers(m, 1, 0), AE_ERR_RANGE);
    assert_int_equal(ae_model_tie_layers(m, 0, 0), AE_ERR_SHAPE);
    assert_int_equal(ae_model_untie_layers(m, 0, 5), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 0, 0), AE_ERR_STATE);
    assert_same_state(m, &f);
    release(&f);
    /* Not a dense layer (white-box, as in test_not_symmetric_refused). */
    m->layers[2].kind = (ae_layer_kind)1;
    assert_int_equal(ae_model_tie_layers(m, 0, 3), AE_ERR_RANGE);
    m->layers[2].kind = AE_LAYER_DENSE;
    ae_model_destroy(m);

    /* A range holding no layer with a weight (a real top-k layer): an
     * argument error, before "nothing tied". */
    m = make_topk(1);
    capture(m, &f);
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "encoder layers 1 to 1 have no weight to tie"));
    assert_int_equal(ae_model_untie_layers(m, 1, 1), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "encoder layers 1 to 1 have no weight to untie"));
    assert_int_equal(ae_model_tie_layers(m, 1, 2), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 1, 2), AE_ERR_RANGE);
    assert_same_state(m, &f);
    release(&f);
    OK(ae_model_tie_layers(m, 0, 1)); /* the range holds the dense layer */
    assert_int_equal(ae_model_is_tied(m, 2), 1);
    assert_int_equal(ae_model_untie_layers(m, 1, 1), AE_ERR_INVALID_ARG);
    OK(ae_model_untie_layers(m, 0, 1));
    ae_model_destroy(m);
    /* An encoder without any weight: the model is not symmetric. */
    m = make_topk(0);
    assert_int_equal(ae_model_tie(m), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(m), "none in the encoder but 1 in the decoder"));
    assert_int_equal(ae_model_tie_layers(m, 0, 0), AE_ERR_SHAPE);
    assert_int_equal(ae_model_tie_layers(m, 0, 1), AE_ERR_RANGE);
    assert_int_equal(ae_model_untie_layers(m, 0, 0), AE_ERR_INVALID_ARG);
    ae_model_destroy(m);

    /* Freeze and unfreeze: every code. */
    m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 28);
    capture(m, &f);
    assert_int_equal(ae_model_freeze(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_unfreeze(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_freeze(m, 0, 4), AE_ERR_RANGE);
    assert_int_equal(ae_model_unfreeze(m, 2, 1), AE_ERR_RANGE);
    assert_int_equal(ae_model_unfreeze(m, 4, AE_LAST_LAYER), AE_ERR_RANGE);
    OK(ae_model_unfreeze(m, 0, AE_LAST_LAYER)); /* nothing frozen: allowed */
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);
}

/* Finite differences of ae_evaluate against one SGD step with lr 1 (the
 * update is minus the gradient), over every parameter reachable through
 * ae_model_set_weights / set_bias; a tied weight is probed through its
 * encoder layer, so its gradient must hold both uses. */
static void check_gradient(ae_model *m) {
    OK(ae_model_set_float(m, AE_P_LEARNING_RATE, 1.0));
    size_t L = ae_model_layer_count(m), d = ae_model_input_size(m);
    float x[3 * 12], loss;
    assert_true(d <= 12);
    test_fill(x, 3 * d, 91, 0.05f, 0.95f);
    size_t n;
    float *p0 = snapshot(m, &n);
    OK(ae_train_step(m, x, NULL, 3, &loss));
    float *p1 = snapshot(m, &n);
    /* Restore, then probe. */
    size_t off = 0;
    for (size_t l = 0; l < L; l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        OK(ae_model_set_weights(m, l, p0 + off, info.weight_count));
        off += info.weight_count;
        OK(ae_model_set_bias(m, l, p0 + off, info.bias_count));
        off += info.bias_count;
    }
    size_t base = 0;
    for (size_t l = 0; l < L; l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        for (int part = 0; part < 2; part++) {
            size_t cnt = part ? info.bias_count : info.weight_count;
            /* The decoder side of a tied pair is the same parameter: skip it. */
            int skip = !part && l >= ae_model_code_layer(m) && ae_model_is_tied(m, l);
            float *buf = malloc((cnt ? cnt : 1) * sizeof *buf);
            memcpy(buf, p0 + base, cnt * sizeof *buf);
            for (size_t k = 0; k < cnt && !skip; k++) {
                const float h = 1e-3f;
                float lp, lm, s = buf[k];
                buf[k] = s + h;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                OK(ae_evaluate(m, x, NULL, 3, &lp));
                buf[k] = s - h;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                OK(ae_evaluate(m, x, NULL, 3, &lm));
                buf[k] = s;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                double fd = ((double)lp - (double)lm) / (2.0 * h);
                double analytic = (double)p0[base + k] - (double)p1[base + k];
                if (ae_model_is_frozen(m, l) ||
                    (!part && ae_model_is_tied(m, l) &&
                     ae_model_is_frozen(m, ae_model_layer_count(m) - 1 - l)))
                    analytic = 0.0, fd = 0.0; /* frozen: no update at all (checked below) */
                if (fabs(fd - analytic) > 2e-4 + 2e-2 * fabs(fd))
                    fail_msg("layer %zu %s[%zu]: analytic %g, finite differences %g", l,
                             part ? "b" : "W", k, analytic, fd);
            }
            if (ae_model_is_frozen(m, l)) /* bitwise unchanged */
                assert_memory_equal(p1 + base, p0 + base, cnt * sizeof(float));
            base += cnt;
            free(buf);
        }
    }
    free(p0);
    free(p1);
}

static void test_gradients_fd(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_SGD, 1, 0, 8); /* fully tied */
    check_gradient(m);
    ae_model_destroy(m);
    m = make(D5, 4, 2, AE_OPT_SGD, 1, 0xFu, 8); /* tied, no bias anywhere */
    check_gradient(m);
    ae_model_destroy(m);
    m = make(D5, 4, 2, AE_OPT_SGD, 0, 0, 9); /* inner tied, outer frozen: the greedy stage */
    OK(ae_model_tie_layers(m, 1, 1));
    OK(ae_model_freeze(m, 0, 0));
    OK(ae_model_freeze(m, 3, 3));
    check_gradient(m);
    ae_model_destroy(m);
    m = make(D5, 4, 2, AE_OPT_SGD, 0, 0, 10); /* middle frozen: gradient flows through */
    OK(ae_model_freeze(m, 1, 2));
    check_gradient(m);
    ae_model_destroy(m);
}

/* ---- freezing ---- */

static void test_freeze_keeps_params_and_state(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAMW, 0, 0, 11);
    OK(ae_model_set_float(m, AE_P_WEIGHT_DECAY, 0.1)); /* decay would move a skipped weight */
    train(m, 2, 90);
    OK(ae_model_freeze(m, 1, 2));
    for (size_t l = 0; l < 4; l++) assert_int_equal(ae_model_is_frozen(m, l), l == 1 || l == 2);
    /* The frozen layers' parameters, state and step counts, bitwise. */
    full_state f;
    capture(m, &f);
    train(m, 3, 100);
    for (size_t l = 1; l <= 2; l++) {
        const ae_layer *L = &m->layers[l];
        size_t ranges[2][2] = {{L->w_off, L->w_count}, {L->b_off, L->b_count}};
        for (int r = 0; r < 2; r++) {
            size_t o = ranges[r][0], c = ranges[r][1];
            assert_memory_equal(m->params + o, f.p + o, c * sizeof(float));
            assert_memory_equal(m->state1 + o, f.s1 + o, c * sizeof(float));
            assert_memory_equal(m->state2 + o, f.s2 + o, c * sizeof(float));
            assert_int_equal(block_at(m, o)->step, 2);
        }
    }
    /* The others trained (layer 0 below the frozen ones too). */
    assert_memory_not_equal(m->params + m->layers[0].w_off, f.p + m->layers[0].w_off,
                            m->layers[0].w_count * sizeof(float));
    assert_int_equal(block_at(m, m->layers[0].w_off)->step, 5);
    assert_int_equal(block_at(m, m->layers[3].b_off)->step, 5);
    release(&f);
    /* Unfrozen, they resume from their own state (step 2 -> 3). */
    OK(ae_model_unfreeze(m, 0, AE_LAST_LAYER));
    train(m, 1, 110);
    assert_int_equal(block_at(m, m->layers[1].w_off)->step, 3);
    assert_int_equal(block_at(m, m->layers[0].w_off)->step, 6);
    ae_model_destroy(m);
}

/* Freezing layers gives the other layers exactly the gradient they had. */
static void test_freeze_same_gradient_elsewhere(void **state) {
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        ae_model *a = make(D5, 4, 2, AE_OPT_SGD, 0, 0, 12);
        ae_model *b = make(D5, 4, 2, AE_OPT_SGD, 0, 0, 12);
        static const size_t range[3][2] = {{1, 2}, {0, 1}, {3, 3}};
        size_t lo = range[variant][0], hi = range[variant][1];
        OK(ae_model_freeze(b, lo, hi));
        train(a, 1, 120);
        train(b, 1, 120);
        for (size_t l = 0; l < 4; l++) {
            const ae_layer *L = &a->layers[l];
            size_t o = L->w_off, c = L->w_count + L->b_count; /* W then b */
            if (l >= lo && l <= hi) continue;
            assert_memory_equal(a->params + o, b->params + o, c * sizeof(float));
        }
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
    /* Everything frozen: a step reports the loss and changes nothing. */
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 13);
    OK(ae_model_freeze(m, 0, 3));
    full_state f;
    capture(m, &f);
    float x[12 * 2], loss = -1, eval;
    test_fill(x, 24, 3, 0, 1);
    OK(ae_evaluate(m, x, NULL, 2, &eval));
    OK(ae_train_step(m, x, NULL, 2, &loss));
    assert_true(loss == eval);
    f.steps++;
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);
}

static void test_freeze_tied_pair(void **state) {
    (void)state;
    /* Freezing the decoder side of a tied pair freezes the shared weight;
     * the encoder's bias still trains. */
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 14);
    OK(ae_model_freeze(m, 3, 3));
    size_t n0, nb0, nb3;
    float *w0 = weights(m, 0, &n0), *b0 = bias_of(m, 0, &nb0), *b3 = bias_of(m, 3, &nb3);
    train(m, 3, 130);
    float *w0b = weights(m, 0, &n0), *b0b = bias_of(m, 0, &nb0), *b3b = bias_of(m, 3, &nb3);
    assert_memory_equal(w0, w0b, n0 * sizeof(float));
    assert_memory_equal(b3, b3b, nb3 * sizeof(float));
    assert_memory_not_equal(b0, b0b, nb0 * sizeof(float));
    free(w0b);
    /* Unfreezing: the shared weight trains again. */
    OK(ae_model_unfreeze(m, 3, 3));
    train(m, 1, 140);
    w0b = weights(m, 0, &n0);
    assert_memory_not_equal(w0, w0b, n0 * sizeof(float));
    /* Untying while frozen: the decoder's new weight is frozen with its layer. */
    OK(ae_model_freeze(m, 3, 3));
    OK(ae_model_untie(m));
    size_t n3;
    float *w3 = weights(m, 3, &n3);
    train(m, 2, 150);
    float *w3b = weights(m, 3, &n3);
    assert_memory_equal(w3, w3b, n3 * sizeof(float));
    free(w0);
    free(w0b);
    free(b0);
    free(b0b);
    free(b3);
    free(b3b);
    free(w3);
    free(w3b);
    ae_model_destroy(m);
}

static void test_freeze_misuse(void **state) {
    (void)state;
    ae_model *m = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 15);
    OK(ae_model_freeze(m, 0, 0));
    full_state f;
    capture(m, &f);
    assert_int_equal(ae_model_freeze(m, 0, 4), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "layer 4 does not exist"));
    assert_int_equal(ae_model_freeze(m, 5, 9), AE_ERR_RANGE);
    assert_int_equal(ae_model_freeze(m, 3, 1), AE_ERR_RANGE);
    assert_int_equal(ae_model_unfreeze(m, 0, 4), AE_ERR_RANGE);
    assert_int_equal(ae_model_freeze(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_unfreeze(NULL, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_is_frozen(NULL, 0), 0);
    assert_int_equal(ae_model_is_frozen(m, 4), 0);
    assert_same_state(m, &f);
    OK(ae_model_freeze(m, 0, 0)); /* again: allowed, nothing changes */
    assert_same_state(m, &f);
    release(&f);
    OK(ae_model_freeze(m, AE_LAST_LAYER, AE_LAST_LAYER));
    assert_int_equal(ae_model_is_frozen(m, 3), 1);
    assert_int_equal(ae_model_is_frozen(m, 2), 0);
    OK(ae_model_unfreeze(m, 0, AE_LAST_LAYER));
    for (size_t l = 0; l < 4; l++) assert_int_equal(ae_model_is_frozen(m, l), 0);
    ae_model_destroy(m);
}

/* ---- copying ---- */

static void test_copy_outer_and_layers(void **state) {
    (void)state;
    ae_model *shallow = make(D3, 2, 1, AE_OPT_ADAM, 0, 0, 16);
    ae_model *deep = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 17);
    train(shallow, 3, 160);
    size_t n, nd;
    float *deep_inner = weights(deep, 1, &nd);
    OK(ae_model_copy_outer(deep, shallow));
    for (int k = 0; k < 2; k++) {
        size_t sl = (size_t)k, dl = k ? 3 : 0, nb, nb2;
        float *a = weights(shallow, sl, &n), *b = weights(deep, dl, &n);
        float *c = bias_of(shallow, sl, &nb), *d = bias_of(deep, dl, &nb2);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_memory_equal(c, d, nb * sizeof(float));
        free(a);
        free(b);
        free(c);
        free(d);
    }
    float *inner = weights(deep, 1, &nd);
    assert_memory_equal(inner, deep_inner, nd * sizeof(float)); /* inner layers untouched */
    free(inner);
    free(deep_inner);

    /* copy_layers from a tied source gives its effective weight. */
    ae_model *tied = make(D3, 2, 1, AE_OPT_ADAM, 1, 0, 18);
    train(tied, 2, 170);
    OK(ae_model_copy_layers(deep, 3, tied, 1, 1));
    float *a = weights(tied, 1, &n), *b = weights(deep, 3, &n);
    assert_memory_equal(a, b, n * sizeof(float));
    free(a);
    free(b);
    OK(ae_model_copy_layers(shallow, 0, deep, 0, 1));
    ae_model_destroy(tied);
    ae_model_destroy(shallow);
    ae_model_destroy(deep);
}

static void test_copy_misuse(void **state) {
    (void)state;
    static const size_t dbad[3] = {12, 6, 12};
    ae_model *bad = make(dbad, 2, 1, AE_OPT_ADAM, 0, 0, 19);
    ae_model *nob = make(D3, 2, 1, AE_OPT_ADAM, 0, 0x2u, 19); /* decoder without bias */
    ae_model *deep = make(D5, 4, 2, AE_OPT_ADAM, 0, 0, 20);
    ae_model *deeper = make((const size_t[7]){12, 8, 6, 4, 6, 8, 12}, 6, 3, AE_OPT_ADAM, 0, 0, 21);
    full_state f;
    capture(deep, &f);
    assert_int_equal(ae_model_copy_outer(deep, bad), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(deep),
                           "layer 0 of the source (dense 12x1x1->6x1x1, 72 weights, 6 biases) "
                           "does not match layer 0 of the destination (dense 12x1x1->8x1x1, 96 "
                           "weights, 8 biases)"));
    assert_int_equal(ae_model_copy_outer(deep, nob), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(deep), "layer 1 of the source (dense 8x1x1->12x1x1, 96 weights, 0 biases)"));
    assert_non_null(strstr(ae_model_last_error(deep), "layer 3 of the destination"));
    assert_int_equal(ae_model_copy_outer(deep, deeper), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(deep), "3 encoder and 3 decoder"));
    assert_int_equal(ae_model_copy_layers(deep, 0, bad, 0, 1), AE_ERR_SHAPE);
    assert_int_equal(ae_model_copy_layers(deep, 3, bad, 1, 2), AE_ERR_RANGE);
    assert_int_equal(ae_model_copy_layers(deep, 4, bad, 0, 1), AE_ERR_RANGE);
    assert_int_equal(ae_model_copy_layers(deep, 0, bad, 0, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_layers(deep, 0, bad, 0, (size_t)-1), AE_ERR_RANGE);
    assert_int_equal(ae_model_copy_layers(deep, 0, deep, 0, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_layers(deep, 0, NULL, 0, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_layers(NULL, 0, bad, 0, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_outer(deep, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_outer(NULL, bad), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_copy_outer(deep, deep), AE_ERR_INVALID_ARG);
    assert_same_state(deep, &f);
    release(&f);
    /* A tied destination layer is refused (either side of the pair). */
    ae_model *good = make(D3, 2, 1, AE_OPT_ADAM, 0, 0, 22);
    OK(ae_model_tie(deep));
    capture(deep, &f);
    assert_int_equal(ae_model_copy_outer(deep, good), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(deep), "untie it first"));
    assert_int_equal(ae_model_copy_layers(deep, 3, good, 1, 1), AE_ERR_STATE);
    assert_same_state(deep, &f);
    release(&f);
    ae_model_destroy(good);
    ae_model_destroy(bad);
    ae_model_destroy(nob);
    ae_model_destroy(deep);
    ae_model_destroy(deeper);
}

/* ---- convolutional models ---- */

/* 1x8x8 -> conv 4 k3 s2 p1 ReLU -> [BatchNorm] -> conv 8 k3 s2 p1 (code 8x2x2)
 * | convT 4 k3 s2 p1 op1 ReLU -> convT 1 k3 s2 p1 op1 sigmoid. */
static ae_model *make_conv(int bn, int64_t seed) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 1, 8, 8));
    OK(ae_config_add_conv2d(c, 4, 3, 2, 1, AE_ACT_RELU));
    if (bn) OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_conv2d(c, 8, 3, 2, 1, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_conv_transpose2d(c, 4, 3, 2, 1, 1, AE_ACT_RELU));
    OK(ae_config_add_conv_transpose2d(c, 1, 3, 2, 1, 1, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_SEED, seed));
    ae_status st = ae_model_create(&m, c);
    if (st) fail_msg("make_conv: %s", ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

static void test_conv_models(void **state) {
    (void)state;
    /* Convolutions cannot be tied (symmetric, but not dense). */
    ae_model *m = make_conv(0, 30);
    full_state f;
    capture(m, &f);
    assert_int_equal(ae_model_tie(m), AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_model_last_error(m), "layer 0 is conv2d"));
    assert_same_state(m, &f);
    release(&f);
    ae_model_destroy(m);

    /* Freezing a convolution and a BatchNorm: their parameters and state
     * stay; the running statistics still move; the rest trains. */
    m = make_conv(1, 31);
    train(m, 1, 300);
    OK(ae_model_freeze(m, 0, 1));
    capture(m, &f);
    float *run0 = malloc(m->nbuffers * sizeof *run0);
    memcpy(run0, m->buffers, m->nbuffers * sizeof *run0);
    train(m, 2, 310);
    for (size_t l = 0; l <= 1; l++) {
        const ae_layer *L = &m->layers[l];
        size_t o = L->w_off, c = L->w_count + L->b_count;
        assert_memory_equal(m->params + o, f.p + o, c * sizeof(float));
        assert_memory_equal(m->state1 + o, f.s1 + o, c * sizeof(float));
        assert_memory_equal(m->state2 + o, f.s2 + o, c * sizeof(float));
    }
    assert_memory_not_equal(m->buffers, run0, m->nbuffers * sizeof *run0);
    const ae_layer *L2 = &m->layers[2];
    assert_memory_not_equal(m->params + L2->w_off, f.p + L2->w_off, L2->w_count * sizeof(float));
    release(&f);
    free(run0);

    /* Copying every layer (weights and running statistics) into another
     * model of the same architecture gives the same function. */
    ae_model *n = make_conv(1, 32);
    float x[2 * 64], a[2 * 64], b[2 * 64];
    test_fill(x, 128, 33, 0, 1);
    OK(ae_model_copy_layers(n, 0, m, 0, 5));
    OK(ae_reconstruct(m, x, 2, a));
    OK(ae_reconstruct(n, x, 2, b));
    assert_memory_equal(a, b, sizeof a);
    /* A conv layer does not match a BatchNorm, nor a model without it. */
    assert_int_equal(ae_model_copy_layers(n, 1, m, 0, 1), AE_ERR_SHAPE);
    ae_model *nobn = make_conv(0, 34);
    assert_int_equal(ae_model_copy_outer(nobn, m), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(nobn), "3 encoder and 2 decoder"));
    assert_int_equal(ae_model_copy_layers(nobn, 0, m, 0, 2), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(nobn), "layer 1 of the source (batchnorm"));
    OK(ae_model_copy_layers(nobn, 2, m, 3, 2)); /* the decoders match */
    ae_model_destroy(nobn);
    ae_model_destroy(n);
    ae_model_destroy(m);
}

/* ---- allocation ---- */

/* The whole greedy sequence under an allocator that fails at index fail_at. */
static ae_status greedy_walk(test_alloc *t) {
    ae_allocator a = test_allocator(t);
    ae_config *c = NULL;
    ae_model *s = NULL, *d = NULL;
    float x[4 * 12], loss;
    test_fill(x, 48, 4, 0, 1);
    ae_status st = ae_config_create(&c, &a);
    if (!st) st = ae_config_set_input_size(c, 12);
    if (!st) st = ae_config_add_dense(c, 8, AE_ACT_RELU);
    if (!st) st = ae_config_mirror_decoder(c, AE_ACT_SIGMOID);
    if (!st) st = ae_config_tie(c);
    if (!st) st = ae_model_create(&s, c);
    if (!st) st = ae_train_step(s, x, NULL, 4, &loss);
    ae_config_destroy(c);
    c = NULL;
    if (!st) st = ae_config_create(&c, &a);
    if (!st) st = ae_config_set_input_size(c, 12);
    if (!st) st = ae_config_add_dense(c, 8, AE_ACT_RELU);
    if (!st) st = ae_config_add_dense(c, 4, AE_ACT_IDENTITY);
    if (!st) st = ae_config_mirror_decoder(c, AE_ACT_SIGMOID);
    if (!st) st = ae_model_create(&d, c);
    if (!st) {
        long before = t->count;
        OK(ae_model_copy_outer(d, s));
        OK(ae_model_freeze(d, 0, 0));
        OK(ae_model_freeze(d, 3, 3));
        OK(ae_model_tie_layers(d, 1, 1));
        assert_int_equal(t->count, before); /* none of these allocates */
        st = ae_train_step(d, x, NULL, 4, &loss);
    }
    if (!st) {
        long before = t->count;
        OK(ae_model_unfreeze(d, 0, AE_LAST_LAYER));
        OK(ae_model_untie(d));
        assert_int_equal(t->count, before);
        st = ae_train_step(d, x, NULL, 4, &loss);
        assert_int_equal(t->count, before); /* the workspace was already there */
    }
    ae_model_destroy(s);
    ae_model_destroy(d);
    ae_config_destroy(c);
    return st;
}

/* Tying, untying and freezing change offsets, flags and the block table,
 * never the workspace: the activations, gradients and scratch of a step
 * have the same sizes in every state. So after the first step of a batch
 * size, no step allocates, whatever state changes come between steps (no
 * re-plan either), and the state changes themselves allocate nothing. */
static void test_no_allocation_across_state_changes(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = make_with(&a, D5, 4, 2, AE_OPT_ADAMW, 1, 0, 29);
    assert_non_null(m);
    float x[8 * 12], out[8 * 12], code[8 * 4], loss;
    test_fill(x, 8 * 12, 29, 0.05f, 0.95f);
    OK(ae_train_step(m, x, NULL, 8, &loss));
    long after_first = t.count;
    /* Tied, then each change between steps; smaller batches in between. */
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_train_step(m, x, NULL, 3, &loss));
    OK(ae_model_freeze(m, 0, 0)); /* the shared weight of pair 0 frozen */
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_freeze(m, 0, 1)); /* everything below the decoder: no backward there */
    OK(ae_train_step(m, x, NULL, 5, &loss));
    OK(ae_model_untie_layers(m, 1, 1));
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_untie(m));
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_unfreeze(m, 0, AE_LAST_LAYER));
    OK(ae_train_step(m, x, NULL, 1, &loss));
    OK(ae_model_tie_layers(m, 1, 1));
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_tie_layers(m, 0, 0));
    OK(ae_model_freeze(m, 3, 3)); /* the decoder side of a tied pair */
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_freeze(m, 0, AE_LAST_LAYER)); /* nothing trains */
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_evaluate(m, x, NULL, 8, &loss));
    OK(ae_encode(m, x, 8, code));
    OK(ae_decode(m, code, 8, out));
    OK(ae_reconstruct(m, x, 2, out));
    assert_int_equal(t.count, after_first);
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

static void test_failing_allocator(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    assert_int_equal(greedy_walk(&t), AE_OK);
    assert_int_equal(t.live, 0);
    long total = t.count;
    for (long k = 0; k < total; k++) {
        test_alloc f = {0, 0, k};
        assert_int_equal(greedy_walk(&f), AE_ERR_OUT_OF_MEMORY);
        assert_int_equal(f.live, 0);
    }
}

static void test_determinism(void **state) {
    (void)state;
    ae_model *a = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 23), *b = make(D5, 4, 2, AE_OPT_ADAM, 1, 0, 23);
    ae_model *ms[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        train(ms[i], 2, 200);
        OK(ae_model_freeze(ms[i], 0, 0));
        train(ms[i], 2, 210);
        OK(ae_model_untie(ms[i]));
        OK(ae_model_unfreeze(ms[i], 0, 0));
        train(ms[i], 2, 220);
    }
    size_t na, nb;
    float *pa = snapshot(a, &na), *pb = snapshot(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
    free(pa);
    free(pb);
    ae_model_destroy(a);
    ae_model_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tie_at_creation),
        cmocka_unit_test(test_tie_later_and_untie),
        cmocka_unit_test(test_untie_after_tied_creation_keeps_layout),
        cmocka_unit_test(test_tie_layers_and_no_bias),
        cmocka_unit_test(test_tie_misuse_changes_nothing),
        cmocka_unit_test(test_not_symmetric_refused),
        cmocka_unit_test(test_pairs_skip_layers_without_weights),
        cmocka_unit_test(test_range_checked_first),
        cmocka_unit_test(test_gradients_fd),
        cmocka_unit_test(test_freeze_keeps_params_and_state),
        cmocka_unit_test(test_freeze_same_gradient_elsewhere),
        cmocka_unit_test(test_freeze_tied_pair),
        cmocka_unit_test(test_freeze_misuse),
        cmocka_unit_test(test_copy_outer_and_layers),
        cmocka_unit_test(test_copy_misuse),
        cmocka_unit_test(test_conv_models),
        cmocka_unit_test(test_no_allocation_across_state_changes),
        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
