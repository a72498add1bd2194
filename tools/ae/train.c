/* `ae train`: builds a model from an architecture description (--arch, or
 * the text the shortcut flags stand for), trains it with its own loop over
 * ae_train_step (so that a progress bar can follow every batch), records
 * the data preparation and the history in the model's metadata, writes the
 * model file and the pictures asked for. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tool.h"

#define MAX_WIDTHS 16

static const char TRAIN_HELP[] =
    "Usage: ae train [OPTIONS] -o MODEL\n"
    "Trains an autoencoder and writes it to the model file MODEL.\n"
    "With no --data, trains on Fashion-MNIST from Debian's dataset-fashion-mnist\n"
    "(" FMNIST_DIR ") and reports the MSE on its test set.\n"
    "\n"
    "Data:\n"
    "  -d, --data FILE          training data: IDX (plain or gzipped), .npy, CSV, or a\n"
    "                           folder of PNG/JPEG images (one subfolder per class)\n"
    "      --image-size HxW     image folders: resize to HxW (default 64x64; CxHxW\n"
    "                           also sets the channels)\n"
    "      --channels N         image folders: 1 (gray), 3 (RGB, default) or 4 (RGBA)\n"
    "      --crop               image folders: shorter side to max(H, W), then the\n"
    "                           centre HxW (default: stretch to HxW)\n"
    "      --skip-bad           image folders: skip unreadable files (counted)\n"
    "      --image-cache FILE   image folders: decode once into FILE (a uint8 .npy)\n"
    "                           and train from it on disk\n"
    "      --mmap               .npy: read the rows from disk batch by batch (also\n"
    "                           when the file would take over half the memory)\n"
    "      --labels FILE        labels: IDX, .npy (any integer dtype) or CSV\n"
    "      --csv-header         the CSV's first line is a header\n"
    "      --csv-label-first    the CSV's first column is the label\n"
    "      --shape CxHxW        sample shape, e.g. 1x28x28 (for pictures and SSIM)\n"
    "      --limit N            use the first N samples\n"
    "      --scale F            multiply the stored values by F (default 1/255 for\n"
    "                           8-bit data: IDX, uint8 .npy, CSVs of 0..255; else 1)\n"
    "      --standardize HOW    none (default), scalar, channel or feature: (x - mean) / std\n"
    "                           from the training data, recorded in the model\n"
    "      --test FILE          held-out data, its MSE reported after each epoch\n"
    "      --test-labels FILE   labels of the test data (for --scatter-png)\n"
    "      --val-split F        hold out the fraction F of the training data for\n"
    "                           validation (early stopping watches its loss)\n"
    "\n"
    "Architecture:\n"
    "      --arch FILE          the architecture description in FILE (docs/arch.md;\n"
    "                           `ae info --arch MODEL` prints a model's), instead of\n"
    "                           the flags below; without an input line the input is\n"
    "                           the data's shape. The training options override its\n"
    "                           settings\n"
    "      --arch-string TEXT   the same, given as text ('\\n' or newlines between lines)\n"
    "  The flags below are shortcuts for a description:\n"
    "      --layers LIST        encoder widths, the last one the code (default 256,32)\n"
    "      --act ACT            hidden activation (default relu)\n"
    "      --code-act ACT       code activation (default identity)\n"
    "      --output-act ACT     output activation (default sigmoid; identity when\n"
    "                           standardised)\n"
    "                           ACT: identity relu leaky_relu sigmoid tanh gelu softplus elu\n"
    "      --tied               the decoder uses the transposed encoder weights\n"
    "      --conv LIST          convolutional encoder first: 3x3 convolutions of stride 2\n"
    "                           with these channel counts (e.g. 16,32), then the dense\n"
    "                           --layers; the decoder mirrors them with transposed\n"
    "                           convolutions (image samples; not with --tied)\n"
    "\n"
    "Variational autoencoder:\n"
    "      --vae                the code is a Gaussian latent (mu, log sigma^2 heads)\n"
    "                           of the last --layers width; the loss adds beta * KL.\n"
    "                           Defaults then: --loss bce (mse when the output is\n"
    "                           not sigmoid) and --reduction sum, as PyTorch's VAE\n"
    "      --beta F             weight of the KL term (default 1)\n"
    "      --kl-warmup N        raise beta linearly from 0 over the first N steps\n"
    "\n"
    "Sparsity (on the code):\n"
    "      --topk K             keep the K largest code values of each sample\n"
    "      --batch-topk K       keep the batch*K largest code values of the batch\n"
    "      --lifetime-topk K|F  keep each unit's K largest values over the batch, or\n"
    "                           the fraction F (a number with a point, e.g. 0.05)\n"
    "      --kl-sparsity RHO    KL penalty towards mean activation RHO (needs\n"
    "                           --code-act sigmoid); --kl-weight L (default 0.1)\n"
    "      --kl-reduction R     mean (default, as the seeds) or sum of the KL\n"
    "                           penalty over the code units\n"
    "      --l1 L               L1 penalty of weight L on the code\n"
    "\n"
    "Denoising:\n"
    "      --noise KIND         gaussian, mask, bernoulli, dropout or salt-pepper\n"
    "      --noise-level F      standard deviation (gaussian: x + F * randn) or\n"
    "                           fraction/probability (others)\n"
    "      --noise-clip         clip the corrupted input to [0, 1]\n"
    "\n"
    "Training:\n"
    "      --loss LOSS          mse (default) or bce (needs --output-act sigmoid)\n"
    "      --reduction R        mean (default) or sum of the loss over the batch\n"
    "      --optimizer OPT      adam (default), adamw or sgd\n"
    "      --lr F               learning rate (default 0.001)\n"
    "      --momentum F         SGD momentum; --nesterov for Nesterov's\n"
    "      --weight-decay F     weight decay (default 1e-2 with adamw, else 0)\n"
    "      --grad-clip F        clip the gradient's global L2 norm to F\n"
    "  -e, --epochs N           epochs (default 10)\n"
    "  -b, --batch-size N       batch size (default 256)\n"
    "      --seed N             seeds initialisation, shuffling and noise (default 42)\n"
    "      --schedule S         constant (default), step or cosine learning rate\n"
    "      --step-size N        step: epochs per decay (default 10)\n"
    "      --gamma F            step: decay factor (default 0.1)\n"
    "      --min-lr F           cosine: the final rate (default 0)\n"
    "      --warmup-steps N     linear warm-up from a third of the rate over N steps\n"
    "      --patience N         stop after N epochs without improvement of the\n"
    "                           validation loss (training loss without --val-split)\n"
    "\n"
    "Output:\n"
    "  -o, --output MODEL       the model file to write (required)\n"
    "      --recon-png FILE     originals above their reconstructions (test data if\n"
    "                           given, else the training data)\n"
    "      --features-png FILE  the decoder's features, one tile per code unit\n"
    "      --scatter-png FILE   the codes in 2-D (principal components beyond 2)\n"
    "                           coloured by label\n"
    "  -q, --quiet              no progress bar and no per-epoch lines\n"
    "  -h, --help               this help\n"
    "\n"
    "A progress bar with the loss and the time left is drawn on standard error\n"
    "when it is a terminal; each epoch's line goes to standard output.\n";

enum {
    O_STANDARDIZE = DATA_OPT_END,
    O_TEST, O_TEST_LABELS, O_VAL_SPLIT, O_LAYERS, O_ACT, O_CODE_ACT, O_OUTPUT_ACT, O_TIED, O_TOPK,
    O_BATCH_TOPK, O_LIFETIME_TOPK, O_KL_SPARSITY, O_KL_WEIGHT, O_L1, O_NOISE, O_NOISE_LEVEL,
    O_NOISE_CLIP, O_LOSS, O_OPTIMIZER, O_LR, O_MOMENTUM, O_NESTEROV, O_WEIGHT_DECAY, O_GRAD_CLIP,
    O_SEED, O_SCHEDULE, O_STEP_SIZE, O_GAMMA, O_MIN_LR, O_WARMUP, O_PATIENCE, O_RECON_PNG,
    O_FEATURES_PNG, O_SCATTER_PNG, O_VAE, O_BETA, O_KL_WARMUP, O_REDUCTION,
    O_CONV, O_KL_REDUCTION, O_ARCH, O_ARCH_STRING
};

static const struct option TRAIN_OPTS[] = {
    {"data", required_argument, NULL, 'd'},
    DATA_LONG_OPTIONS,
    {"standardize", required_argument, NULL, O_STANDARDIZE},
    {"test", required_argument, NULL, O_TEST},
    {"test-labels", required_argument, NULL, O_TEST_LABELS},
    {"val-split", required_argument, NULL, O_VAL_SPLIT},
    {"layers", required_argument, NULL, O_LAYERS},
    {"conv", required_argument, NULL, O_CONV},
    {"arch", required_argument, NULL, O_ARCH},
    {"arch-string", required_argument, NULL, O_ARCH_STRING},
    {"act", required_argument, NULL, O_ACT},
    {"code-act", required_argument, NULL, O_CODE_ACT},
    {"output-act", required_argument, NULL, O_OUTPUT_ACT},
    {"tied", no_argument, NULL, O_TIED},
    {"topk", required_argument, NULL, O_TOPK},
    {"batch-topk", required_argument, NULL, O_BATCH_TOPK},
    {"lifetime-topk", required_argument, NULL, O_LIFETIME_TOPK},
    {"kl-sparsity", required_argument, NULL, O_KL_SPARSITY},
    {"kl-weight", required_argument, NULL, O_KL_WEIGHT},
    {"kl-reduction", required_argument, NULL, O_KL_REDUCTION},
    {"l1", required_argument, NULL, O_L1},
    {"noise", required_argument, NULL, O_NOISE},
    {"noise-level", required_argument, NULL, O_NOISE_LEVEL},
    {"noise-clip", no_argument, NULL, O_NOISE_CLIP},
    {"loss", required_argument, NULL, O_LOSS},
    {"reduction", required_argument, NULL, O_REDUCTION},
    {"vae", no_argument, NULL, O_VAE},
    {"beta", required_argument, NULL, O_BETA},
    {"kl-warmup", required_argument, NULL, O_KL_WARMUP},
    {"optimizer", required_argument, NULL, O_OPTIMIZER},
    {"lr", required_argument, NULL, O_LR},
    {"momentum", required_argument, NULL, O_MOMENTUM},
    {"nesterov", no_argument, NULL, O_NESTEROV},
    {"weight-decay", required_argument, NULL, O_WEIGHT_DECAY},
    {"grad-clip", required_argument, NULL, O_GRAD_CLIP},
    {"epochs", required_argument, NULL, 'e'},
    {"batch-size", required_argument, NULL, 'b'},
    {"seed", required_argument, NULL, O_SEED},
    {"schedule", required_argument, NULL, O_SCHEDULE},
    {"step-size", required_argument, NULL, O_STEP_SIZE},
    {"gamma", required_argument, NULL, O_GAMMA},
    {"min-lr", required_argument, NULL, O_MIN_LR},
    {"warmup-steps", required_argument, NULL, O_WARMUP},
    {"patience", required_argument, NULL, O_PATIENCE},
    {"output", required_argument, NULL, 'o'},
    {"recon-png", required_argument, NULL, O_RECON_PNG},
    {"features-png", required_argument, NULL, O_FEATURES_PNG},
    {"scatter-png", required_argument, NULL, O_SCATTER_PNG},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

enum { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE };
enum { ST_NONE, ST_SCALAR, ST_CHANNEL, ST_FEATURE };

typedef struct train_opts {
    data_opts data;
    const char *test, *test_labels, *output, *recon_png, *features_png, *scatter_png;
    double val_split;
    size_t widths[MAX_WIDTHS], nwidths;
    size_t conv[MAX_WIDTHS], nconv;
    ae_activation act, code_act, output_act;
    int have_output_act, tied, standardize;
    size_t topk, batch_topk, lifetime_k;
    double lifetime_frac, kl_rho, kl_weight, l1;
    int have_kl_weight, kl_reduction, have_kl_reduction;
    int noise, noise_clip;
    double noise_level;
    int have_noise_level;
    int loss, optimizer, reduction, have_loss, have_reduction, have_weight_decay;
    int vae, have_code_act, have_beta;
    double beta;
    size_t kl_warmup;
    double lr, momentum, weight_decay, grad_clip;
    int nesterov, have_momentum;
    size_t epochs, batch;
    uint64_t seed;
    int schedule;
    size_t step_size, warmup, patience;
    double gamma, min_lr;
    int have_step_opts, have_min_lr;
    int quiet;
    const char *arch_file, *arch_string; /* --arch, --arch-string */
    unsigned char given[DATA_OPT_END + 64]; /* the options given, by getopt id */
} train_opts;

static int parse_train(int argc, char **argv, train_opts *o) {
    static const char *const noise_names[] = {"none", "gaussian", "mask", "bernoulli", "dropout",
                                              "salt-pepper", NULL};
    static const char *const loss_names[] = {"mse", "bce", NULL};
    static const char *const red_names[] = {"mean", "sum", NULL};
    static const char *const opt_names[] = {"sgd", "adam", "adamw", NULL};
    static const char *const sched_names[] = {"constant", "step", "cosine", NULL};
    static const char *const st_names[] = {"none", "scalar", "channel", "feature", NULL};
    const char *shortopts = ":d:e:b:o:qh";
    memset(o, 0, sizeof *o);
    o->widths[0] = 256, o->widths[1] = 32, o->nwidths = 2;
    o->act = AE_ACT_RELU, o->code_act = AE_ACT_IDENTITY, o->output_act = AE_ACT_SIGMOID;
    o->kl_weight = 0.1, o->loss = AE_LOSS_MSE, o->optimizer = AE_OPT_ADAM, o->lr = 1e-3;
    o->epochs = 10, o->batch = 256, o->seed = 42, o->step_size = 10, o->gamma = 0.1;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, TRAIN_OPTS, NULL)) != -1) {
        const char *a = optarg;
        int bad = data_parse_opt(c, a, &o->data);
        if (bad >= 0) {
            if (bad) return EXIT_USAGE;
            continue;
        }
        bad = 0;
        if (c >= 0 && (size_t)c < sizeof o->given) o->given[c] = 1;
        switch (c) {
        case O_ARCH: o->arch_file = a; break;
        case O_ARCH_STRING: o->arch_string = a; break;
        case O_STANDARDIZE: bad = parse_choice("--standardize", a, st_names, &o->standardize); break;
        case O_TEST: o->test = a; break;
        case O_TEST_LABELS: o->test_labels = a; break;
        case O_VAL_SPLIT: bad = parse_double("--val-split", a, 1e-9, 1 - 1e-9, &o->val_split); break;
        case O_LAYERS: bad = parse_widths("--layers", a, o->widths, MAX_WIDTHS, &o->nwidths); break;
        case O_CONV: bad = parse_widths("--conv", a, o->conv, 8, &o->nconv); break;
        case O_ACT: bad = parse_activation("--act", a, &o->act); break;
        case O_CODE_ACT:
            bad = parse_activation("--code-act", a, &o->code_act);
            o->have_code_act = 1;
            break;
        case O_OUTPUT_ACT:
            bad = parse_activation("--output-act", a, &o->output_act);
            o->have_output_act = 1;
            break;
        case O_TIED: o->tied = 1; break;
        case O_TOPK: bad = parse_size("--topk", a, 1, 1u << 24, &o->topk); break;
        case O_BATCH_TOPK: bad = parse_size("--batch-topk", a, 1, 1u << 24, &o->batch_topk); break;
        case O_LIFETIME_TOPK:
            if (strchr(a, '.') || strchr(a, 'e'))
                bad = parse_double("--lifetime-topk", a, 1e-9, 1.0, &o->lifetime_frac);
            else
                bad = parse_size("--lifetime-topk", a, 1, 1u << 24, &o->lifetime_k);
            break;
        case O_KL_SPARSITY: bad = parse_double("--kl-sparsity", a, 1e-6, 1 - 1e-6, &o->kl_rho); break;
        case O_KL_WEIGHT:
            bad = parse_double("--kl-weight", a, 0, 1e6, &o->kl_weight);
            o->have_kl_weight = 1;
            break;
        case O_KL_REDUCTION:
            bad = parse_choice("--kl-reduction", a, red_names, &o->kl_reduction);
            o->have_kl_reduction = 1;
            break;
        case O_L1: bad = parse_double("--l1", a, 0, 1e6, &o->l1); break;
        case O_NOISE: bad = parse_choice("--noise", a, noise_names, &o->noise); break;
        case O_NOISE_LEVEL:
            bad = parse_double("--noise-level", a, 0, 1e6, &o->noise_level);
            o->have_noise_level = 1;
            break;
        case O_NOISE_CLIP: o->noise_clip = 1; break;
        case O_LOSS:
            bad = parse_choice("--loss", a, loss_names, &o->loss);
            o->have_loss = 1;
            break;
        case O_REDUCTION:
            bad = parse_choice("--reduction", a, red_names, &o->reduction);
            o->have_reduction = 1;
            break;
        case O_VAE: o->vae = 1; break;
        case O_BETA:
            bad = parse_double("--beta", a, 0, 1e6, &o->beta);
            o->have_beta = 1;
            break;
        case O_KL_WARMUP: bad = parse_size("--kl-warmup", a, 1, SIZE_MAX / 2, &o->kl_warmup); break;
        case O_OPTIMIZER: bad = parse_choice("--optimizer", a, opt_names, &o->optimizer); break;
        case O_LR: bad = parse_double("--lr", a, 0, 1e6, &o->lr); break;
        case O_MOMENTUM:
            bad = parse_double("--momentum", a, 0, 0.999999, &o->momentum);
            o->have_momentum = 1;
            break;
        case O_NESTEROV: o->nesterov = 1; break;
        case O_WEIGHT_DECAY:
            bad = parse_double("--weight-decay", a, 0, 1e6, &o->weight_decay);
            o->have_weight_decay = 1;
            break;
        case O_GRAD_CLIP: bad = parse_double("--grad-clip", a, 0, 1e12, &o->grad_clip); break;
        case 'e': bad = parse_size("--epochs", a, 1, 1u << 24, &o->epochs); break;
        case 'b': bad = parse_size("--batch-size", a, 1, 1u << 24, &o->batch); break;
        case O_SEED: bad = parse_u64("--seed", a, &o->seed); break;
        case O_SCHEDULE: bad = parse_choice("--schedule", a, sched_names, &o->schedule); break;
        case O_STEP_SIZE:
            bad = parse_size("--step-size", a, 1, 1u << 24, &o->step_size);
            o->have_step_opts = 1;
            break;
        case O_GAMMA:
            bad = parse_double("--gamma", a, 1e-12, 1.0, &o->gamma);
            o->have_step_opts = 1;
            break;
        case O_MIN_LR:
            bad = parse_double("--min-lr", a, 0, 1e6, &o->min_lr);
            o->have_min_lr = 1;
            break;
        case O_WARMUP: bad = parse_size("--warmup-steps", a, 0, SIZE_MAX, &o->warmup); break;
        case O_PATIENCE: bad = parse_size("--patience", a, 1, 1u << 24, &o->patience); break;
        case 'o': o->output = a; break;
        case O_RECON_PNG: o->recon_png = a; break;
        case O_FEATURES_PNG: o->features_png = a; break;
        case O_SCATTER_PNG: o->scatter_png = a; break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(TRAIN_HELP, stdout); return 1;
        default: return getopt_error(argv, c);
        }
        if (bad) return EXIT_USAGE;
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    /* Options that do not go together, or need another. */
    if (!o->output) return usage_error("no model file to write: give -o MODEL");
    if (!o->data.path && (o->data.labels || o->data.csv_header || o->data.csv_label_first))
        return usage_error("--labels and the CSV options need --data");
    if (!o->data.path && o->test) return usage_error("--test needs --data");
    if (o->test_labels && !o->test) return usage_error("--test-labels needs --test");
    int arch = o->arch_file || o->arch_string;
    if (o->arch_file && o->arch_string)
        return usage_error("--arch and --arch-string do not go together");
    for (const struct option *op = TRAIN_OPTS; arch && op->name; op++) {
        /* The shortcut flags are a description: one or the other. */
        static const int shortcuts[] = {O_LAYERS, O_CONV, O_ACT, O_CODE_ACT, O_OUTPUT_ACT, O_TIED,
                                        O_TOPK, O_BATCH_TOPK, O_LIFETIME_TOPK, O_KL_SPARSITY,
                                        O_KL_WEIGHT, O_KL_REDUCTION, O_L1, O_VAE};
        for (size_t i = 0; i < sizeof shortcuts / sizeof shortcuts[0]; i++)
            if (op->val == shortcuts[i] && o->given[op->val])
                return usage_error("--%s does not go with --%s: write it in the description "
                                   "(docs/arch.md)",
                                   op->name, o->arch_file ? "arch" : "arch-string");
    }
    if (!arch && (o->have_beta || o->kl_warmup) && !o->vae)
        return usage_error("--beta and --kl-warmup need --vae");
    if (o->vae && (o->topk || o->batch_topk || o->lifetime_k || o->lifetime_frac || o->kl_rho ||
                   o->l1))
        return usage_error("--vae does not go with the sparsity options");
    if (o->vae && o->have_code_act)
        return usage_error("--vae does not go with --code-act (the code is sampled)");
    if (o->vae && o->tied) return usage_error("--vae does not go with --tied");
    if (o->nconv && o->tied)
        return usage_error("--conv does not go with --tied (only dense layers can be tied)");
    if (o->have_kl_weight && !o->kl_rho) return usage_error("--kl-weight needs --kl-sparsity");
    if (o->have_kl_reduction && !o->kl_rho)
        return usage_error("--kl-reduction needs --kl-sparsity");
    if (o->kl_rho && o->code_act != AE_ACT_SIGMOID)
        return usage_error("--kl-sparsity needs --code-act sigmoid (the code must lie in (0, 1))");
    if (o->topk && o->batch_topk) return usage_error("--topk and --batch-topk do not go together");
    size_t code = o->widths[o->nwidths - 1];
    if (o->topk > code || o->batch_topk > code)
        return usage_error("--topk/--batch-topk %zu is wider than the code (%zu)",
                           o->topk ? o->topk : o->batch_topk, code);
    if (o->have_noise_level && !o->noise) return usage_error("--noise-level needs --noise");
    if (o->noise_clip && !o->noise) return usage_error("--noise-clip needs --noise");
    if (o->noise && !o->have_noise_level) return usage_error("--noise needs --noise-level");
    if ((o->have_momentum || o->nesterov) && o->optimizer != AE_OPT_SGD &&
        (!arch || o->given[O_OPTIMIZER]))
        return usage_error("--momentum and --nesterov are for --optimizer sgd");
    if (o->nesterov && !(o->momentum > 0)) return usage_error("--nesterov needs --momentum above 0");
    if (o->have_step_opts && o->schedule != SCHED_STEP)
        return usage_error("--step-size and --gamma are for --schedule step");
    if (o->have_min_lr && o->schedule != SCHED_COSINE)
        return usage_error("--min-lr is for --schedule cosine");
    if (o->standardize && o->have_output_act && o->output_act == AE_ACT_SIGMOID)
        return usage_error("--output-act sigmoid cannot fit --standardize'd data (not in [0, 1])");
    if (o->standardize && !o->have_output_act) o->output_act = AE_ACT_IDENTITY;
    if (o->vae && !o->have_loss) o->loss = o->output_act == AE_ACT_SIGMOID ? AE_LOSS_BCE : AE_LOSS_MSE;
    if (o->vae && !o->have_reduction) o->reduction = AE_REDUCE_SUM;
    if (!arch && o->loss == AE_LOSS_BCE && o->output_act != AE_ACT_SIGMOID)
        return usage_error("--loss bce needs --output-act sigmoid");
    return 0;
}

/* ---- building the model ---- */

/* Heights and widths after each stride-2 convolution of --conv (level 0 is
 * the input); -1 when a level's transposed convolution cannot restore
 * height and width with one output padding. */
static int conv_levels(const train_opts *o, const size_t shape[3], size_t *hs, size_t *ws) {
    hs[0] = shape[1], ws[0] = shape[2];
    for (size_t i = 0; i < o->nconv; i++) {
        hs[i + 1] = (hs[i] - 1) / 2 + 1;
        ws[i + 1] = (ws[i] - 1) / 2 + 1;
        if (hs[i] - (2 * hs[i + 1] - 1) != ws[i] - (2 * ws[i + 1] - 1)) return -1;
    }
    return 0;
}

/* The description the shortcut flags stand for (docs/arch.md): the
 * encoder, the code, and a decoder mirroring it. */
static void flags_description(const train_opts *o, const size_t shape[3], strbuf *b) {
    size_t hs[9], ws[9], flat = shape[0] * shape[1] * shape[2];
    const char *act = ae_activation_name(o->act);
    if (shape[1] == 1 && shape[2] == 1) sb_printf(b, "input %zu\n", shape[0]);
    else sb_printf(b, "input %zu %zu %zu\n", shape[0], shape[1], shape[2]);
    if (o->nconv) {
        /* 3x3, stride 2, padding 1: each level halves height and width (rounding up). */
        conv_levels(o, shape, hs, ws);
        for (size_t i = 0; i < o->nconv; i++)
            sb_printf(b, "conv2d %zu 3 stride=2 padding=1 activation=%s\n", o->conv[i], act);
        sb_printf(b, "flatten\n");
        flat = o->conv[o->nconv - 1] * hs[o->nconv] * ws[o->nconv];
    }
    /* A VAE's last width is its Gaussian latent; otherwise a dense code layer. */
    size_t dense = o->vae ? o->nwidths - 1 : o->nwidths;
    for (size_t i = 0; i < dense; i++)
        sb_printf(b, "dense %zu activation=%s\n", o->widths[i],
                  ae_activation_name(i + 1 == o->nwidths ? o->code_act : o->act));
    if (o->vae) sb_printf(b, "gaussian %zu\n", o->widths[o->nwidths - 1]);
    if (o->kl_rho)
        sb_printf(b, "kl_sparsity rho=%.17g weight=%.17g reduction=%s\n", o->kl_rho, o->kl_weight,
                  o->kl_reduction ? "sum" : "mean");
    if (o->topk) sb_printf(b, "topk %zu\n", o->topk);
    if (o->batch_topk) sb_printf(b, "batch_topk %zu\n", o->batch_topk);
    if (o->lifetime_k) sb_printf(b, "lifetime_topk %zu\n", o->lifetime_k);
    if (o->lifetime_frac) sb_printf(b, "lifetime_topk fraction=%.17g\n", o->lifetime_frac);
    /* L1 on the code as the decoder sees it (after any selection). */
    if (o->l1) sb_printf(b, "l1 weight=%.17g\n", o->l1);
    sb_printf(b, "code\n");
    /* The decoder mirrors the encoder's widths (selection layers have none). */
    for (size_t i = o->nwidths; i-- > 0;)
        sb_printf(b, "dense %zu activation=%s\n", i == 0 ? flat : o->widths[i - 1],
                  ae_activation_name(i == 0 && !o->nconv ? o->output_act : o->act));
    if (o->nconv) {
        sb_printf(b, "unflatten %zu %zu %zu\n", o->conv[o->nconv - 1], hs[o->nconv], ws[o->nconv]);
        for (size_t i = o->nconv; i-- > 0;)
            /* The output padding that gives back the level's exact size. */
            sb_printf(b, "conv_transpose2d %zu 3 stride=2 padding=1 output_padding=%zu activation=%s\n",
                      i == 0 ? shape[0] : o->conv[i - 1], hs[i] - (2 * hs[i + 1] - 1),
                      ae_activation_name(i == 0 ? o->output_act : o->act));
    }
    if (o->tied) sb_printf(b, "tied\n");
}

/* AE_P_SEED holds the seed's 64 bits as an int64. */
static int64_t seed_bits(uint64_t seed) {
    int64_t bits;
    memcpy(&bits, &seed, sizeof bits);
    return bits;
}

/* `set` lines for the training options: all of them with the shortcut
 * flags, those given with a description (they override its settings). */
static void training_settings(const train_opts *o, int arch, strbuf *b) {
    static const char *const loss[] = {"mse", "bce"}, *const red[] = {"mean", "sum"},
                             *const opt[] = {"sgd", "adam", "adamw"},
                             *const noise[] = {"none",    "gaussian", "mask", "bernoulli",
                                               "dropout", "salt_pepper"};
#define GIVEN(id) (!arch || o->given[id])
    if (GIVEN(O_LOSS)) sb_printf(b, "set loss=%s\n", loss[o->loss]);
    if (GIVEN(O_REDUCTION)) sb_printf(b, "set reduction=%s\n", red[o->reduction]);
    if (o->have_beta) sb_printf(b, "set vae_beta=%.17g\n", o->beta);
    if (o->kl_warmup) sb_printf(b, "set vae_beta_warmup_steps=%zu\n", o->kl_warmup);
    if (GIVEN(O_OPTIMIZER)) sb_printf(b, "set optimizer=%s\n", opt[o->optimizer]);
    if (GIVEN(O_LR)) sb_printf(b, "set learning_rate=%.17g\n", o->lr);
    if (GIVEN(O_SEED)) sb_printf(b, "set seed=%lld\n", (long long)seed_bits(o->seed));
    if (o->momentum) sb_printf(b, "set momentum=%.17g\n", o->momentum);
    if (o->nesterov) sb_printf(b, "set nesterov=true\n");
    if (o->have_weight_decay) sb_printf(b, "set weight_decay=%.17g\n", o->weight_decay);
    if (o->grad_clip) sb_printf(b, "set grad_clip_norm=%.17g\n", o->grad_clip);
    if (o->noise) {
        sb_printf(b, "set noise_kind=%s noise_level=%.17g\n", noise[o->noise], o->noise_level);
        if (o->noise_clip) sb_printf(b, "set noise_clip=true\n");
    }
#undef GIVEN
}

/* One path for every model: a description (--arch, --arch-string, or the
 * text of the shortcut flags), then the training options as `set` lines. */
static ae_model *build_model(const train_opts *o, const size_t shape[3]) {
    int arch = o->arch_file || o->arch_string;
    char *text = NULL;
    strbuf flags = {0}, sets = {0};
    ae_model *m = NULL;
    if (o->arch_file) {
        text = arch_read_file(o->arch_file);
    } else if (!arch) {
        flags_description(o, shape, &flags);
        text = flags.s;
    }
    training_settings(o, arch, &sets);
    if ((text || o->arch_string) && !flags.failed && !sets.failed) {
        const char *what = o->arch_file ? o->arch_file : arch ? "--arch-string" : "the flags' description";
        m = arch_build(o->arch_string ? o->arch_string : text, sets.s ? sets.s : "", shape,
                       seed_bits(o->seed), what);
    } else if (flags.failed || sets.failed) {
        fail(EXIT_RUN, "out of memory");
    }
    if (text != flags.s) free(text);
    free(flags.s);
    free(sets.s);
    return m;
}

/* ---- the loop ---- */

typedef struct epoch_rec {
    double train_loss, val_loss, test_mse, lr, seconds;
} epoch_rec;

typedef struct progress {
    int bar;
    double start, last_draw;
    size_t total_steps, done_steps;
} progress;

static void draw_bar(progress *p, size_t epoch, size_t epochs, size_t step, size_t steps,
                     double loss) {
    double t = now_seconds();
    if (step != steps && t - p->last_draw < 0.1) return;
    p->last_draw = t;
    double per = p->done_steps ? (t - p->start) / (double)p->done_steps : 0.0;
    double left = per * (double)(p->total_steps - p->done_steps);
    char bar[31];
    size_t fill = steps ? step * 30 / steps : 0;
    for (size_t i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\repoch %zu/%zu [%s] %zu/%zu  loss %.5f  %.0f s, ~%.0f s left\033[K", epoch,
            epochs, bar, step, steps, loss, t - p->start, left);
    fflush(stderr);
}

static double lr_at(const train_opts *o, size_t epoch) {
    switch (o->schedule) {
    case SCHED_STEP: return o->lr * pow(o->gamma, (double)(epoch / o->step_size));
    case SCHED_COSINE:
        return o->min_lr + (o->lr - o->min_lr) *
                               (1.0 + cos(3.14159265358979323846 * (double)epoch / (double)o->epochs)) / 2.0;
    default: return o->lr;
    }
}

/* Loss per sample over a dataset, as ae_fit defines it: the batch losses
 * weighted by batch size (mean reduction) or summed (sum reduction), over
 * the sample count. */
static int mean_loss(ae_model *m, const ae_dataset *ds, size_t bs, int sum_red, double *out) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds);
    const float *x = ae_dataset_data(ds);
    /* File-backed rows (a split of -d --mmap) are read a batch at a time. */
    float *buf = x ? NULL : alloc_array(bs, d, sizeof(float));
    if (!x && !buf) return fail(EXIT_RUN, "out of memory");
    double s = 0.0;
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        float loss;
        if (buf && ae_dataset_rows(ds, i, b, buf, NULL) != AE_OK) {
            free(buf);
            return fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        }
        if (ae_evaluate(m, buf ? buf : x + i * d, NULL, b, &loss) != AE_OK) {
            free(buf);
            return fail(EXIT_RUN, "evaluation failed: %s", ae_model_last_error(m));
        }
        s += sum_red ? (double)loss : (double)loss * (double)b;
    }
    free(buf);
    *out = s / (double)n;
    return 0;
}

static int dataset_mse(ae_model *m, const ae_dataset *ds, double *out) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds);
    float *y = alloc_array(n, d, sizeof(float));
    if (!y) return fail(EXIT_RUN, "out of memory");
    int rc = run_batched(m, RUN_RECONSTRUCT, ae_dataset_data(ds), n, d, y, d);
    if (!rc && ae_metric_mse(ae_dataset_data(ds), y, n * d, out) != AE_OK)
        rc = fail(EXIT_RUN, "the reconstructions are not finite");
    free(y);
    return rc;
}

/* Trains; *lo and *hi receive the range of the inputs of the first epoch
 * (recorded in the model's value convention). */
static int train_loop(ae_model *m, const train_opts *o, ae_dataset *train, ae_dataset *val,
                      ae_dataset *test, epoch_rec *hist, size_t *epochs_run, int *early,
                      double *lo, double *hi) {
    size_t n = ae_dataset_count(train), d = ae_dataset_dim(train), bs = o->batch;
    if (bs > n) bs = n;
    size_t steps = (n + bs - 1) / bs;
    size_t *idx = alloc_array(n, 1, sizeof *idx);
    float *batch = alloc_array(bs, d, sizeof(float));
    if (!idx || !batch) {
        free(idx);
        free(batch);
        return fail(EXIT_RUN, "out of memory");
    }
    for (size_t i = 0; i < n; i++) idx[i] = i;
    progress pr = {isatty(STDERR_FILENO) && !o->quiet, now_seconds(), 0.0, steps * o->epochs, 0};
    uint64_t rng = o->seed ^ 0x5348554646ULL; /* "SHUFF" */
    double best = INFINITY;
    float in_lo = INFINITY, in_hi = -INFINITY;
    size_t since_best = 0, global = 0;
    int rc = 0;
    *early = 0;
    for (size_t e = 0; e < o->epochs && !rc; e++) {
        double t0 = now_seconds(), lr = lr_at(o, e), sum = 0.0, cur = lr;
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(tool_splitmix(&rng) % i), t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        for (size_t s = 0; s < steps; s++, global++) {
            size_t off = s * bs, b = n - off < bs ? n - off : bs;
            cur = lr;
            if (global < o->warmup)
                cur = lr * (1.0 / 3.0 + (2.0 / 3.0) * (double)global / (double)o->warmup);
            float loss;
            if (ae_model_set_float(m, AE_P_LEARNING_RATE, cur) != AE_OK ||
                ae_dataset_gather(train, idx + off, b, batch, NULL) != AE_OK ||
                ae_train_step(m, batch, NULL, b, &loss) != AE_OK) {
                if (pr.bar) fputs("\r\033[K", stderr);
                rc = fail(EXIT_RUN, "epoch %zu, batch %zu: %s", e + 1, s + 1, ae_model_last_error(m));
                break;
            }
            sum += o->reduction == AE_REDUCE_SUM ? (double)loss : (double)loss * (double)b;
            for (size_t i = 0; e == 0 && i < b * d; i++) {
                in_lo = batch[i] < in_lo ? batch[i] : in_lo;
                in_hi = batch[i] > in_hi ? batch[i] : in_hi;
            }
            pr.done_steps++;
            if (pr.bar) draw_bar(&pr, e + 1, o->epochs, s + 1, steps, sum / (double)(off + b));
        }
        if (rc) break;
        epoch_rec *r = &hist[e];
        r->train_loss = sum / (double)n;
        r->lr = cur;
        r->val_loss = r->test_mse = NAN;
        if (val && (rc = mean_loss(m, val, 1024, o->reduction == AE_REDUCE_SUM, &r->val_loss))) break;
        if (test && (rc = dataset_mse(m, test, &r->test_mse))) break;
        r->seconds = now_seconds() - t0;
        *epochs_run = e + 1;
        if (pr.bar) fputs("\r\033[K", stderr);
        if (!o->quiet) {
            printf("epoch %zu/%zu  train loss %.5f", e + 1, o->epochs, r->train_loss);
            if (val) printf("  val loss %.5f", r->val_loss);
            if (test) printf("  test MSE %.5f", r->test_mse);
            printf("  lr %.3g  %.2f s\n", r->lr, r->seconds);
            fflush(stdout);
        }
        double watched = val ? r->val_loss : r->train_loss;
        if (watched < best) {
            best = watched;
            since_best = 0;
        } else if (o->patience && ++since_best >= o->patience) {
            *early = 1;
            break;
        }
    }
    /* The model keeps its configured rate, not the last scheduled one. */
    ae_model_set_float(m, AE_P_LEARNING_RATE, o->lr);
    *lo = in_lo <= in_hi ? in_lo : NAN;
    *hi = in_lo <= in_hi ? in_hi : NAN;
    free(idx);
    free(batch);
    return rc;
}

/* ---- metadata ---- */

static int store_meta(ae_model *m, const train_opts *o, int argc, char **argv, const char *source,
                      size_t count, const epoch_rec *hist, size_t epochs_run, int early) {
    static const char *const st_names[] = {"none", "scalar", "channel", "feature"};
    size_t cap = 64;
    for (int i = 0; i < argc; i++) cap += strlen(argv[i]) + 1;
    size_t hcap = 96 + epochs_run * 120;
    char *cmd = malloc(cap), *h = malloc(hcap);
    char buf[256];
    int rc = -1;
    if (!cmd || !h) goto done;
    strcpy(cmd, "ae train");
    for (int i = 1; i < argc; i++) {
        strcat(cmd, " ");
        strcat(cmd, argv[i]);
    }
    size_t len = (size_t)snprintf(h, hcap, "epoch,train_loss,val_loss,test_mse,lr,seconds\n");
    for (size_t e = 0; e < epochs_run; e++)
        len += (size_t)snprintf(h + len, hcap - len, "%zu,%.9g,%.9g,%.9g,%.9g,%.3f\n", e + 1,
                                hist[e].train_loss, hist[e].val_loss, hist[e].test_mse, hist[e].lr,
                                hist[e].seconds);
    snprintf(buf, sizeof buf, "%zu", count);
    if (ae_model_set_meta(m, "ae.tool.version", ae_version_string()) != AE_OK ||
        ae_model_set_meta(m, "ae.train.command", cmd) != AE_OK ||
        ae_model_set_meta(m, "ae.data.source", source) != AE_OK ||
        ae_model_set_meta(m, "ae.data.count", buf) != AE_OK ||
        ae_model_set_meta(m, "ae.data.standardize", st_names[o->standardize]) != AE_OK ||
        ae_model_set_meta(m, "ae.train.history", h) != AE_OK)
        goto done;
    snprintf(buf, sizeof buf, "%s after %zu of %zu epochs",
             early ? "stopped early (no improvement)" : "completed", epochs_run, o->epochs);
    if (ae_model_set_meta(m, "ae.train.stop", buf) != AE_OK) goto done;
    rc = 0;
done:
    free(cmd);
    free(h);
    return rc;
}

/* ---- the command ---- */

int cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = parse_train(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    char source[1200];
    data_opts test_opts = o.data;
    test_opts.path = o.test;
    test_opts.labels = o.test_labels;
    test_opts.limit = 0;
    if (!o.data.path) {
        /* The default: Debian's Fashion-MNIST (AE_FASHION_MNIST_DIR overrides the place). */
        const char *dir = getenv("AE_FASHION_MNIST_DIR");
        if (!dir || !*dir) dir = FMNIST_DIR;
        static char paths[4][1100];
        snprintf(paths[0], sizeof paths[0], "%s/train-images-idx3-ubyte.gz", dir);
        snprintf(paths[1], sizeof paths[1], "%s/train-labels-idx1-ubyte.gz", dir);
        snprintf(paths[2], sizeof paths[2], "%s/t10k-images-idx3-ubyte.gz", dir);
        snprintf(paths[3], sizeof paths[3], "%s/t10k-labels-idx1-ubyte.gz", dir);
        for (int i = 0; i < 4; i++)
            if (!file_readable(paths[i]))
                return fail(EXIT_RUN, "no --data given and Fashion-MNIST is not installed (%s "
                                      "missing): install it with 'apt-get install "
                                      "dataset-fashion-mnist', or give --data FILE",
                            paths[i]);
        o.data.path = paths[0], o.data.labels = paths[1];
        test_opts.path = paths[2], test_opts.labels = paths[3];
        o.test = paths[2];
        snprintf(source, sizeof source, "Fashion-MNIST (%s)", dir);
    } else {
        snprintf(source, sizeof source, "%s", o.data.path);
    }
    if (!file_readable(o.data.path)) return fail(EXIT_RUN, "cannot open %s", o.data.path);
    if (o.test && !file_readable(o.test)) return fail(EXIT_RUN, "cannot open %s", o.test);
    /* Before training: an hour's work must not end in a file that cannot be
       written, nor overwrite its own data. */
    char *cache_labels = NULL; /* the image cache's companion, "<cache>.labels.npy" */
    if (o.data.cache && (cache_labels = malloc(strlen(o.data.cache) + 12)) != NULL)
        sprintf(cache_labels, "%s.labels.npy", o.data.cache);
    if (o.data.cache && !cache_labels) return fail(EXIT_RUN, "out of memory");
    const named_file outputs[] = {{"-o", o.output},
                                  {"--recon-png", o.recon_png},
                                  {"--features-png", o.features_png},
                                  {"--scatter-png", o.scatter_png},
                                  {"--image-cache", o.data.cache},
                                  {"--image-cache (its labels)", cache_labels}};
    const named_file inputs[] = {{"-d", o.data.path},
                                 {"--labels", o.data.labels},
                                 {"--test", o.test},
                                 {"--test-labels", o.test_labels}};
    rc = check_outputs(outputs, sizeof outputs / sizeof *outputs, inputs,
                       sizeof inputs / sizeof *inputs);
    free(cache_labels);
    if (rc) return rc;

    ae_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL, *shown_mem = NULL;
    ae_model *m = NULL;
    epoch_rec *hist = NULL;
    prep p;
    memset(&p, 0, sizeof p);
    o.data.allow_file = 1; /* the training rows may stay on disk; the test set is read in */
    /* The values get their meaning by the library's rule (8-bit data
       x 1/255 unless --scale); the model records it, and the test data
       are given the same. Both files are read first, so that options that
       do not fit them are found before any work. */
    if ((rc = data_load(&o.data, &all)) != 0 || (rc = prep_data(all, &o.data, NULL, o.data.path)) != 0)
        goto done;
    if (o.test && (rc = data_load(&test_opts, &test)) != 0) goto done;
    rc = EXIT_RUN;
    size_t d = ae_dataset_dim(all);
    ae_dataset_shape(all, &p.shape[0], &p.shape[1], &p.shape[2]);
    if (o.standardize) {
        size_t k = o.standardize == ST_SCALAR ? 1 : o.standardize == ST_CHANNEL ? p.shape[0] : d;
        if (ae_dataset_standardize(all, NULL, NULL, k) != AE_OK) {
            fail(EXIT_RUN, "cannot standardise: %s", ae_dataset_last_error(all));
            goto done;
        }
        p.mean = malloc(k * sizeof *p.mean);
        p.std = malloc(k * sizeof *p.std);
        if (!p.mean || !p.std) {
            fail(EXIT_RUN, "out of memory");
            goto done;
        }
        ae_dataset_standardization(all, p.mean, p.std, k);
    }
    p.conv.struct_size = sizeof p.conv;
    ae_dataset_convention(all, &p.conv);
    /* The range of the training values (in memory), so that test data of
       another element type are checked against it; the model records the
       range its training batches had. */
    const float *av = ae_dataset_data(all);
    for (size_t i = 0; av && i < ae_dataset_count(all) * d; i++) {
        if (i == 0 || av[i] < p.conv.lo) p.conv.lo = av[i];
        if (i == 0 || av[i] > p.conv.hi) p.conv.hi = av[i];
    }
    if (test) {
        if (ae_dataset_dim(test) != d) {
            fail(EXIT_RUN, "the test data have %zu values per sample, the training data %zu",
                 ae_dataset_dim(test), d);
            goto done;
        }
        ae_dataset_reshape(test, p.shape[0], p.shape[1], p.shape[2]);
        if ((rc = prep_data(test, &test_opts, &p, o.test)) != 0) goto done;
        rc = EXIT_RUN;
    }
    size_t hs[9], ws[9];
    if (o.nconv && p.shape[1] == 1 && p.shape[2] == 1) {
        rc = usage_error("--conv needs image samples: give --shape (e.g. 1x28x28)");
        goto done;
    }
    if (o.nconv && conv_levels(&o, p.shape, hs, ws) != 0) {
        rc = usage_error("--conv: %zux%zu images cannot be halved %zu times with the same padding "
                         "for height and width",
                         p.shape[1], p.shape[2], o.nconv);
        goto done;
    }
    int need_img = o.recon_png || o.features_png;
    if (need_img && p.shape[1] == 1 && p.shape[2] == 1) {
        rc = usage_error("--recon-png and --features-png need image samples: give --shape "
                         "(e.g. 1x28x28)");
        goto done;
    }
    if (!(m = build_model(&o, p.shape))) goto done;
    if (ae_model_input_size(m) != d) {
        fail(EXIT_RUN, "%s: the model's input has %zu values; the data have %zu per sample",
             o.arch_file ? o.arch_file : "--arch-string", ae_model_input_size(m), d);
        goto done;
    }
    if (o.arch_file || o.arch_string) {
        /* What the description set, the loop follows: the rate its schedule
         * starts from, the loss reduction, and the seed of the shuffles. */
        int64_t v = 0;
        ae_model_get_float(m, AE_P_LEARNING_RATE, &o.lr);
        if (ae_model_get_int(m, AE_P_REDUCTION, &v) == AE_OK) o.reduction = (int)v;
        if (!o.given[O_SEED] && ae_model_get_int(m, AE_P_SEED, &v) == AE_OK) o.seed = (uint64_t)v;
    }
    if (o.val_split) {
        if (ae_dataset_split(all, o.val_split, o.seed, &train, &val) != AE_OK) {
            fail(EXIT_RUN, "--val-split %g: %s", o.val_split, ae_dataset_last_error(all));
            goto done;
        }
    } else {
        train = all;
        all = NULL;
    }
    ae_dataset *shown = test ? test : val ? val : train;
    /* The pictures read their samples in memory: a head of file-backed rows. */
    if (ae_dataset_file_backed(shown) && !(shown_mem = data_head(shown, 5000))) goto done;
    if (shown_mem) shown = shown_mem;
    if (o.scatter_png && !ae_dataset_labels(shown))
        printf("note: no labels, the scatter has one colour\n");
    if (!o.quiet) {
        printf("ae train: %s, %zu samples of %zux%zux%zu", source, ae_dataset_count(train),
               p.shape[0], p.shape[1], p.shape[2]);
        if (val) printf(", %zu for validation", ae_dataset_count(val));
        if (test) printf(", %zu for test", ae_dataset_count(test));
        if (o.arch_file || o.arch_string) {
            printf("\nmodel: %s, %zu layers (code after %zu), %zu parameters, batch %zu, %zu "
                   "epochs, backend %s\n",
                   o.arch_file ? o.arch_file : "--arch-string", ae_model_layer_count(m),
                   ae_model_code_layer(m), ae_model_param_count(m), o.batch, o.epochs,
                   ae_backend_name(ae_model_backend(m)));
        } else {
            printf("\nmodel: %zu", d);
            for (size_t i = 0; i < o.nconv; i++)
                printf("-conv%zu(%zux%zux%zu)", o.conv[i], o.conv[i], hs[i + 1], ws[i + 1]);
            for (size_t i = 0; i < o.nwidths; i++)
                printf(o.vae && i + 1 == o.nwidths ? "-[gaussian %zu]" : "-%zu", o.widths[i]);
            for (size_t i = o.nwidths - 1; i-- > 0;) printf("-%zu", o.widths[i]);
            if (o.nconv) printf("-%zu", o.conv[o.nconv - 1] * hs[o.nconv] * ws[o.nconv]);
            for (size_t i = o.nconv; i-- > 0;)
                printf("-convT%zu", i == 0 ? p.shape[0] : o.conv[i - 1]);
            printf("-%zu, %zu parameters, batch %zu, %zu epochs, backend %s\n", d,
                   ae_model_param_count(m), o.batch, o.epochs,
                   ae_backend_name(ae_model_backend(m)));
        }
        fflush(stdout);
    }
    hist = calloc(o.epochs, sizeof *hist);
    if (!hist) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    size_t run = 0;
    int early = 0;
    double t0 = now_seconds();
    if (train_loop(m, &o, train, val, test, hist, &run, &early, &p.conv.lo, &p.conv.hi)) goto done;
    double total = now_seconds() - t0;
    if (prep_store(m, &p) || store_meta(m, &o, argc, argv, source, ae_dataset_count(train), hist,
                                        run, early)) {
        fail(EXIT_RUN, "cannot record the metadata: %s", ae_model_last_error(m));
        goto done;
    }
    if (ae_model_save(m, o.output, AE_SAVE_MODEL) != AE_OK) {
        fail(EXIT_RUN, "%s", ae_model_last_error(m));
        goto done;
    }
    if (!o.quiet) {
        if (early) printf("stopped early after epoch %zu (no improvement)\n", run);
        if (test)
            printf("final test MSE %.5f after %zu epochs (%.1f s)\n", hist[run - 1].test_mse, run,
                   total);
        else
            printf("final train loss %.5f after %zu epochs (%.1f s)\n", hist[run - 1].train_loss,
                   run, total);
        printf("model written to %s\n", o.output);
    }
    /* The picture calls return the exit code of their failure. */
    if (o.recon_png) {
        if ((rc = picture_recon(o.recon_png, m, &p, shown, NULL, 20)) != 0) goto done;
        if (!o.quiet) printf("reconstructions written to %s\n", o.recon_png);
    }
    if (o.features_png) {
        if ((rc = picture_features(o.features_png, m, &p,
                                   ae_dataset_file_backed(train) ? shown : train)) != 0)
            goto done;
        if (!o.quiet) printf("features written to %s\n", o.features_png);
    }
    if (o.scatter_png) {
        if ((rc = picture_scatter(o.scatter_png, m, shown, 5000)) != 0) goto done;
        if (!o.quiet) printf("code scatter written to %s\n", o.scatter_png);
    }
    rc = 0;
done:
    free(hist);
    ae_model_destroy(m);
    ae_dataset_destroy(all);
    ae_dataset_destroy(train);
    ae_dataset_destroy(val);
    ae_dataset_destroy(test);
    ae_dataset_destroy(shown_mem);
    prep_free(&p);
    return rc;
}
