"""Pure translations between the OpenAI API and corral's internal types.

Requests: `chat_to_generate`, `completion_to_generate` (one GenerateRequest per prompt).
Responses: whole objects from accumulated completions, and stream chunks from engine deltas.
Modelfile defaults (Ollama option names) apply where the request leaves a field unset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.core.model_options import merge_options, options_from_fields, sampling_params
from corral.core.outputs import CompletionOutput, RequestOutput
from corral.core.sampling_params import MAX_TOP_LOGPROBS, SamplingParams
from corral.errors import ValidationError
from corral.server import openai_protocol as oa
from corral.server.generate_request import GenerateRequest, ModelDefaults
from corral.server.chat_reply import ReplyPiece, ReplyPlan, ReplyShaper, whole_reply
from corral.server.logprob_convert import chat_logprobs, completion_logprobs
from corral.server.structured_request import openai_constraint
from corral.server.unknown_fields import reject_unknown_openai

MAX_COMPLETIONS_PER_REQUEST = 2048  # prompts times n, for one /v1/completions request

@dataclass(frozen=True)
class ResponseMeta:
    """What every object of one response shares: the same id throughout a stream."""

    id: str
    created: int
    model: str


def _sampling(req: oa.SamplingFields, defaults: ModelDefaults, max_tokens: int | None,
              logprobs: int | None) -> SamplingParams:
    """The model's defaults under the fields the request set; the Modelfile's num_predict is the
    limit when the request sets none."""
    given = options_from_fields({
        "temperature": req.temperature, "top_p": req.top_p, "top_k": req.top_k, "min_p": req.min_p,
        "seed": req.seed, "presence_penalty": req.presence_penalty, "frequency_penalty": req.frequency_penalty,
        "repetition_penalty": req.repetition_penalty, "stop": req.stop,
    })
    limit = {"max_tokens": max_tokens} if max_tokens is not None else {}
    params = sampling_params(
        merge_options(defaults.options, given), **limit,
        n=req.n, min_tokens=req.min_tokens, ignore_eos=req.ignore_eos, stop_token_ids=req.stop_token_ids or [],
        logprobs=logprobs, skip_special_tokens=req.skip_special_tokens,
        include_stop_str_in_output=req.include_stop_str_in_output,
    )
    params.structured_outputs = openai_constraint(req)
    return params


def _message_dict(message: oa.ChatMessage) -> dict[str, Any]:
    """An OpenAI message as the chat template expects it (content parts joined into text)."""
    data = message.model_dump(exclude_none=True)
    if isinstance(message.content, list):
        texts = []
        for part in message.content:
            if part.get("type") != "text":
                raise ValidationError("messages", f"content parts of type {part.get('type')!r} are not supported")
            texts.append(str(part.get("text", "")))
        data["content"] = "".join(texts)
    elif message.content is None:
        data["content"] = ""
    return data


def chat_to_generate(req: oa.ChatCompletionRequest, defaults: ModelDefaults = ModelDefaults()) -> GenerateRequest:
    reject_unknown_openai(req)
    if not req.messages:
        raise ValidationError("messages", "at least one message is required")
    if req.top_logprobs is not None and not req.logprobs:
        raise ValidationError("top_logprobs", "needs logprobs set to true")
    if req.top_logprobs is not None and not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
        raise ValidationError("top_logprobs", f"must be in [0, {MAX_TOP_LOGPROBS}], got {req.top_logprobs}")
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    logprobs = (req.top_logprobs or 0) if req.logprobs else None
    return GenerateRequest(
        model=req.model,
        params=_sampling(req, defaults, max_tokens, logprobs),
        messages=[*(dict(m) for m in defaults.messages), *(_message_dict(m) for m in req.messages)],
        system=defaults.system,
        tools=req.tools,
        tool_choice=req.tool_choice,
        parallel_tool_calls=req.parallel_tool_calls,
        chat_template_kwargs=dict(req.chat_template_kwargs or {}),
        thinking_token_budget=req.thinking_token_budget,
    )


def completion_prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """The prompts of a completions request: a string, strings, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise ValidationError("prompt", "must not be empty")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    return [p if isinstance(p, str) else list(p) for p in prompt]


def completion_to_generate(req: oa.CompletionRequest, defaults: ModelDefaults = ModelDefaults()) -> list[GenerateRequest]:
    reject_unknown_openai(req)
    if req.suffix:
        raise ValidationError("suffix", "is not supported")
    if req.echo:
        raise ValidationError("echo", "is not supported")
    params = _sampling(req, defaults, req.max_tokens, req.logprobs)
    prompts = completion_prompts(req.prompt)
    if len(prompts) * params.n > MAX_COMPLETIONS_PER_REQUEST:
        raise ValidationError("prompt", f"{len(prompts)} prompts with n={params.n} ask for more than "
                                        f"{MAX_COMPLETIONS_PER_REQUEST} completions in one request; split it")
    return [GenerateRequest(model=req.model, params=params, prompt=p, raw=True) for p in prompts]


def error_reason(out: CompletionOutput) -> str | None:
    """What went wrong, for a choice that ended with finish_reason "error" (a grammar dead end)."""
    return str(out.stop_reason) if out.finish_reason == "error" and out.stop_reason is not None else None


def usage(prompt_tokens: int, completion_tokens: int) -> oa.Usage:
    return oa.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens)


def chat_completion(meta: ResponseMeta, completions: list[CompletionOutput], top: int | None,
                    use: oa.Usage, reply: ReplyPlan = ReplyPlan()) -> oa.ChatCompletion:
    """The whole chat.completion object; `top` is the request's top_logprobs (None: no logprobs);
    `reply` says how to read thinking and tool calls out of the text."""
    choices = []
    for c in completions:
        message, finish_reason = oa.ResponseMessage(content=c.text), c.finish_reason
        if reply.shapes:
            whole, shaper = whole_reply(reply, c.text)
            calls = [oa.ToolCall(id=cid, function=oa.FunctionCall(name=call.name, arguments=call.arguments_json))
                     for cid, call in whole.calls]
            message = oa.ResponseMessage(content=whole.content, reasoning_content=whole.reasoning,
                                         tool_calls=calls or None)
            finish_reason = shaper.finish_reason(c.finish_reason)
        choices.append(oa.ChatChoice(index=c.index, message=message, finish_reason=finish_reason,
                                     stop_reason=error_reason(c),
                                     logprobs=chat_logprobs(c.logprobs, c.token_ids, top) if top is not None else None))
    return oa.ChatCompletion(id=meta.id, created=meta.created, model=meta.model, choices=choices, usage=use)


def chat_role_chunks(meta: ResponseMeta, n: int) -> list[oa.ChatCompletionChunk]:
    """The first chunks of a stream: the assistant role (and empty content), one per choice."""
    return [
        oa.ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model,
                               choices=[oa.ChatChunkChoice(index=i, delta=oa.DeltaMessage(role="assistant", content=""))])
        for i in range(n)
    ]


def chat_chunks(meta: ResponseMeta, delta: RequestOutput, top: int | None) -> list[oa.ChatCompletionChunk]:
    """Chunks for one engine delta: new content per changed choice, then an empty-delta chunk
    carrying finish_reason for each choice that ended (as OpenAI sends them)."""
    chunks = []
    for out in delta.outputs:
        if out.text or (top is not None and out.token_ids):
            lp = chat_logprobs(out.logprobs, out.token_ids, top) if top is not None else None
            choice = oa.ChatChunkChoice(index=out.index, delta=oa.DeltaMessage(content=out.text), logprobs=lp)
            chunks.append(oa.ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model, choices=[choice]))
        if out.finish_reason is not None:
            choice = oa.ChatChunkChoice(index=out.index, delta=oa.DeltaMessage(), finish_reason=out.finish_reason,
                                        stop_reason=error_reason(out))
            chunks.append(oa.ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model, choices=[choice]))
    return chunks


class ShapedChatChunks:
    """Stream chunks when the reply has thinking or tool calls to take apart: one shaper per
    choice; content and reasoning flow as they come, each tool call is sent whole (id, name and
    arguments in one delta), and the last chunk of a choice says "tool_calls" when it called.

    With `top` set (the request asked for logprobs), every sampled token's logprob is sent once,
    in order: on the first chunk that goes out after its token was generated (a token whose text
    is held back, inside a call being assembled, waits for the call's chunk), and what is left at
    the end on the chunk that carries finish_reason."""

    def __init__(self, meta: ResponseMeta, reply: ReplyPlan, top: int | None = None):
        self.meta, self.reply, self.top = meta, reply, top
        self.shapers: dict[int, ReplyShaper] = {}
        self._pending: dict[int, list[oa.TokenLogprob]] = {}  # choice -> logprobs not sent yet

    def chunks(self, delta: RequestOutput) -> list[oa.ChatCompletionChunk]:
        out = []
        for c in delta.outputs:
            shaper = self.shapers.setdefault(c.index, ReplyShaper(self.reply))
            if self.top is not None and c.token_ids:
                self._pending.setdefault(c.index, []).extend(chat_logprobs(c.logprobs, c.token_ids, self.top).content)
            pieces = shaper.feed(c.text) if c.text else []
            if c.finish_reason is not None:
                pieces += shaper.finish()
            out += [self._chunk(c.index, self._delta(p), self._take_logprobs(c.index)) for p in pieces]
            if c.finish_reason is not None:
                choice = oa.ChatChunkChoice(index=c.index, delta=oa.DeltaMessage(),
                                            finish_reason=shaper.finish_reason(c.finish_reason),
                                            stop_reason=error_reason(c), logprobs=self._take_logprobs(c.index))
                out.append(oa.ChatCompletionChunk(id=self.meta.id, created=self.meta.created, model=self.meta.model,
                                                  choices=[choice]))
        return out

    def _take_logprobs(self, index: int) -> oa.ChatLogprobs | None:
        pending = self._pending.pop(index, None)
        return oa.ChatLogprobs(content=pending) if pending else None

    @staticmethod
    def _delta(p: ReplyPiece) -> oa.DeltaMessage:
        if p.call is not None:
            fn = oa.FunctionCallDelta(name=p.call.name, arguments=p.call.arguments_json)
            return oa.DeltaMessage(tool_calls=[oa.ToolCallDelta(index=p.call_index, id=p.call_id, type="function",
                                                                function=fn)])
        if p.reasoning:
            return oa.DeltaMessage(reasoning_content=p.reasoning)
        return oa.DeltaMessage(content=p.content)

    def _chunk(self, index: int, delta: oa.DeltaMessage, logprobs: oa.ChatLogprobs | None) -> oa.ChatCompletionChunk:
        return oa.ChatCompletionChunk(id=self.meta.id, created=self.meta.created, model=self.meta.model,
                                      choices=[oa.ChatChunkChoice(index=index, delta=delta, logprobs=logprobs)])


def chat_usage_chunk(meta: ResponseMeta, use: oa.Usage, timings: oa.Timings | None = None) -> oa.ChatCompletionChunk:
    return oa.ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model, choices=[], usage=use,
                                  timings=timings)


def completion_choice(index: int, out: CompletionOutput, top: int | None, text_offset: int) -> oa.CompletionChoice:
    lp = completion_logprobs(out.logprobs, out.token_ids, top, text_offset) if top is not None else None
    return oa.CompletionChoice(index=index, text=out.text, logprobs=lp, finish_reason=out.finish_reason,
                               stop_reason=error_reason(out))


def completion(meta: ResponseMeta, choices: list[oa.CompletionChoice], use: oa.Usage | None) -> oa.Completion:
    """A text_completion object: the whole response, or one stream chunk when `use` is None."""
    return oa.Completion(id=meta.id, created=meta.created, model=meta.model, choices=choices, usage=use)
