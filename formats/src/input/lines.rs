//! Why a line of a text input is bad, in words a user can act on: not UTF-8, not one JSON
//! object, not the header's number of CSV fields, a quoted field that spans lines or is never
//! closed. Each check finds the first bad line of a run of lines (its index in the run) and, where
//! it can, the column: a byte column in JSONL, the column's name in CSV.

use crate::FormatError;
use std::path::Path;

/// What is wrong with one line, and where in it when known.
#[derive(Debug, PartialEq)]
pub(super) struct Fault {
    pub column: Option<String>,
    pub reason: String,
}

impl Fault {
    pub(super) fn new(reason: impl Into<String>) -> Fault {
        Fault {
            column: None,
            reason: reason.into(),
        }
    }

    /// The error for this fault at `line` (1-based, in the file) of `path`.
    pub(super) fn at(self, path: &Path, line: u64) -> FormatError {
        FormatError::BadLine {
            path: path.to_path_buf(),
            line,
            column: self.column,
            reason: self.reason,
        }
    }
}

/// The fault on the earliest line of those found (the first listed, on one line).
pub(super) fn earliest(
    found: impl IntoIterator<Item = Option<(usize, Fault)>>,
) -> Option<(usize, Fault)> {
    found
        .into_iter()
        .flatten()
        .fold(None, |best, f| match best {
            Some(b) if b.0 <= f.0 => Some(b),
            _ => Some(f),
        })
}

/// A line that a quoted field continues past (the lines cannot be cut into chunks).
pub(super) const QUOTED_NEWLINE: &str = "a quoted field spans lines; CSV files with newlines inside quoted fields cannot be split into chunks (convert the file to Parquet or JSONL)";

/// The first line of `lines` with an unbalanced quote. A quote that no later line closes is
/// "never closed" when `lines` run to the end of the file (otherwise a later chunk may close it).
pub(super) fn quote_fault(lines: &[u8], ends_file: bool) -> Option<(usize, Fault)> {
    let odd = |l: &[u8]| memchr::memchr_iter(b'"', l).count() % 2 == 1;
    let mut rest = lines.split(|b| *b == b'\n');
    let first = rest.position(odd)?;
    let closed = rest.any(odd);
    let reason = if closed || !ends_file {
        QUOTED_NEWLINE
    } else {
        "unclosed quote: the quoted field that starts on this line is never closed (the file ends inside it)"
    };
    Some((first, Fault::new(reason)))
}

/// The first line of `bytes` that is not UTF-8. In CSV (`names` the header's column names) the
/// column is the field's name, in JSONL (`names` None) the byte column.
pub(super) fn utf8_fault(bytes: &[u8], names: Option<&[String]>) -> Option<(usize, Fault)> {
    let at = std::str::from_utf8(bytes).err()?.valid_up_to();
    let line_start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
    let index = memchr::memchr_iter(b'\n', &bytes[..at]).count();
    let byte = bytes.get(at).copied().unwrap_or_default();
    let in_line = at - line_start + 1;
    let fault = match names {
        None => Fault {
            column: Some(in_line.to_string()),
            reason: format!("not valid UTF-8 (byte 0x{byte:02X}); text inputs must be UTF-8"),
        },
        Some(names) => {
            let field = csv_field_at(&bytes[line_start..at]);
            Fault {
                column: Some(match names.get(field) {
                    Some(name) => format!("'{name}'"),
                    None => format!("{}", field + 1),
                }),
                reason: format!(
                    "not valid UTF-8 (0x{byte:02X} at byte {in_line} of the line); text inputs must be UTF-8"
                ),
            }
        }
    };
    Some((index, fault))
}

/// The index of the CSV field that a line's `prefix` ends in (commas outside quotes).
fn csv_field_at(prefix: &[u8]) -> usize {
    let mut quoted = false;
    let mut field = 0;
    for b in prefix {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => field += 1,
            _ => {}
        }
    }
    field
}

/// The names of a CSV header line's columns.
pub(super) fn csv_header(header: &[u8]) -> Vec<String> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(header)
        .byte_records()
        .next()
        .and_then(Result::ok)
        .map(|r| {
            r.iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The first CSV record of `lines` whose number of fields is not the header's (`names`): the
/// index of the line it starts on, and the fault.
pub(super) fn csv_fields_fault(lines: &[u8], names: &[String]) -> Option<(usize, Fault)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(lines);
    let mut record = csv::ByteRecord::new();
    while let Ok(true) = reader.read_byte_record(&mut record) {
        let n = record.len();
        if n != names.len() {
            let line = record.position().map_or(1, csv::Position::line);
            let fields = if n == 1 { "field" } else { "fields" };
            let reason = format!(
                "has {n} {fields}, the header has {} ({})",
                names.len(),
                names.join(", ")
            );
            return Some((line.saturating_sub(1) as usize, Fault::new(reason)));
        }
    }
    None
}

/// arrow-csv's error for a value of one line on its own, with the column it numbers (`for column
/// N at line 1`, a line of a run of one) as the column's name.
pub(super) fn csv_value_fault(text: String, names: &[String]) -> Fault {
    let named = text.split_once(" for column ").and_then(|(what, rest)| {
        let (n, _) = rest.split_once(" at line ")?;
        let name = names.get(n.parse::<usize>().ok()?)?;
        Some((name, what.strip_prefix("Parser error: ").unwrap_or(what)))
    });
    match named {
        Some((name, what)) => Fault {
            column: Some(format!("'{name}'")),
            reason: format!("{what} (the column's type was inferred from a sample of the file)"),
        },
        None => Fault::new(text),
    }
}

/// Why one JSONL line is not a JSON object, if it is not.
pub(super) fn json_fault(line: &[u8]) -> Option<Fault> {
    if let Some((_, fault)) = utf8_fault(line, None) {
        return Some(fault);
    }
    let kind = match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(_)) => return None,
        Ok(serde_json::Value::Array(_)) => "an array",
        Ok(serde_json::Value::String(_)) => "a string",
        Ok(serde_json::Value::Number(_)) => "a number",
        Ok(serde_json::Value::Bool(_)) => "a boolean",
        Ok(serde_json::Value::Null) => "null",
        Err(e) => return Some(not_json(&e)),
    };
    Some(Fault::new(format!(
        "not a JSON object but {kind}; each line of a JSONL file must be one JSON object"
    )))
}

/// serde's error without its own `at line L column C` (the line is ours, the column the fault's).
fn not_json(e: &serde_json::Error) -> Fault {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&suffix).unwrap_or(&text);
    let hint = if e.is_eof() {
        "; the line ends inside a JSON value, and each line of a JSONL file must be one whole JSON object (pretty-printed JSON is not JSONL)"
    } else {
        ""
    };
    Fault {
        column: (e.column() > 0).then(|| e.column().to_string()),
        reason: format!("not JSON: {what}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_that_a_later_line_closes_span_lines_and_others_are_never_closed() {
        let spans = quote_fault(b"a,\"b\"\nc,\"d\ne\"\n", true);
        assert_eq!(
            spans.map(|(i, f)| (i, f.reason)),
            Some((1, QUOTED_NEWLINE.into()))
        );
        assert_eq!(quote_fault(b"a,\"say \"\"hi\"\"\"\n", true), None);
        let (i, f) = quote_fault(b"a\n0,\"never\n1,b\n", true).expect("a fault");
        assert_eq!(i, 1);
        assert!(f.reason.starts_with("unclosed quote"), "{}", f.reason);
        let (_, f) = quote_fault(b"a\n0,\"never\n", false).expect("a fault");
        assert_eq!(f.reason, QUOTED_NEWLINE, "a later chunk may close it");
    }

    #[test]
    fn bad_utf8_is_named_by_line_and_column() {
        let (i, f) = utf8_fault(b"ok\n{\"t\": \"caf\xe9\"}\n", None).expect("a fault");
        assert_eq!((i, f.column.as_deref()), (1, Some("11")));
        assert!(f.reason.contains("0xE9"), "{}", f.reason);
        let names = ["id".to_string(), "text".to_string()];
        let (i, f) = utf8_fault(b"0,ok\n1,\"a,b\",caf\xe9\n", Some(&names)).expect("a fault");
        assert_eq!(
            (i, f.column.as_deref()),
            (1, Some("3")),
            "past the header's columns"
        );
        let (_, f) = utf8_fault(b"1,caf\xe9\n", Some(&names)).expect("a fault");
        assert_eq!(f.column.as_deref(), Some("'text'"));
        assert_eq!(utf8_fault("café\n".as_bytes(), None), None);
    }

    #[test]
    fn csv_records_with_the_wrong_number_of_fields_are_found() {
        let names = csv_header(b"id,text\n");
        assert_eq!(names, ["id", "text"]);
        let (i, f) = csv_fields_fault(b"0,a\n\n1,\"b,c\"\n2,b,extra\n", &names).expect("a fault");
        assert_eq!(i, 3);
        assert_eq!(f.reason, "has 3 fields, the header has 2 (id, text)");
        assert_eq!(csv_fields_fault(b"0,a\n1,b\n", &names), None);
    }

    #[test]
    fn a_csv_value_error_names_the_column_not_arrows_line_of_one() {
        let names = ["id".to_string(), "text".to_string()];
        let text = "Parser error: Error while parsing value 'abc' as type 'Int64' for column 0 at line 1. Row data: '[abc,x]'";
        let f = csv_value_fault(text.into(), &names);
        assert_eq!(f.column.as_deref(), Some("'id'"));
        assert_eq!(
            f.reason,
            "Error while parsing value 'abc' as type 'Int64' (the column's type was inferred from a sample of the file)"
        );
        assert_eq!(csv_value_fault("other".into(), &names), Fault::new("other"));
    }

    #[test]
    fn json_faults_say_what_the_line_is_without_serdes_position() {
        let f = json_fault(b"{\"id\": 1, oops}").expect("a fault");
        assert_eq!(f.column.as_deref(), Some("11"));
        assert_eq!(f.reason, "not JSON: key must be a string");
        let f = json_fault(b"[1, 2]").expect("a fault");
        assert!(
            f.reason.starts_with("not a JSON object but an array"),
            "{}",
            f.reason
        );
        let f = json_fault(b"[").expect("a fault");
        assert!(
            f.reason.contains("pretty-printed JSON is not JSONL"),
            "{}",
            f.reason
        );
        assert_eq!(json_fault(b"{\"a\": 1}"), None);
    }
}
