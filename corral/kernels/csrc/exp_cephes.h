/* Constants of Cephes' expf, shared by the vectorized exps of the fused ops and of attention:
 * x = n ln2 + r with ln2 split in two (EXP_C1 + EXP_C2) so r is exact, |r| <= ln2 / 2, e^r by a
 * polynomial in r with coefficients EXP_P0..EXP_P5, times 2^n. Each user clamps x to its own range. */
#ifndef CORRAL_EXP_CEPHES_H
#define CORRAL_EXP_CEPHES_H

#define EXP_LOG2E 1.44269504088896341f
#define EXP_C1 0.693359375f
#define EXP_C2 (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

#endif
