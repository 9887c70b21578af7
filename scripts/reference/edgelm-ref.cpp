// Small driver around libllama that prints what the reference JSON files need: per-position
// log-probabilities under teacher forcing, greedy decoding with top-k, tokenization, metadata.
// Built by scripts/reference/build-llama-cpp; driven by scripts/reference/smollm2_reference.py.
//
// Usage:
//   edgelm-ref info     MODEL                       metadata as key<TAB>value lines
//   edgelm-ref tokenize MODEL                       stdin: one hex-encoded UTF-8 string per line;
//                                                   stdout: the ids (add_special=true, parse_special=true)
//   edgelm-ref pieces   MODEL                       stdin: ids; stdout: hex of each token's piece
//   edgelm-ref logits   MODEL [OPTS]                stdin: ids, evaluated as one sequence in one batch;
//                                                   stdout per position: pos argmax lp_next id:lp...
//   edgelm-ref greedy   MODEL [OPTS] -n N           stdin: prompt ids; stdout per step: chosen id:lp...
// OPTS: -t THREADS (2)  -k TOPK (5)  --kv f16|f32|q8_0 (f16)  --fa auto|on|off (auto)
//       --no-extra-bufts   keep weights in plain ggml layout (no AMX / repacked copies)
//       --ubatch 1         logits: decode one token per llama_decode (the generation path) instead
//                          of the whole sequence in one batch (the prompt path)
//       --lora FILE        apply a LoRA adapter (repeatable); --lora-scale S scales the one before (1)
// Log-probabilities are log-softmax of the raw logits, computed in double.
#include "llama.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Opts {
    int threads = 2;
    int topk = 5;
    int n_gen = 16;
    ggml_type kv = GGML_TYPE_F16;
    llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
    bool extra_bufts = true;
    int ubatch = 0; // 0 = whole sequence in one batch
    std::vector<std::pair<std::string, float>> loras;
};

[[noreturn]] void die(const std::string & msg) {
    fprintf(stderr, "edgelm-ref: %s\n", msg.c_str());
    exit(1);
}

Opts parse_opts(int argc, char ** argv, int first) {
    Opts o;
    for (int i = first; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) die("missing value after " + a);
            return argv[++i];
        };
        if (a == "-t") o.threads = std::stoi(next());
        else if (a == "-k") o.topk = std::stoi(next());
        else if (a == "-n") o.n_gen = std::stoi(next());
        else if (a == "--kv") {
            std::string v = next();
            if (v == "f16") o.kv = GGML_TYPE_F16;
            else if (v == "f32") o.kv = GGML_TYPE_F32;
            else if (v == "q8_0") o.kv = GGML_TYPE_Q8_0; // a quantized V cache needs --fa on
            else die("--kv must be f16, f32 or q8_0");
        } else if (a == "--fa") {
            std::string v = next();
            if (v == "auto") o.fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
            else if (v == "on") o.fa = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (v == "off") o.fa = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else die("--fa must be auto, on or off");
        } else if (a == "--no-extra-bufts") o.extra_bufts = false;
        else if (a == "--ubatch") o.ubatch = std::stoi(next());
        else if (a == "--lora") o.loras.push_back({next(), 1.0f});
        else if (a == "--lora-scale") {
            if (o.loras.empty()) die("--lora-scale must follow --lora");
            o.loras.back().second = std::stof(next());
        }
        else die("unknown option " + a);
    }
    return o;
}

std::vector<llama_token> read_ids() {
    std::vector<llama_token> ids;
    long v;
    while (std::cin >> v) ids.push_back((llama_token) v);
    return ids;
}

std::string hex(const std::string & s) {
    static const char * d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) { out += d[c >> 4]; out += d[c & 15]; }
    return out;
}

std::string unhex(const std::string & h) {
    if (h.size() % 2) die("odd-length hex line");
    std::string out;
    for (size_t i = 0; i < h.size(); i += 2) out += (char) std::stoi(h.substr(i, 2), nullptr, 16);
    return out;
}

std::string meta(const llama_model * m, const char * key) {
    std::vector<char> buf(1 << 16);
    int n = llama_model_meta_val_str(m, key, buf.data(), buf.size());
    return n < 0 ? std::string("<absent>") : std::string(buf.data());
}

std::string piece(const llama_vocab * v, llama_token t) {
    std::vector<char> buf(256);
    int n = llama_token_to_piece(v, t, buf.data(), buf.size(), 0, true);
    if (n < 0) {
        buf.resize(-n);
        n = llama_token_to_piece(v, t, buf.data(), buf.size(), 0, true);
    }
    return std::string(buf.data(), n);
}

// One row of logits -> log-softmax (double), argmax, top-k.
struct Row {
    std::vector<double> lp;
    std::vector<int> top;
};

Row log_softmax(const float * logits, int n_vocab, int k) {
    Row r;
    r.lp.resize(n_vocab);
    double mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++) mx = std::max(mx, (double) logits[i]);
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += std::exp((double) logits[i] - mx);
    double lse = mx + std::log(sum);
    for (int i = 0; i < n_vocab; i++) r.lp[i] = (double) logits[i] - lse;
    std::vector<int> idx(n_vocab);
    for (int i = 0; i < n_vocab; i++) idx[i] = i;
    // Ties broken by lower id, like an argmax that keeps the first maximum.
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    r.top.assign(idx.begin(), idx.begin() + k);
    return r;
}

llama_context * make_ctx(llama_model * model, const Opts & o, int n_ctx, int n_batch) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.type_k = o.kv;
    cp.type_v = o.kv;
    cp.flash_attn_type = o.fa;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) die("llama_init_from_model failed");
    if (!o.loras.empty()) {
        std::vector<llama_adapter_lora *> adapters;
        std::vector<float> scales;
        for (const auto & l : o.loras) {
            llama_adapter_lora * a = llama_adapter_lora_init(model, l.first.c_str());
            if (!a) die("cannot load LoRA adapter " + l.first);
            adapters.push_back(a);
            scales.push_back(l.second);
        }
        if (llama_set_adapters_lora(ctx, adapters.data(), adapters.size(), scales.data()) != 0)
            die("llama_set_adapters_lora failed");
    }
    return ctx;
}

void print_top(const Row & r, int k) {
    for (int j = 0; j < k; j++) printf(" %d:%.9g", r.top[j], r.lp[r.top[j]]);
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 3) die("usage: edgelm-ref info|tokenize|pieces|logits|greedy MODEL [OPTS]");
    std::string mode = argv[1];
    Opts o = parse_opts(argc, argv, 3);

    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = o.extra_bufts;
    llama_model * model = llama_model_load_from_file(argv[2], mp);
    if (!model) die(std::string("cannot load ") + argv[2]);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    if (mode == "info") {
        const char * tmpl = llama_model_chat_template(model, nullptr);
        printf("n_vocab\t%d\n", n_vocab);
        printf("n_ctx_train\t%d\n", llama_model_n_ctx_train(model));
        printf("add_bos\t%d\n", (int) llama_vocab_get_add_bos(vocab));
        printf("add_eos\t%d\n", (int) llama_vocab_get_add_eos(vocab));
        printf("bos\t%d\n", llama_vocab_bos(vocab));
        printf("eos\t%d\n", llama_vocab_eos(vocab));
        printf("eot\t%d\n", llama_vocab_eot(vocab));
        printf("rope_type\t%d\n", (int) llama_model_rope_type(model));
        printf("rope_freq_base\t%s\n", meta(model, "llama.rope.freq_base").c_str());
        printf("tokenizer.ggml.model\t%s\n", meta(model, "tokenizer.ggml.model").c_str());
        printf("tokenizer.ggml.pre\t%s\n", meta(model, "tokenizer.ggml.pre").c_str());
        printf("tokenizer.ggml.add_bos_token\t%s\n", meta(model, "tokenizer.ggml.add_bos_token").c_str());
        printf("tokenizer.ggml.add_space_prefix\t%s\n", meta(model, "tokenizer.ggml.add_space_prefix").c_str());
        printf("chat_template_hex\t%s\n", tmpl ? hex(tmpl).c_str() : "");
        printf("system_info\t%s\n", llama_print_system_info());
        return 0;
    }

    if (mode == "tokenize") {
        std::string line;
        while (std::getline(std::cin, line)) {
            std::string text = unhex(line);
            int n = -llama_tokenize(vocab, text.data(), text.size(), nullptr, 0, true, true);
            std::vector<llama_token> ids(std::max(n, 0));
            int got = llama_tokenize(vocab, text.data(), text.size(), ids.data(), ids.size(), true, true);
            if (got < 0) die("tokenize failed");
            for (int i = 0; i < got; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        return 0;
    }

    if (mode == "pieces") {
        for (llama_token t : read_ids()) printf("%s\n", hex(piece(vocab, t)).c_str());
        return 0;
    }

    if (mode == "logits") {
        std::vector<llama_token> ids = read_ids();
        const int n = ids.size();
        if (n == 0) die("no tokens on stdin");
        const int step = o.ubatch > 0 ? o.ubatch : n;
        llama_context * ctx = make_ctx(model, o, n, step);
        llama_batch batch = llama_batch_init(step, 0, 1);
        for (int start = 0; start < n; start += step) {
            const int m = std::min(step, n - start);
            for (int i = 0; i < m; i++) {
                batch.token[i] = ids[start + i];
                batch.pos[i] = start + i;
                batch.n_seq_id[i] = 1;
                batch.seq_id[i][0] = 0;
                batch.logits[i] = 1;
            }
            batch.n_tokens = m;
            if (llama_decode(ctx, batch) != 0) die("llama_decode failed");
            for (int i = 0; i < m; i++) {
                const int pos = start + i;
                Row r = log_softmax(llama_get_logits_ith(ctx, i), n_vocab, o.topk);
                double lp_next = pos + 1 < n ? r.lp[ids[pos + 1]] : NAN;
                printf("%d %d %.9g", pos, r.top[0], lp_next);
                print_top(r, o.topk);
                printf("\n");
            }
        }
        llama_batch_free(batch);
        llama_free(ctx);
        return 0;
    }

    if (mode == "greedy") {
        std::vector<llama_token> ids = read_ids();
        const int n = ids.size();
        if (n == 0) die("no tokens on stdin");
        llama_context * ctx = make_ctx(model, o, n + o.n_gen, std::max(n, 1));
        llama_batch batch = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            batch.token[i] = ids[i];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = i == n - 1;
        }
        batch.n_tokens = n;
        if (llama_decode(ctx, batch) != 0) die("llama_decode failed");
        int pos = n;
        for (int step = 0; step < o.n_gen; step++) {
            Row r = log_softmax(llama_get_logits_ith(ctx, -1), n_vocab, o.topk);
            llama_token t = r.top[0];
            printf("%d", t);
            print_top(r, o.topk);
            printf("\n");
            fflush(stdout);
            if (llama_vocab_is_eog(vocab, t)) break;
            batch.token[0] = t;
            batch.pos[0] = pos++;
            batch.n_seq_id[0] = 1;
            batch.seq_id[0][0] = 0;
            batch.logits[0] = 1;
            batch.n_tokens = 1;
            if (llama_decode(ctx, batch) != 0) die("llama_decode failed");
        }
        llama_batch_free(batch);
        llama_free(ctx);
        return 0;
    }

    die("unknown mode " + mode);
}
