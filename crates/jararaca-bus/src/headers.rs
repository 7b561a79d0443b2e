//! Message headers as AMQP field values, not HTTP headers.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The header that counts how many times a message was retried (the reference's name).
pub const RETRY_COUNT: &str = "x-retry-count";
/// The header that carries the error of the last failed attempt (the reference's name).
pub const LAST_ERROR: &str = "x-last-error";
/// Why the worker dead-lettered a message: `undecodable`, `retries-exhausted`, `rejected`.
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// The queue a message was consumed from when the worker dead-lettered it.
pub const DEAD_LETTER_QUEUE: &str = "x-dead-letter-queue";
/// Set on messages put back on their queue by the dead-letter tools (the reference's name).
pub const REQUEUED_FROM_DLQ: &str = "x-requeued-from-dlq";

/// The trace-context headers that travel from a handled message to the messages it publishes.
pub const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// One AMQP header value.
///
/// Python services read headers as primitive values (`int`, `str`, `bool`, `float`, `None`);
/// RabbitMQ adds tables and arrays (the `x-death` list). Every AMQP integer type reads as
/// [`Int`](Self::Int) and timestamps too.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// `void`.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any AMQP integer or timestamp.
    Int(i64),
    /// A float or double.
    Float(f64),
    /// A short or long string.
    String(String),
    /// A byte array.
    Bytes(Vec<u8>),
    /// A field array.
    Array(Vec<HeaderValue>),
    /// A nested field table.
    Table(BTreeMap<String, HeaderValue>),
}

impl HeaderValue {
    /// The value as text: strings as they are, numbers and booleans formatted; `None` for
    /// nulls, bytes, arrays and tables.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::String(s) => Some(Cow::Borrowed(s)),
            Self::Int(i) => Some(Cow::Owned(i.to_string())),
            Self::Float(f) => Some(Cow::Owned(f.to_string())),
            Self::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }

    /// The value as an integer, also from a decimal string (as some clients send numbers).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::String(s) => s.trim().parse().ok(),
            Self::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    /// Whether Python services can read the value as a header of their own (the reference
    /// copies only primitive headers into retries and delayed messages).
    pub fn is_primitive(&self) -> bool {
        !matches!(self, Self::Array(_) | Self::Table(_) | Self::Bytes(_))
    }

    /// The JSON form used in the delayed-message store.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => (*b).into(),
            Self::Int(i) => (*i).into(),
            Self::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Self::String(s) => s.clone().into(),
            Self::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
            Self::Array(a) => a.iter().map(Self::to_json).collect(),
            Self::Table(t) => t
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// Reads the JSON form used in the delayed-message store.
    pub fn from_json(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Self::String(s.clone()),
            serde_json::Value::Array(a) => Self::Array(a.iter().map(Self::from_json).collect()),
            serde_json::Value::Object(o) => Self::Table(
                o.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_string())
    }
}

impl From<String> for HeaderValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for HeaderValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for HeaderValue {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<bool> for HeaderValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<f64> for HeaderValue {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

/// The headers of a message: names matched exactly, as AMQP defines.
pub type Headers = BTreeMap<String, HeaderValue>;

/// The retry count a message carries (`x-retry-count`, 0 when absent or unreadable).
pub fn retry_count(headers: &Headers) -> u32 {
    headers
        .get(RETRY_COUNT)
        .and_then(HeaderValue::as_int)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// The queue a dead-lettered message died in: RabbitMQ's `x-death[0].queue`, else the
/// worker's [`DEAD_LETTER_QUEUE`] header.
pub fn death_queue(headers: &Headers) -> Option<&str> {
    let from_x_death = match headers.get("x-death") {
        Some(HeaderValue::Array(deaths)) => deaths.iter().find_map(|death| match death {
            HeaderValue::Table(t) => match t.get("queue") {
                Some(HeaderValue::String(q)) => Some(q.as_str()),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    };
    from_x_death.or_else(|| match headers.get(DEAD_LETTER_QUEUE) {
        Some(HeaderValue::String(q)) => Some(q.as_str()),
        _ => None,
    })
}

#[cfg(feature = "amqp")]
pub(crate) mod amqp {
    //! Conversions to and from lapin's field tables.

    use lapin::types::{AMQPValue, ByteArray, FieldArray, FieldTable, LongString, ShortString};

    use super::{HeaderValue, Headers};

    pub(crate) fn from_table(table: &FieldTable) -> Headers {
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), from_value(v)))
            .collect()
    }

    fn from_value(value: &AMQPValue) -> HeaderValue {
        match value {
            AMQPValue::Boolean(b) => HeaderValue::Bool(*b),
            AMQPValue::ShortShortInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortShortUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongLongInt(i) => HeaderValue::Int(*i),
            AMQPValue::Timestamp(t) => HeaderValue::Int(i64::try_from(*t).unwrap_or(i64::MAX)),
            AMQPValue::Float(f) => HeaderValue::Float(f64::from(*f)),
            AMQPValue::Double(f) => HeaderValue::Float(*f),
            AMQPValue::DecimalValue(d) => {
                HeaderValue::Float(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
            }
            AMQPValue::ShortString(s) => HeaderValue::String(s.to_string()),
            AMQPValue::LongString(s) => {
                HeaderValue::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            AMQPValue::ByteArray(b) => HeaderValue::Bytes(b.as_slice().to_vec()),
            AMQPValue::FieldArray(a) => {
                HeaderValue::Array(a.as_slice().iter().map(from_value).collect())
            }
            AMQPValue::FieldTable(t) => HeaderValue::Table(from_table(t)),
            AMQPValue::Void => HeaderValue::Null,
        }
    }

    pub(crate) fn to_table(headers: &Headers) -> FieldTable {
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert(ShortString::from(k.as_str()), to_value(v));
        }
        table
    }

    /// Encodes as Python's pamqp does, so both kinds of publisher put the same bytes on the
    /// wire: integers in the smallest signed type, strings as long strings.
    fn to_value(value: &HeaderValue) -> AMQPValue {
        match value {
            HeaderValue::Null => AMQPValue::Void,
            HeaderValue::Bool(b) => AMQPValue::Boolean(*b),
            HeaderValue::Int(i) => {
                if let Ok(v) = i8::try_from(*i) {
                    AMQPValue::ShortShortInt(v)
                } else if let Ok(v) = i16::try_from(*i) {
                    AMQPValue::ShortInt(v)
                } else if let Ok(v) = i32::try_from(*i) {
                    AMQPValue::LongInt(v)
                } else {
                    AMQPValue::LongLongInt(*i)
                }
            }
            HeaderValue::Float(f) => AMQPValue::Double(*f),
            HeaderValue::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            HeaderValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.clone())),
            HeaderValue::Array(a) => {
                AMQPValue::FieldArray(FieldArray::from(a.iter().map(to_value).collect::<Vec<_>>()))
            }
            HeaderValue::Table(t) => AMQPValue::FieldTable(to_table(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_count_reads_any_integer_and_defaults_to_zero() {
        let mut headers = Headers::new();
        assert_eq!(retry_count(&headers), 0);
        headers.insert(RETRY_COUNT.into(), HeaderValue::Int(3));
        assert_eq!(retry_count(&headers), 3);
        headers.insert(RETRY_COUNT.into(), "4".into());
        assert_eq!(retry_count(&headers), 4);
        headers.insert(RETRY_COUNT.into(), HeaderValue::Int(-1));
        assert_eq!(retry_count(&headers), 0);
    }

    #[test]
    fn death_queue_prefers_x_death() {
        let mut headers = Headers::new();
        headers.insert(DEAD_LETTER_QUEUE.into(), "from-worker".into());
        assert_eq!(death_queue(&headers), Some("from-worker"));
        let death = BTreeMap::from([("queue".to_string(), HeaderValue::from("orders.q"))]);
        headers.insert(
            "x-death".into(),
            HeaderValue::Array(vec![HeaderValue::Table(death)]),
        );
        assert_eq!(death_queue(&headers), Some("orders.q"));
    }

    #[test]
    fn json_round_trip_keeps_primitives() {
        for value in [
            HeaderValue::Null,
            HeaderValue::Bool(true),
            HeaderValue::Int(-7),
            HeaderValue::Float(1.5),
            HeaderValue::from("flow.id=abc"),
        ] {
            assert_eq!(HeaderValue::from_json(&value.to_json()), value);
        }
    }
}
