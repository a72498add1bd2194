/* Denoising autoencoder on Fashion-MNIST with Gaussian noise of standard
 * deviation 0.3 clipped to [0, 1] (the seeds' x + 0.3 * randn); prints the test MSE of the noisy images and of
 * their reconstructions against the clean images.
 *
 *   denoise_gaussian [epochs] [data-dir]
 */
#include "denoise_common.h"

int main(int argc, char **argv) {
    ae_noise noise;
    ae_noise_init(&noise, AE_NOISE_GAUSSIAN, 0.3);
    noise.clip = 1; /* to [0, 1], the default bounds */
    return dn_run("Gaussian noise, sigma 0.3, clipped to [0, 1]", &noise, argc, argv);
}
