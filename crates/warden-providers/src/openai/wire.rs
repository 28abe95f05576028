//! OpenAI's chat completion and stream chunk as far as the adapter reads them, read straight
//! from the bytes (`crate::lenient`): a 1 KiB completion used to become a `Value` of a dozen
//! maps and strings, most of them never read. A field of an unexpected type reads as absent,
//! a repeated key's last value wins, and unknown fields are parsed and dropped, as with the
//! `Value`; strings are borrowed from the input unless they hold escapes.

use std::borrow::Cow;

use crate::lenient::{First, NotNull, lenient_object};

/// A string field: `None` when absent or not a string.
pub(super) type Str<'a> = Option<Cow<'a, str>>;

/// A non-streaming chat completion.
#[derive(Debug, Default)]
pub(super) struct Completion<'a> {
    pub model: Str<'a>,
    /// `choices[0]`: `None` when `choices` is absent, empty or not an array.
    pub choice: Option<Choice<'a>>,
    pub usage: Usage,
}

#[derive(Debug, Default)]
pub(super) struct Choice<'a> {
    /// `None` when there is no `message` key (or the choice is not an object); a `message`
    /// that is not an object reads as an empty one.
    pub message: Option<Message<'a>>,
    pub finish_reason: Str<'a>,
}

/// A completion's `message`, or a chunk's `delta`.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    pub content: Str<'a>,
    /// Every element of `tool_calls`, whatever its type (one that is not an object reads as
    /// an empty call); none when `tool_calls` is not an array.
    pub tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct ToolCall<'a> {
    /// Streams only.
    pub index: Option<u64>,
    pub id: Str<'a>,
    pub function: Function<'a>,
}

#[derive(Debug, Default)]
pub(super) struct Function<'a> {
    pub name: Str<'a>,
    pub arguments: Str<'a>,
}

#[derive(Debug, Default)]
pub(super) struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// One `data:` chunk of a stream.
#[derive(Debug, Default)]
pub(super) struct Chunk<'a> {
    /// `Some` whenever the chunk has an `error` key, whatever its value (`null` too).
    pub error: Option<ChunkError<'a>>,
    pub model: Str<'a>,
    /// `Some` when `usage` is present and not `null` (zeros when it is not an object).
    pub usage: NotNull<Usage>,
    pub choices: Vec<DeltaChoice<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct ChunkError<'a> {
    /// `Some` when the key is present, whatever its value: a present `code` hides `type`.
    pub code: Option<Str<'a>>,
    pub r#type: Str<'a>,
}

#[derive(Debug, Default)]
pub(super) struct DeltaChoice<'a> {
    pub delta: Message<'a>,
    pub finish_reason: Str<'a>,
}

lenient_object!(Completion<'de> { "model" => model, "choices" => choice(first), "usage" => usage });
lenient_object!(Choice<'de> { "message" => message(Some), "finish_reason" => finish_reason });
lenient_object!(Message<'de> { "content" => content, "tool_calls" => tool_calls });
lenient_object!(ToolCall<'de> { "index" => index, "id" => id, "function" => function });
lenient_object!(Function<'de> { "name" => name, "arguments" => arguments });
lenient_object!(Usage { "prompt_tokens" => prompt_tokens, "completion_tokens" => completion_tokens });
lenient_object!(Chunk<'de> { "error" => error(Some), "model" => model, "usage" => usage, "choices" => choices });
lenient_object!(ChunkError<'de> { "code" => code(Some), "type" => r#type });
lenient_object!(DeltaChoice<'de> { "delta" => delta, "finish_reason" => finish_reason });

/// `choices[0]`.
fn first<T>(f: First<T>) -> Option<T> {
    f.0
}
