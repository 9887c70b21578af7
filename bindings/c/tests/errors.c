/* The C API's error path: each bad call returns its status and a message, and never crashes.
 * Usage: errors MODEL.gguf. Prints one line per case: "NAME status=N msg=MESSAGE". */
#include "edgelm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void report(const char *name, edgelm_status st) {
    printf("%s status=%d msg=%s\n", name, (int)st, st == EDGELM_OK ? "" : edgelm_last_error());
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    edgelm_model *model = (edgelm_model *)1;

    const char junk[] = "hello world, not a model";
    report("junk", edgelm_model_load((const uint8_t *)junk, sizeof junk, &model));
    printf("junk_model_null=%d\n", model == NULL);
    report("null_data", edgelm_model_load(NULL, 10, &model));

    /* A truncated copy of the real file. */
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(len);
    if (fread(bytes, 1, len, f) != len) return 1;
    fclose(f);
    report("truncated", edgelm_model_load(bytes, 1000, &model));

    report("load", edgelm_model_load(bytes, len, &model));
    bool checked = true;
    report("verify", edgelm_model_verify(model, &checked));
    printf("verify_checked=%d\n", checked);
    edgelm_memory_plan plan;
    report("plan_zero_ctx", edgelm_plan(model, 0, EDGELM_KV_F16, &plan));
    report("plan_bad_kv", edgelm_plan(model, 64, 7, &plan));
    report("plan", edgelm_plan(model, 64, EDGELM_KV_F16, &plan));

    static unsigned char small[1024];
    edgelm_session *s = NULL;
    report("small_buffer", edgelm_session_new(model, 64, EDGELM_KV_F16, small, sizeof small, &s));
    report("session", edgelm_session_new(model, 8, EDGELM_KV_F16, NULL, 0, &s));
    uint32_t tok = 0;
    report("next_before_feed", edgelm_next_token(s, &tok));
    uint32_t bad = 1u << 30;
    report("bad_token", edgelm_feed(s, &bad, 1));
    const char not_utf8[] = "\xff\xfe";
    report("not_utf8", edgelm_feed_text(s, not_utf8, 2, true, NULL));
    const char *long_text = "one two three four five six seven eight nine ten";
    report("too_long", edgelm_feed_text(s, long_text, strlen(long_text), true, NULL));
    char tiny[2];
    size_t n = 0;
    report("truncated_piece", edgelm_token_to_piece(model, 7042, false, tiny, sizeof tiny, &n));
    printf("piece_needed=%zu\n", n);
    report("null_session", edgelm_feed(NULL, &tok, 1));
    edgelm_session_free(s);
    edgelm_model_free(model);
    free(bytes);
    return 0;
}
