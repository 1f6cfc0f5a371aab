/* Streams a completion from a model: cc stream.c $(pkg-config --cflags --libs picolm) -o stream
 * Usage: ./stream MODEL.gguf ["prompt"] */
#include <picolm.h>
#include <stdio.h>
#include <string.h>

static bool print_piece(const char *utf8, size_t len, void *user_data) {
    (void)user_data;
    fwrite(utf8, 1, len, stdout);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [prompt]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n";
    picolm_model *model = NULL;
    picolm_result r = picolm_model_load(argv[1], NULL, &model);
    if (r != PICOLM_OK) {
        fprintf(stderr, "load failed: %s\n", picolm_last_error_message());
        return 1;
    }
    picolm_session *session = NULL;
    if (picolm_session_new(model, NULL, &session) != PICOLM_OK) {
        fprintf(stderr, "session failed: %s\n", picolm_last_error_message());
        picolm_model_free(model);
        return 1;
    }
    picolm_generate_params params;
    picolm_generate_params_default(&params);
    params.max_tokens = 64;
    r = picolm_session_generate(session, prompt, strlen(prompt), &params, print_piece, NULL, NULL);
    putchar('\n');
    if (r != PICOLM_OK) fprintf(stderr, "generation failed: %s\n", picolm_last_error_message());
    picolm_session_free(session);
    picolm_model_free(model);
    return r == PICOLM_OK ? 0 : 1;
}
