"""Builds corral's one C extension, the CPU kernels (corral/kernels/csrc): quantized matmul, paged
decode attention and small fused ops.

Everything else about the package is in pyproject.toml. The extension needs only a C11 compiler:
no torch or numpy headers, so the isolated build environment stays setuptools + wheel. It is
optional: when it cannot be compiled the package still installs and falls back to dense weights
and torch attention.
"""
from __future__ import annotations

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = ["module.c", "dispatch.c", "scalar.c", "x86_avx2.c", "x86_avxvnni.c", "x86_avx512.c", "ops.c",
           "attention.c", "attention_avx2.c", "attention_avx512.c", "float_act.c", "decode_layers.c", "moe.c"]


class BuildExtWithOpenMP(build_ext):
    """Compiles with OpenMP threads when the compiler has them, without otherwise."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            base = ["/O2"]
        else:
            # No -march: ISA-specific code is selected per function (target attributes) at run time.
            base = ["-O3", "-std=c11", "-fno-strict-aliasing"]
        for ext in self.extensions:
            ext.extra_compile_args = base + ["-fopenmp"]
            ext.extra_link_args = ["-fopenmp"]
        try:
            super().build_extensions()
        except Exception as e:  # noqa: BLE001 - any compiler failure: retry single-threaded
            self.announce(f"building with OpenMP failed ({e}); building without threads", level=3)
            for ext in self.extensions:
                ext.extra_compile_args = base
                ext.extra_link_args = []
            super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "corral.kernels._qmatmul",
            sources=[f"corral/kernels/csrc/{name}" for name in SOURCES],
            depends=["corral/kernels/csrc/qtypes.h", "corral/kernels/csrc/dispatch.h",
                     "corral/kernels/csrc/x86_ymm_impl.h", "corral/kernels/csrc/ops.h",
                     "corral/kernels/csrc/attention.h", "corral/kernels/csrc/attention_pair.h",
                     "corral/kernels/csrc/exp_cephes.h", "corral/kernels/csrc/float_act.h",
                     "corral/kernels/csrc/decode_layers.h", "corral/kernels/csrc/moe.h",
                     "corral/kernels/csrc/work_shares.h"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
