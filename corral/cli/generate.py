"""`corral generate MODEL PROMPT`: print a continuation as it is generated."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a model (no chat template)")
    p.add_argument("model", help="a .gguf file, a Hugging Face folder, or a store name")
    p.add_argument("prompt", help="text to continue")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from corral.core.sampling_params import SamplingParams
    from corral.engine.engine_args import EngineArgs
    from corral.engine.llm_engine import LLMEngine

    params = SamplingParams(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        seed=args.seed, max_tokens=args.max_tokens,
    )
    engine = LLMEngine(EngineArgs(model=args.model, max_model_len=args.max_model_len, max_num_seqs=1,
                                  num_threads=args.threads))
    rid = engine.add_request(args.prompt, params)
    out = sys.stdout
    while engine.has_unfinished():
        for touched in engine.step():
            delta = engine.pop_delta(touched)
            if delta is not None and delta.outputs:
                out.write(delta.outputs[0].text)
                out.flush()
    out.write("\n")
    return 0 if rid else 1
