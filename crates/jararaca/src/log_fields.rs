//! The text log's field formatter: a value cannot forge a log line or drive the terminal.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The most characters of one field value written; the rest is cut and counted.
const MAX_VALUE_CHARS: usize = 2048;

/// Writes fields as `name=value` separated by spaces (the event's message bare), as the
/// default formatter does, but with every control character of a value escaped (`\n`, `\r`,
/// `\t`, `\u{1b}`, …, and the bidirectional overrides), so user input logged as a field stays
/// on its line and cannot colour or move the terminal, and with long values truncated.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SafeFields;

impl<'writer> FormatFields<'writer> for SafeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = SafeVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct SafeVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for SafeVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // `log` records carry their metadata as fields the formatter shows elsewhere.
        if name.starts_with("log.") {
            return;
        }
        let text = format!("{value:?}");
        self.result = (|| {
            if !self.first {
                self.writer.write_char(' ')?;
            }
            if name != "message" {
                write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
            }
            escape(&text, &mut self.writer)
        })();
        self.first = false;
    }
}

/// Writes `text` with its control characters escaped, cut after [`MAX_VALUE_CHARS`].
fn escape(text: &str, out: &mut impl fmt::Write) -> fmt::Result {
    for (count, (at, c)) in text.char_indices().enumerate() {
        if count == MAX_VALUE_CHARS {
            return write!(out, "…({} more bytes)", text.len() - at);
        }
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                write!(out, "\\u{{{:x}}}", u32::from(c))?;
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(SafeFields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_field_value_cannot_forge_a_line_or_drive_the_terminal() {
        let title = "buy milk\n2026-12-01T00:00:00Z  INFO forged: admin logged in\x1b[2J\u{202e}";
        let out = logged(|| tracing::info!(title = %title, id = 7, "task created"));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(
                r"task created title=buy milk\n2026-12-01T00:00:00Z  INFO forged: admin logged in\u{1b}[2J\u{202e} id=7"
            ),
            "{out}"
        );
        assert!(!out.contains('\x1b'), "{out}");
    }

    #[test]
    fn long_values_are_cut_and_counted() {
        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        let out = logged(|| tracing::info!(body = %long, "received"));
        assert!(out.contains(&format!(
            "body={}…(10 more bytes)",
            "x".repeat(MAX_VALUE_CHARS)
        )));
    }

    #[test]
    fn the_message_itself_is_escaped_too() {
        let name = "a\r\nb";
        let out = logged(|| tracing::warn!("no handler named {name}"));
        assert!(out.contains(r"no handler named a\r\nb"), "{out}");
        assert_eq!(out.lines().count(), 1);
    }
}
