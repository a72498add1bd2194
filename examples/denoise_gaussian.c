/* Denoising autoencoder on Fashion-MNIST with Gaussian noise of variance
 * 0.1 clipped to [0, 1]; prints the test MSE of the noisy images and of
 * their reconstructions against the clean images.
 *
 *   denoise_gaussian [epochs] [data-dir]
 */
#include "denoise_common.h"

int main(int argc, char **argv) {
    ae_noise noise;
    ae_noise_init(&noise, AE_NOISE_GAUSSIAN, 0.1);
    noise.clip = 1; /* to [0, 1], the default bounds */
    return dn_run("Gaussian noise, variance 0.1, clipped to [0, 1]", &noise, argc, argv);
}
