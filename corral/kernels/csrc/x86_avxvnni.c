/* AVX2 kernels with the VEX-encoded VNNI dot products (Alder Lake and later). */
#if defined(__x86_64__) || defined(_M_X64)
#define KTARGET "avx2,fma,f16c,avxvnni"
#define KSET kernels_avxvnni
#define KNAME "avxvnni"
#define KDOT_AVXVNNI
#include "x86_ymm_impl.h"
#endif
