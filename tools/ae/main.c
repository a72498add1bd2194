/* ae: train and use autoencoders from the command line (see ae(1)). */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

static const char MAIN_HELP[] =
    "Usage: ae COMMAND [OPTIONS]\n"
    "       ae COMMAND --help\n"
    "Trains autoencoders with libae and uses them.\n"
    "\n"
    "Commands:\n"
    "  train        train a model on IDX, .npy or CSV data (Fashion-MNIST by default)\n"
    "               and write it to a model file\n"
    "  encode       write the codes of a data file as .npy\n"
    "  decode       write the decoder's outputs for a file of codes as .npy\n"
    "  reconstruct  write the reconstructions of a data file as .npy (and a picture)\n"
    "  eval         print the metrics of a model on a dataset\n"
    "  info         print a model file's architecture, settings and training history\n"
    "  sample       draw samples from a variational autoencoder (.npy and a picture)\n"
    "  export       write a model (or its encoder or decoder) as ONNX\n"
    "  import       read an ONNX autoencoder (e.g. from PyTorch) into a model file\n"
    "\n"
    "Options:\n"
    "  -h, --help     this help\n"
    "  -V, --version  the version of ae and libae\n"
    "\n"
    "Example:\n"
    "  ae train --epochs 5 -o fmnist.aem --recon-png recon.png\n"
    "  ae eval -m fmnist.aem -d " FMNIST_DIR "/t10k-images-idx3-ubyte.gz \\\n"
    "          --labels " FMNIST_DIR "/t10k-labels-idx1-ubyte.gz\n"
    "\n"
    "Exit status: 0 on success, 1 when a command fails, 2 for a usage error.\n"
    "The manual page ae(1) has the details.\n";

static const struct {
    const char *name;
    int (*run)(int, char **);
} COMMANDS[] = {
    {"train", cmd_train},   {"encode", cmd_encode}, {"decode", cmd_decode},
    {"reconstruct", cmd_reconstruct}, {"eval", cmd_eval}, {"info", cmd_info},
    {"sample", cmd_sample}, {"export", cmd_export}, {"import", cmd_import},
};

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            /* "ae help train" is "ae train --help". */
            char *args[3] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
                if (strcmp(argv[2], COMMANDS[i].name) == 0) {
                    char name[64];
                    snprintf(name, sizeof name, "ae %s", COMMANDS[i].name);
                    g_cmd = name;
                    return COMMANDS[i].run(2, args);
                }
            return usage_error("unknown command '%s'", argv[2]);
        }
        fputs(MAIN_HELP, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ae %s (libae %s)\n", AE_VERSION_STRING, ae_version_string());
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0) {
            char name[64];
            snprintf(name, sizeof name, "ae %s", COMMANDS[i].name);
            g_cmd = name;
            /* The command sees argv[0] = its name, as getopt_long expects. */
            int rc = COMMANDS[i].run(argc - 1, argv + 1);
            if (fflush(stdout) != 0) return fail(EXIT_RUN, "cannot write the standard output");
            return rc;
        }
    if (cmd[0] == '-') return usage_error("unknown option '%s'; a command comes first", cmd);
    return usage_error("unknown command '%s'", cmd);
}
