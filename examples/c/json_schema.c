/* JSON mode: asks the model for a JSON object that must satisfy a JSON Schema.
 *   cc json_schema.c $(pkg-config --cflags --libs picolm) -o json_schema
 * Usage: ./json_schema MODEL.gguf */
#include <picolm.h>
#include <stdio.h>
#include <string.h>

static bool print_piece(const char *utf8, size_t len, void *user_data) {
    (void)user_data;
    fwrite(utf8, 1, len, stdout);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    picolm_model *model = NULL;
    if (picolm_model_load(argv[1], NULL, &model) != PICOLM_OK) {
        fprintf(stderr, "load failed: %s\n", picolm_last_error_message());
        return 1;
    }
    picolm_session *session = NULL;
    int rc = 1;
    if (picolm_session_new(model, NULL, &session) != PICOLM_OK) goto out;

    picolm_chat_message msg = { .role = "user", .content = "Give me the reading of a temperature sensor in the kitchen as JSON." };
    char prompt[2048];
    size_t need = 0;
    if (picolm_chat_apply_template(model, &msg, 1, true, prompt, sizeof prompt, &need) != PICOLM_OK) goto out;

    picolm_generate_params gp;
    picolm_generate_params_default(&gp);
    gp.max_tokens = 96;
    gp.json_schema = "{\"type\":\"object\",\"properties\":{"
                     "\"room\":{\"type\":\"string\",\"maxLength\":20},"
                     "\"celsius\":{\"type\":\"number\"},"
                     "\"ok\":{\"type\":\"boolean\"}},"
                     "\"required\":[\"room\",\"celsius\",\"ok\"]}";
    picolm_generation_info info;
    if (picolm_session_generate(session, prompt, strlen(prompt), &gp, print_piece, NULL, &info) != PICOLM_OK) goto out;
    printf("\n(stop: %s)\n", picolm_stop_reason_name(info.stop_reason));
    rc = info.stop_reason == PICOLM_STOP_GRAMMAR_COMPLETE ? 0 : 1;
out:
    if (rc) fprintf(stderr, "error: %s\n", picolm_last_error_message());
    picolm_session_free(session);
    picolm_model_free(model);
    return rc;
}
