"""`corral serve [MODEL...]`: the OpenAI- and Ollama-compatible HTTP server."""
from __future__ import annotations

import argparse
import sys
import time

from corral import envs
from corral.errors import ValidationError

GIB = 1 << 30


def split_host(value: str, default_port: int = 11435) -> tuple[str, int]:
    """"host[:port]" (as CORRAL_HOST holds it, scheme allowed) -> (host, port)."""
    value = value.split("://", 1)[-1].rstrip("/")
    if value.startswith("["):  # [::1]:port
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        return host or "127.0.0.1", int(port) if port else default_port
    except ValueError:
        raise ValidationError("host", f"bad port in {value!r}; use HOST:PORT") from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve models over OpenAI- and Ollama-compatible HTTP APIs",
                              description="Serve models. Models named here load at start; any other "
                                          "model the store knows (or any model path) loads on first request.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="store names or .gguf/model-folder paths to load now (default: the default model)")
    p.add_argument("--host", default=None, help="address to bind (default from CORRAL_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default from CORRAL_HOST, else 11435)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default CORRAL_API_KEY)")
    p.add_argument("--allow-paths", action="store_true",
                   help="let requests name models by filesystem path even when listening beyond loopback "
                        "(on 127.0.0.1/localhost paths are always allowed)")
    p.add_argument("--keep-alive", default="5m", help="how long an idle model stays loaded (e.g. 30s, 5m, -1)")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                   help="unload idle models when loaded models would exceed this many GiB")
    p.add_argument("--max-body-size", default=None, metavar="SIZE",
                   help="largest request body accepted, e.g. 16MiB (default CORRAL_MAX_BODY_SIZE, else 16MiB)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length per model (default: the model's)")
    p.add_argument("--kv-cache-memory", type=float, default=None, metavar="GIB", help="KV cache size per model")
    add_kv_cache_dtype_argument(p)
    add_device_arguments(p)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def add_kv_cache_dtype_argument(p: argparse.ArgumentParser) -> None:
    """--kv-cache-dtype, for the commands that start engines (serve, bench)."""
    from corral.engine.engine_args import EngineArgs  # no torch

    p.add_argument("--kv-cache-dtype", choices=EngineArgs.KV_CACHE_DTYPES, default="auto",
                   help="KV cache element type (auto: float16 for quantized weights, else float32)")


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """--device, --dtype, --attention-backend, --gpu-memory-utilization and --enforce-eager, for
    the commands that start engines (serve, bench); left unset, the engine decides."""
    p.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--dtype", default=None, choices=("auto", "bfloat16", "float16", "float32"),
                   help="weights and activations (auto: float32 on the CPU, bfloat16 on a GPU)")
    p.add_argument("--attention-backend", default=None, choices=("auto", "cpu", "torch", "triton"),
                   help="auto: cpu (C kernels) on the CPU, triton on CUDA; torch runs anywhere")
    p.add_argument("--gpu-memory-utilization", type=float, default=None, metavar="FRACTION",
                   help="on CUDA: share of the GPU's memory the weights and KV cache may fill (default 0.9)")
    p.add_argument("--enforce-eager", action="store_true", help="on CUDA: run decode steps without CUDA graphs")


def device_kwargs(args: argparse.Namespace) -> dict:
    """The EngineArgs fields of add_device_arguments' flags that were given."""
    kwargs = {}
    for flag in ("device", "dtype", "attention_backend", "gpu_memory_utilization"):
        if getattr(args, flag, None) is not None:
            kwargs[flag] = getattr(args, flag)
    if getattr(args, "enforce_eager", False):
        kwargs["enforce_eager"] = True
    return kwargs


def engine_kwargs(args: argparse.Namespace) -> dict:
    kwargs = {}
    if args.max_model_len:
        kwargs["max_model_len"] = args.max_model_len
    if args.kv_cache_memory:
        kwargs["kv_cache_memory"] = int(args.kv_cache_memory * GIB)
    if getattr(args, "kv_cache_dtype", "auto") != "auto":
        kwargs["kv_cache_dtype"] = args.kv_cache_dtype
    kwargs.update(device_kwargs(args))
    if envs.num_threads():
        kwargs["num_threads"] = envs.num_threads()
    return kwargs


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from corral.cli.run import default_model_name, describe
    from corral.server.app import create_app
    from corral.server.generate_request import parse_keep_alive
    from corral.server.model_source import default_source, is_loopback
    from corral.server.request_body import DEFAULT_MAX_BODY_SIZE, parse_size

    host, port = split_host(envs.host())
    host, port = args.host or host, args.port or port
    keep_alive = parse_keep_alive(args.keep_alive)
    models = args.models or [default_model_name()]
    print(f"Loading {', '.join(describe(m) for m in models)} ...", file=sys.stderr, flush=True)
    started = time.monotonic()

    def ready(state) -> None:
        print(f"Loaded in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    source = default_source(allow_paths=args.allow_paths or is_loopback(host), operator_paths=tuple(models))
    body_size = args.max_body_size or envs.max_body_size()
    app = create_app(
        models,
        on_ready=ready,
        source=source,
        api_key=args.api_key or envs.api_key(),
        memory_budget=int(args.memory_budget * GIB) if args.memory_budget else None,
        default_keep_alive=keep_alive if keep_alive is not None else 300.0,
        engine_kwargs=engine_kwargs(args),
        max_body_size=parse_size(body_size) if body_size else DEFAULT_MAX_BODY_SIZE,
    )
    uvicorn.run(app, host=host, port=port, log_level=args.log_level)
    return 0
