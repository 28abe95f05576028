//! Typed reading of provider answers that accepts exactly what reading a `serde_json::Value`
//! accepted, without building the tree.
//!
//! The adapters used to parse an answer into a `Value` (a map and a `String` for every object
//! and string in it, most of them never read) and then pick fields out of it, where a field of
//! an unexpected type read as absent. A `#[derive(Deserialize)]` struct would be cheaper but
//! stricter: a wrong type or a repeated key is an error. So each wire type here says what it
//! makes of each kind of JSON value ([`Lenient`]); every other kind is still parsed as a `Value`
//! would parse it (through `deserialize_any`: strings checked as UTF-8, numbers in range, the
//! same depth limit; `serde::de::IgnoredAny` skips without those checks) and then dropped.
//! A repeated key overwrites the field, as the `Value`'s map did: the last one wins.
//!
//! One difference cannot be matched by types: when another crate in the build turns on
//! `serde_json`'s `raw_value` (or `arbitrary_precision`) feature, a `Value` object whose key is
//! one of `serde_json`'s private tokens reads as something else. On such a key the typed
//! reading gives up ([`gave_up`]) and the adapter reads a `Value`, as before.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The prefix of the keys `serde_json` gives a meaning inside a `Value` under some features.
const PRIVATE_KEY: &str = "$serde_json::private::";

/// What a wire type makes of each kind of JSON value. Each kind it does not take is parsed,
/// checked and dropped, and gives `Self::default()`.
pub(crate) trait Lenient<'de>: Default {
    /// A string without escapes, borrowed from the input.
    fn borrowed_str(s: &'de str) -> Self {
        Self::transient_str(s)
    }

    /// A string with escapes, decoded into a scratch buffer that lives only for this call.
    fn transient_str(_: &str) -> Self {
        Self::default()
    }

    /// An integer that fits in a `u64` (what `Value::as_u64` gives).
    fn unsigned(_: u64) -> Self {
        Self::default()
    }

    /// `null`.
    fn null() -> Self {
        Self::default()
    }

    /// A boolean, a negative integer or a number with a fraction or exponent.
    fn other() -> Self {
        Self::default()
    }

    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Read<()>>()?.is_some() {}
        Ok(Self::default())
    }

    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while next_key(&mut map)?.is_some() {
            skip(&mut map)?;
        }
        Ok(Self::default())
    }
}

/// Any value, parsed and dropped.
impl Lenient<'_> for () {}

/// A string, borrowed from the input when it holds no escape.
impl<'de> Lenient<'de> for Option<Cow<'de, str>> {
    fn borrowed_str(s: &'de str) -> Self {
        Some(Cow::Borrowed(s))
    }

    fn transient_str(s: &str) -> Self {
        Some(Cow::Owned(s.to_owned()))
    }
}

impl Lenient<'_> for Option<u64> {
    fn unsigned(n: u64) -> Self {
        Some(n)
    }
}

/// An array's elements, each read as `T`; anything else reads as no elements.
impl<'de, T: Lenient<'de>> Lenient<'de> for Vec<T> {
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Read(v)) = seq.next_element::<Read<T>>()? {
            out.push(v);
        }
        Ok(out)
    }
}

/// An array's elements, each read as `T`; `None` for anything that is not an array.
impl<'de, T: Lenient<'de>> Lenient<'de> for Option<Vec<T>> {
    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Vec::array(seq).map(Some)
    }
}

/// An array's first element read as `T` (the rest parsed and dropped); `None` for an empty
/// array or anything that is not an array.
#[derive(Debug, Default)]
pub(crate) struct First<T>(pub Option<T>);

impl<'de, T: Lenient<'de>> Lenient<'de> for First<T> {
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let first = seq.next_element::<Read<T>>()?.map(|Read(v)| v);
        while seq.next_element::<Read<()>>()?.is_some() {}
        Ok(First(first))
    }
}

/// `None` for `null`, `Some` of `T`'s reading for any other value (`Value::is_null` as the test).
#[derive(Debug, Default)]
pub(crate) struct NotNull<T>(pub Option<T>);

impl<'de, T: Lenient<'de>> Lenient<'de> for NotNull<T> {
    fn borrowed_str(s: &'de str) -> Self {
        NotNull(Some(T::borrowed_str(s)))
    }

    fn transient_str(s: &str) -> Self {
        NotNull(Some(T::transient_str(s)))
    }

    fn unsigned(n: u64) -> Self {
        NotNull(Some(T::unsigned(n)))
    }

    fn null() -> Self {
        NotNull(None)
    }

    fn other() -> Self {
        NotNull(Some(T::other()))
    }

    fn array<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        T::array(seq).map(|v| NotNull(Some(v)))
    }

    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::object(map).map(|v| NotNull(Some(v)))
    }
}

/// `T` read leniently from one JSON value: the `Deserialize` side of [`Lenient`].
#[derive(Debug, Default)]
pub(crate) struct Read<T>(pub T);

impl<'de, T: Lenient<'de>> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ReadVisitor(PhantomData)).map(Read)
    }
}

struct ReadVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for ReadVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        // `-0` arrives here; a `Value` holds it as the unsigned 0.
        Ok(u64::try_from(n).map_or_else(|_| T::other(), T::unsigned))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Ok(T::unsigned(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::other())
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<T, E> {
        Ok(T::borrowed_str(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Ok(T::transient_str(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
}

/// The next key of an object; gives up (see [`gave_up`]) on one of `serde_json`'s private keys.
///
/// Always inlined: it is called for every key of every object read, and once the Anthropic
/// stream's readers shared it with the OpenAI ones, LLVM stopped inlining it (and
/// `serde_json`'s `next_key_seed` into it), which cost the OpenAI stream bench 9 % more
/// instructions; inlined, each reader's loop over keys is one function again.
#[inline(always)]
pub(crate) fn next_key<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    match map.next_key::<Read<Option<Cow<'de, str>>>>()? {
        // Object keys are always strings: `None` here is only the end of the object.
        Some(Read(Some(key))) if key.starts_with(PRIVATE_KEY) => {
            Err(de::Error::custom("serde_json private key"))
        }
        Some(Read(key)) => Ok(Some(key.unwrap_or_default())),
        None => Ok(None),
    }
}

/// The value of the key just read, as `T`.
pub(crate) fn next<'de, T: Lenient<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value::<Read<T>>().map(|Read(v)| v)
}

/// The value of the key just read, parsed and dropped.
pub(crate) fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    next::<(), A>(map)
}

/// Whether a failed typed reading gave up rather than met input that is not JSON: the wire
/// types take every kind of value, so the only data error is [`next_key`]'s. The caller then
/// reads a `Value`, which gives the answer it always gave.
pub(crate) fn gave_up(e: &serde_json::Error) -> bool {
    e.is_data()
}

/// `impl Lenient` for a struct read from a JSON object: each listed key into its field
/// (through `$wrap`, e.g. `Some`, when given), every other member parsed and dropped, a
/// repeated key's last value kept.
macro_rules! lenient_object {
    ($ty:ident $(<$lt:lifetime>)? { $($key:literal => $field:ident $(($wrap:path))?),* $(,)? }) => {
        impl<'de> $crate::lenient::Lenient<'de> for $ty$(<$lt>)? {
            fn object<A: ::serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut v = Self::default();
                while let Some(key) = $crate::lenient::next_key(&mut map)? {
                    match &*key {
                        $($key => v.$field = $($wrap)?($crate::lenient::next(&mut map)?),)*
                        _ => $crate::lenient::skip(&mut map)?,
                    }
                }
                Ok(v)
            }
        }
    };
}
pub(crate) use lenient_object;
