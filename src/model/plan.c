/* Layer plans (ae_layer_ops.plan_make): the backend's own primitives of a
 * layer, made once per batch size, kept for the AE_PLAN_SLOTS batch sizes
 * used last (a training batch, a last partial batch, evaluation batches),
 * so that alternating between them makes nothing anew. A slot whose plan
 * is NULL records that the layer runs without one at that batch size.
 *
 * Packed parameters (ae_layer_ops.pack): one buffer per layer, for every
 * batch size, allocated with the model; it holds the parameters of the
 * generation packed_gen[i], and m->params_gen moves on at every write of
 * the parameters, so inference between two writes packs once. */
#include "model.h"

static ae_status packs_setup(ae_model *m, ae_errbuf *err) {
    size_t any = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        any |= L->ops->pack_floats ? L->ops->pack_floats(L, m->backend) : 0;
    }
    if (!any) return AE_OK;
    m->packed = ae_calloc(&m->alloc, m->nlayers, sizeof *m->packed);
    m->packed_gen = ae_calloc(&m->alloc, m->nlayers, sizeof *m->packed_gen);
    int ok = m->packed && m->packed_gen;
    for (size_t i = 0; ok && i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        size_t n = L->ops->pack_floats ? L->ops->pack_floats(L, m->backend) : 0;
        if (n && !(m->packed[i] = ae_alloc(&m->alloc, n * sizeof(float)))) ok = 0;
    }
    return ok ? AE_OK : ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
}

float *ae_plans_packed(const ae_model *m, size_t i, int *stale) {
    if (!m->packed || !m->packed[i]) return NULL;
    *stale = m->packed_gen[i] != m->params_gen;
    return m->packed[i];
}

ae_status ae_plans_setup(ae_model *m, ae_errbuf *err) {
    ae_status st = packs_setup(m, err);
    if (st || m->backend != AE_BACKEND_ONEDNN) return st;
    int any = 0;
    for (size_t i = 0; i < m->nlayers; i++) any |= m->layers[i].ops->plan_make != NULL;
    if (!any) return AE_OK;
    m->plans = ae_calloc(&m->alloc, m->nlayers * AE_PLAN_SLOTS, sizeof *m->plans);
    if (!m->plans) return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
    return AE_OK;
}

void ae_plans_free(ae_model *m) {
    for (size_t i = 0; m->packed && i < m->nlayers; i++) ae_free(&m->alloc, m->packed[i]);
    ae_free(&m->alloc, m->packed);
    ae_free(&m->alloc, m->packed_gen);
    m->packed = NULL;
    m->packed_gen = NULL;
    if (!m->plans) return;
    for (size_t i = 0; i < m->nlayers * AE_PLAN_SLOTS; i++)
        if (m->plans[i].plan) m->layers[i / AE_PLAN_SLOTS].ops->plan_free(m->plans[i].plan, &m->alloc);
    ae_free(&m->alloc, m->plans);
    m->plans = NULL;
}

static ae_plan_slot *find(const ae_model *m, size_t i, size_t batch) {
    ae_plan_slot *s = m->plans + i * AE_PLAN_SLOTS;
    for (size_t j = 0; j < AE_PLAN_SLOTS; j++)
        if (s[j].batch == batch) return &s[j];
    return NULL;
}

ae_status ae_plans_for(ae_model *m, size_t batch) {
    if (!m->plans) return AE_OK;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (!L->ops->plan_make) continue;
        ae_plan_slot *s = find(m, i, batch);
        if (!s) {
            /* An empty slot, else the one used longest ago. */
            ae_plan_slot *all = m->plans + i * AE_PLAN_SLOTS;
            s = &all[0];
            for (size_t j = 1; j < AE_PLAN_SLOTS && s->batch; j++)
                if (!all[j].batch || all[j].used < s->used) s = &all[j];
            if (s->plan) L->ops->plan_free(s->plan, &m->alloc);
            *s = (ae_plan_slot){0};
            void *plan = NULL;
            ae_status st = L->ops->plan_make(L, m->backend, batch, &m->alloc, &plan, &m->err);
            if (st) return st;
            *s = (ae_plan_slot){batch, plan, 0};
        }
        s->used = ++m->plan_clock;
    }
    return AE_OK;
}

void *ae_model_layer_plan(const ae_model *m, size_t i, size_t batch) {
    if (!m->plans || !m->layers[i].ops->plan_make) return NULL;
    const ae_plan_slot *s = find(m, i, batch);
    return s ? s->plan : NULL;
}

size_t ae_plans_scratch(const ae_model *m, size_t i, size_t batch) {
    const ae_layer *L = &m->layers[i];
    int gemm = !m->plans || !L->ops->plan_make;
    size_t n = 0;
    for (size_t j = 0; !gemm && j < AE_PLAN_SLOTS; j++) {
        const ae_plan_slot *s = &m->plans[i * AE_PLAN_SLOTS + j];
        if (!s->batch) continue;
        if (!s->plan) gemm = 1;
        else if (L->ops->plan_floats(s->plan) > n) n = L->ops->plan_floats(s->plan);
    }
    if (gemm || !n) {
        size_t g = L->ops->scratch_floats(L, batch);
        if (g > n) n = g;
    }
    return n;
}
