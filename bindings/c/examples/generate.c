/* Generate text with edgelm from C: the model file is read into a buffer the model borrows
 * (zero copy), the session lives in a caller buffer sized by edgelm_plan.
 *
 *   cc -O2 -I bindings/c/include bindings/c/examples/generate.c target/release/libedgelm_c.a \
 *      -lpthread -ldl -lm -o generate
 *   ./generate MODEL.gguf "The capital of France is" [N_TOKENS [TEMP SEED]]
 *
 * Prints the generated text on stdout; the plan and the token ids on stderr. */
#include "edgelm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, edgelm_status st) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)st, edgelm_last_error());
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_TOKENS [TEMP SEED]]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    int n_predict = argc > 3 ? atoi(argv[3]) : 32;
    size_t len = 0;
    unsigned char *bytes = read_file(argv[1], &len);
    if (!bytes) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }

    edgelm_model *model = NULL;
    edgelm_status st = edgelm_model_load(bytes, len, &model);
    if (st != EDGELM_OK) return fail("edgelm_model_load", st);

    /* The exact memory of a 128-token context, known before anything runs. */
    const uint32_t n_ctx = 128;
    edgelm_memory_plan plan;
    st = edgelm_plan(model, n_ctx, EDGELM_KV_F16, &plan);
    if (st != EDGELM_OK) return fail("edgelm_plan", st);
    fprintf(stderr, "plan: %zu bytes (kv %zu, scratch %zu, sampler %zu)\n", plan.total_bytes,
            plan.kv_bytes, plan.scratch_bytes, plan.sampler_bytes);
    void *mem = malloc(plan.total_bytes); /* or a static buffer, or a linker section */
    edgelm_session *session = NULL;
    st = edgelm_session_new(model, n_ctx, EDGELM_KV_F16, mem, plan.total_bytes, &session);
    if (st != EDGELM_OK) return fail("edgelm_session_new", st);

    if (argc > 5) {
        edgelm_sampler_params sp = edgelm_sampler_defaults();
        sp.temp = (float)atof(argv[4]);
        sp.seed = strtoull(argv[5], NULL, 10);
        st = edgelm_session_set_sampler(session, &sp);
        if (st != EDGELM_OK) return fail("edgelm_session_set_sampler", st);
    }

    size_t n_prompt = 0;
    st = edgelm_feed_text(session, prompt, strlen(prompt), true, &n_prompt);
    if (st != EDGELM_OK) return fail("edgelm_feed_text", st);

    fprintf(stderr, "tokens:");
    char piece[256];
    for (int i = 0; i < n_predict; i++) {
        uint32_t tok;
        st = edgelm_next_token(session, &tok);
        if (st == EDGELM_ERR_CONTEXT_FULL) break;
        if (st != EDGELM_OK) return fail("edgelm_next_token", st);
        if (edgelm_token_is_eog(model, tok)) break;
        fprintf(stderr, " %u", tok);
        size_t n = 0;
        st = edgelm_token_to_piece(model, tok, false, piece, sizeof piece, &n);
        if (st != EDGELM_OK) return fail("edgelm_token_to_piece", st);
        fwrite(piece, 1, n, stdout); /* pieces may split a UTF-8 character; bytes join up */
        fflush(stdout);
    }
    fprintf(stderr, "\n");

    edgelm_session_free(session);
    free(mem);
    edgelm_model_free(model);
    free(bytes);
    return 0;
}
