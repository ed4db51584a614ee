"""Request and response bodies of the OpenAI-compatible routes, with OpenAI's field names.

They are pydantic models so that FastAPI validates requests (a bad body is a 422) and the
OpenAPI document describes every field. Unknown request fields (``user``, ``logit_bias``...)
are ignored, as OpenAI-compatible servers commonly do, so existing clients keep working.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STOPS = 16
MAX_INPUTS = 2048  # prompts or embedding inputs in one request


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(BaseModel):
    """A text part of a message's content (images and audio are not served)."""

    type: Literal["text"] = "text"
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


Stop = str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None


class _Sampling(_Request):
    model: str = Field(min_length=1, description="A name from GET /v1/models.")
    max_tokens: int | None = Field(
        None, ge=1, description="New tokens at most; above the server's cap is a 400."
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="0 is greedy (deterministic); default 1."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling; default 1.")
    top_k: int | None = Field(None, ge=0, description="Extension: keep the k likeliest (0 off).")
    stop: Stop = Field(None, description="Up to 16 strings that end the reply (not included).")
    seed: int | None = Field(None, description="Makes sampling repeatable.")
    n: int | None = Field(None, ge=1, description="Only 1 is served.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(
        max_length=4096, description="The conversation so far; at least one message."
    )
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens.")


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description="One prompt, or a list: one choice each."
    )


class EmbeddingRequest(_Request):
    model: str = Field(min_length=1)
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="Must be the model's own size.")


# -- responses ----------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


SSE = {"text/event-stream": {"schema": {"type": "string"}}}
