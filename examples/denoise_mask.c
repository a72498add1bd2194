/* Denoising autoencoder on Fashion-MNIST with masking noise: exactly half
 * of each image's pixels (392 of 784) set to 0; prints the test MSE of the
 * masked images and of their reconstructions against the clean images.
 *
 *   denoise_mask [epochs] [data-dir]
 */
#include "denoise_common.h"

int main(int argc, char **argv) {
    ae_noise noise;
    ae_noise_init(&noise, AE_NOISE_MASK, 0.5);
    return dn_run("masking noise, 50% of the pixels set to 0", &noise, argc, argv);
}
