//! Anthropic's Messages answer and stream events as far as the adapter reads them, read
//! straight from the bytes (`crate::lenient`), not through a `Value` of every member: a field
//! of an unexpected type reads as absent, a repeated key's last value wins, unknown members are
//! parsed and dropped. A tool call's `input` in an answer is the one part kept whole, as a
//! `Value`, since it is passed on; in a stream it arrives as `input_json_delta` strings.

use std::borrow::Cow;

use serde::de::MapAccess;
use serde_json::Value;

use crate::lenient::{Lenient, lenient_object, next, next_key, skip};

/// A string field: `None` when absent or not a string.
pub(super) type Str<'a> = Option<Cow<'a, str>>;

#[derive(Debug, Default)]
pub(super) struct Answer<'a> {
    pub model: Str<'a>,
    /// `None` when `content` is absent or not an array; every element otherwise, whatever its
    /// type (one that is not an object reads as a block of no type).
    pub content: Option<Vec<Block<'a>>>,
    pub stop_reason: Str<'a>,
    pub usage: Usage,
}

#[derive(Debug, Default)]
pub(super) struct Block<'a> {
    pub r#type: Str<'a>,
    pub text: Str<'a>,
    pub id: Str<'a>,
    pub name: Str<'a>,
    /// Whatever `input` holds (`null` too); `None` when absent.
    pub input: Option<Value>,
}

/// The `data` of one stream event. Every event type's fields are in the one struct: the
/// event's name comes from the SSE `event:` line when there is one, not from `type`, so which
/// fields are read is known only after the whole `data` is.
#[derive(Debug, Default)]
pub(super) struct Event<'a> {
    pub r#type: Str<'a>,
    /// `message_start`'s message: `Some` whenever the key is present, whatever its value (one
    /// that is not an object reads as an empty one).
    pub message: Option<StartMessage<'a>>,
    pub index: Option<u64>,
    pub content_block: StreamBlock<'a>,
    pub delta: Delta<'a>,
    pub usage: Usage,
    pub error: EventError<'a>,
}

#[derive(Debug, Default)]
pub(super) struct StartMessage<'a> {
    pub model: Str<'a>,
    /// `Some` whenever the key is present, whatever its value (zeros when not an object).
    pub usage: Option<Usage>,
}

/// `content_block_start`'s block; a `tool_use` block's `input` (always `{}` there) is parsed
/// and dropped.
#[derive(Debug, Default)]
pub(super) struct StreamBlock<'a> {
    pub r#type: Str<'a>,
    pub id: Str<'a>,
    pub name: Str<'a>,
    pub text: Str<'a>,
}

/// `content_block_delta`'s delta (`type` with `text` or `partial_json`), or `message_delta`'s
/// (`stop_reason`).
#[derive(Debug, Default)]
pub(super) struct Delta<'a> {
    pub r#type: Str<'a>,
    pub text: Str<'a>,
    pub partial_json: Str<'a>,
    pub stop_reason: Str<'a>,
}

#[derive(Debug, Default)]
pub(super) struct EventError<'a> {
    pub r#type: Str<'a>,
}

#[derive(Debug, Default)]
pub(super) struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

lenient_object!(Answer<'de> { "model" => model, "content" => content, "stop_reason" => stop_reason, "usage" => usage });

impl<'de> Lenient<'de> for Block<'de> {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut v = Self::default();
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                "type" => v.r#type = next(&mut map)?,
                "text" => v.text = next(&mut map)?,
                "id" => v.id = next(&mut map)?,
                "name" => v.name = next(&mut map)?,
                "input" => v.input = Some(map.next_value()?),
                _ => skip(&mut map)?,
            }
        }
        Ok(v)
    }
}

lenient_object!(Usage { "input_tokens" => input_tokens, "output_tokens" => output_tokens });

lenient_object!(Event<'de> { "type" => r#type, "message" => message(Some), "index" => index, "content_block" => content_block, "delta" => delta, "usage" => usage, "error" => error });

lenient_object!(StartMessage<'de> { "model" => model, "usage" => usage(Some) });

lenient_object!(StreamBlock<'de> { "type" => r#type, "id" => id, "name" => name, "text" => text });

lenient_object!(Delta<'de> { "type" => r#type, "text" => text, "partial_json" => partial_json, "stop_reason" => stop_reason });

lenient_object!(EventError<'de> { "type" => r#type });
