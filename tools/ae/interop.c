/* The ONNX commands: export (a model file to ONNX) and import (ONNX to a
 * model file). docs/interop.md describes the mapping. */
#include <getopt.h>
#include <string.h>

#include "tool.h"

static const char EXPORT_HELP[] =
    "Usage: ae export -m MODEL -o FILE.onnx [--part encoder|decoder|full]\n"
    "Writes a model as ONNX (opset 17, float32) for ONNX Runtime and other\n"
    "runtimes, in inference mode. The graph takes the data prepared as for\n"
    "training (the scale and standardisation are in its metadata_props).\n\n"
    "  -m, --model FILE   the model file\n"
    "  -o, --output FILE  the .onnx file to write\n"
    "      --part P       full (input -> reconstruction, and the code; default),\n"
    "                     encoder (input -> code) or decoder (code -> reconstruction)\n"
    "  -h, --help         this help\n";

static const char IMPORT_HELP[] =
    "Usage: ae import FILE.onnx -o MODEL [--code TENSOR]\n"
    "Reads an ONNX autoencoder (as torch.onnx.export writes a sequential\n"
    "model, or ae export writes) and writes it as a model file, with its\n"
    "weights and BatchNorm statistics, for encode, decode, eval and info.\n"
    "A node libae cannot represent is refused with its name and op type.\n\n"
    "  -o, --output FILE  the model file to write\n"
    "      --code TENSOR  the graph tensor that is the code (default: the graph's\n"
    "                     second output, else the narrowest tensor)\n"
    "  -h, --help         this help\n";

enum { OPT_PART = 256, OPT_CODE };

static const struct option OPTS[] = {
    {"model", required_argument, NULL, 'm'},   {"output", required_argument, NULL, 'o'},
    {"part", required_argument, NULL, OPT_PART}, {"code", required_argument, NULL, OPT_CODE},
    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
};

/* Options of both commands; `allowed` lists this one's. 1: --help shown. */
static int parse(int argc, char **argv, const char *help, const char *allowed, const char **model,
                 const char **output, const char **part, const char **code) {
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:o:h", OPTS, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 1;
        }
        if (c == '?' || c == ':') return getopt_error(argv, c);
        const char *word = optind >= 2 && argv[optind - 1] == optarg ? argv[optind - 2] : argv[optind - 1];
        if (!strchr(allowed, c < 256 ? c : c == OPT_PART ? 'P' : 'C'))
            return usage_error("option '%s' is not for this command", word);
        if (c == 'm') *model = optarg;
        if (c == 'o') *output = optarg;
        if (c == OPT_PART) *part = optarg;
        if (c == OPT_CODE) *code = optarg;
    }
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *part_s = "full", *code = NULL;
    int rc = parse(argc, argv, EXPORT_HELP, "moP", &model, &output, &part_s, &code);
    if (rc) return rc == 1 ? 0 : rc;
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!model) return usage_error("no model file: give -m MODEL");
    if (!output) return usage_error("no output file: give -o FILE.onnx");
    static const char *const parts[] = {"full", "encoder", "decoder", NULL};
    int part;
    if (parse_choice("--part", part_s, parts, &part)) return EXIT_USAGE;
    if (!file_readable(model)) return fail(EXIT_RUN, "cannot open %s", model);
    const named_file outs[1] = {{"-o", output}}, ins[1] = {{"-m", model}};
    if ((rc = check_outputs(outs, 1, ins, 1)) != 0) return rc;
    prep p;
    ae_model *m = model_load(model, &p);
    if (!m) return EXIT_RUN;
    prep_free(&p);
    ae_status st = ae_model_export_onnx(m, output, (ae_onnx_part)part);
    if (st != AE_OK) rc = fail(EXIT_RUN, "%s", ae_model_last_error(m));
    else
        printf("wrote %s (%s of %s, ONNX opset %d)\n", output, parts[part], model, AE_ONNX_OPSET);
    ae_model_destroy(m);
    return rc;
}

int cmd_import(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *part = NULL, *code = NULL;
    int rc = parse(argc, argv, IMPORT_HELP, "oC", &model, &output, &part, &code);
    if (rc) return rc == 1 ? 0 : rc;
    const char *input = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!input) return usage_error("no ONNX file: give FILE.onnx");
    if (!output) return usage_error("no output file: give -o MODEL");
    if (!file_readable(input)) return fail(EXIT_RUN, "cannot open %s", input);
    const named_file outs[1] = {{"-o", output}}, ins[1] = {{"FILE.onnx", input}};
    if ((rc = check_outputs(outs, 1, ins, 1)) != 0) return rc;
    ae_onnx_import_options o;
    ae_onnx_import_options_init(&o);
    o.code = code;
    char err[512];
    ae_model *m = NULL;
    if (ae_model_import_onnx(&m, input, &o, err, sizeof err) != AE_OK) return fail(EXIT_RUN, "%s", err);
    /* The sample shape is the model's own (ae_model_sample_shape): no
       ae.data.shape metadata, which older tools wrote and model_load still reads. */
    if (ae_model_save(m, output, AE_SAVE_MODEL) != AE_OK)
        rc = fail(EXIT_RUN, "%s", ae_model_last_error(m));
    else
        printf("wrote %s: %zu layers, input %zu, code %zu, %zu parameters\n", output,
               ae_model_layer_count(m), ae_model_input_size(m), ae_model_code_size(m),
               ae_model_param_count(m));
    ae_model_destroy(m);
    return rc;
}
