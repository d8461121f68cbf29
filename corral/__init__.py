"""corral: run open-weight language models locally and serve them to many users at once."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["LLM", "SamplingParams", "StructuredOutputsParams", "RequestOutput", "CompletionOutput", "__version__"]


def __getattr__(name: str):
    # Lazy: `import corral` stays cheap (no torch) for the CLI client commands.
    if name == "LLM":
        from corral.engine.llm import LLM

        return LLM
    if name == "SamplingParams":
        from corral.core.sampling_params import SamplingParams

        return SamplingParams
    if name == "StructuredOutputsParams":
        from corral.core.structured_outputs import StructuredOutputsParams

        return StructuredOutputsParams
    if name in ("RequestOutput", "CompletionOutput"):
        from corral.core import outputs

        return getattr(outputs, name)
    raise AttributeError(name)
