"""When a request stops, decided on token ids (stop strings are found above, on text)."""
from __future__ import annotations

from corral.core.request import Request


def check_stop(request: Request, max_total_tokens: int) -> tuple[str, int | None] | None:
    """(finish_reason, stop_reason) after the request's newest token, or None to go on.

    A stop token wins over a length limit reached by the same token. EOS (unless `ignore_eos`)
    and `stop_token_ids` count only once `min_tokens` tokens were generated.
    `max_total_tokens` bounds prompt plus output (the model's context and the KV cache).
    """
    params = request.sampling_params
    last = request.output_token_ids[-1]
    if request.num_output_tokens >= params.min_tokens:
        if last in request.eos_token_ids and not params.ignore_eos:
            return "stop", None
        if last in params.stop_token_ids:
            return "stop", last
    if params.max_tokens is not None and request.num_output_tokens >= params.max_tokens:
        return "length", None
    if request.num_tokens >= max_total_tokens:
        return "length", None
    return None
