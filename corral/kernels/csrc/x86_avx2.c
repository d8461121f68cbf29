/* AVX2 + FMA + F16C kernels (Haswell and later, Zen): VNNI products emulated with maddubs. */
#if defined(__x86_64__) || defined(_M_X64)
#define KTARGET "avx2,fma,f16c"
#define KSET kernels_avx2
#define KNAME "avx2"
#include "x86_ymm_impl.h"
#endif
