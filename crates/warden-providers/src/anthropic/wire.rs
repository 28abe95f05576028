//! Anthropic's Messages answer as far as the adapter reads it, read straight from the bytes
//! (`crate::lenient`), not through a `Value` of every member: a field of an unexpected type
//! reads as absent, a repeated key's last value wins, unknown members are parsed and dropped.
//! A tool call's `input` is the one part kept whole, as a `Value`, since it is passed on.

use std::borrow::Cow;

use serde::de::MapAccess;
use serde_json::Value;

use crate::lenient::{Lenient, next, next_key, skip};

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

#[derive(Debug, Default)]
pub(super) struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl<'de> Lenient<'de> for Answer<'de> {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut v = Self::default();
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                "model" => v.model = next(&mut map)?,
                "content" => v.content = next(&mut map)?,
                "stop_reason" => v.stop_reason = next(&mut map)?,
                "usage" => v.usage = next(&mut map)?,
                _ => skip(&mut map)?,
            }
        }
        Ok(v)
    }
}

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

impl<'de> Lenient<'de> for Usage {
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut v = Self::default();
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                "input_tokens" => v.input_tokens = next(&mut map)?,
                "output_tokens" => v.output_tokens = next(&mut map)?,
                _ => skip(&mut map)?,
            }
        }
        Ok(v)
    }
}
