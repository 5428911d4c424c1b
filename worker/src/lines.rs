//! The mapper protocol's control lines as types (docs/protocol.md): the chunk header the worker
//! writes, and what the mapper answers — its handshake, `row`, `error` and `end` lines, and the
//! announcement of an Arrow stream.
//!
//! Nothing a mapper writes is taken on trust, so a field whose value has the wrong type is kept
//! as it came ([`Loose::Not`]): the worker then fails the chunk naming the field and the value,
//! instead of failing to parse the line. Each line is parsed into a [`Value`] once, on the thread
//! reading the mapper's stdout; a `row` line's row is moved out of it, never copied.

use flywheel_protocol::{Attempt, ChunkId, Rank};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A field of a mapper's line: the value the protocol asks for, or whatever came instead.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Loose<T> {
    Is(T),
    Not(Value),
}

impl<T> Loose<T> {
    /// The value, when it has the protocol's type.
    pub(crate) fn ok(&self) -> Option<&T> {
        match self {
            Loose::Is(v) => Some(v),
            Loose::Not(_) => None,
        }
    }
}

impl Loose<u64> {
    /// A count or index, from a value already parsed (a `row` line's `in`).
    fn count(value: &Value) -> Loose<u64> {
        match value.as_u64() {
            Some(n) => Loose::Is(n),
            None => Loose::Not(value.clone()),
        }
    }
}

/// A field given (even as `null`), as opposed to an absent one: `{"end": {"chunk": null}}`
/// names no chunk of this job.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The body of a line, when it is a JSON object; any other value reads as an empty body (every
/// field absent), which the checks then name.
fn body<T: DeserializeOwned + Default>(value: Value) -> T {
    match value {
        // Every field of a line type is a tolerant `Loose`/`Option` (a wrong type is kept and
        // named later), so an object always deserialises; the default is never reached.
        Value::Object(_) => serde_json::from_value(value).unwrap_or_default(),
        _ => T::default(),
    }
}

/// The header of one chunk, worker → mapper: `{"chunk": {…}}`, then the rows.
#[derive(Debug, Serialize)]
pub(crate) struct ChunkHeader {
    pub(crate) chunk: ChunkHeaderBody,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChunkHeaderBody {
    pub(crate) chunk: ChunkId,
    pub(crate) attempt: Attempt,
    pub(crate) seed: u64,
    pub(crate) worker: Rank,
    pub(crate) rows: usize,
    /// The fast path: the byte length of the Arrow IPC stream of the input rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) arrow_bytes: Option<usize>,
    /// The fast path, with a fixed table schema: the byte length of its IPC stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) schema_bytes: Option<usize>,
    /// The fast path through shared memory: both streams are at the start of the input memfd
    /// instead of after this line.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) shm: bool,
    /// The JSON path: the input columns whose values travel as base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bytes_columns: Option<Vec<String>>,
}

/// A line of a fresh mapper's handshake.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Hello {
    /// `{"starting": true}`: the mapper is loading; `ready` follows within the chunk timeout.
    Starting,
    /// `{"ready": true}`, with `"arrow": true` when it speaks the Arrow fast path and
    /// `"shm": true` when it takes that path through the shared memory it was given.
    /// `"depends": [PATH…]`: the local files it depends on (see `_dependencies` in the runner).
    Ready {
        arrow: bool,
        shm: bool,
        depends: Vec<String>,
    },
    /// `{"fatal": TEXT}`: it cannot start (an import error, an exception in `start()`).
    Fatal(String),
    /// Anything else: not the flywheel mapper protocol.
    Other,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct HelloLine {
    starting: Option<Loose<bool>>,
    ready: Option<Loose<bool>>,
    arrow: Option<Loose<bool>>,
    shm: Option<Loose<bool>>,
    depends: Option<Value>,
    #[serde(deserialize_with = "present")]
    fatal: Option<Loose<String>>,
}

fn is_true(field: &Option<Loose<bool>>) -> bool {
    field.as_ref().and_then(Loose::ok) == Some(&true)
}

impl Hello {
    /// The first line of a fresh mapper: `starting` counts only here.
    pub(crate) fn first(line: &Value) -> Hello {
        let parsed: HelloLine = body(line.clone());
        if is_true(&parsed.starting) {
            return Hello::Starting;
        }
        Hello::from_line(parsed)
    }

    /// The line that must follow `starting`: `ready` or `fatal`.
    pub(crate) fn after_starting(line: &Value) -> Hello {
        Hello::from_line(body(line.clone()))
    }

    fn from_line(line: HelloLine) -> Hello {
        if is_true(&line.ready) {
            let arrow = is_true(&line.arrow);
            // A list of paths; anything else in it is no report.
            let depends = match &line.depends {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            return Hello::Ready {
                arrow,
                shm: arrow && is_true(&line.shm),
                depends,
            };
        }
        match line.fatal {
            Some(why) => Hello::Fatal(why.ok().map_or("", String::as_str).trim_end().to_string()),
            None => Hello::Other,
        }
    }
}

/// An `error` line's body: a mapper call raised.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorLine {
    /// The first input row (within the chunk) of the call that raised; required.
    pub(crate) row: Option<Loose<u64>>,
    /// How many input rows the call covered (default 1).
    pub(crate) rows: Option<Loose<u64>>,
    pub(crate) message: Option<Loose<String>>,
    pub(crate) traceback: Option<Loose<String>>,
}

/// An `end` line's body: the chunk's answer is complete.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndLine {
    /// The chunk it ends (optional); another chunk's id means the stream is out of step.
    #[serde(deserialize_with = "present")]
    pub(crate) chunk: Option<Loose<u64>>,
    /// The output rows it sent for the chunk; required.
    pub(crate) rows_out: Option<Loose<u64>>,
    /// `true` fails the chunk.
    pub(crate) failed: Option<Loose<bool>>,
    /// Why it failed (`message`, or `error`).
    pub(crate) message: Option<Loose<String>>,
    pub(crate) error: Option<Loose<String>>,
}

impl EndLine {
    /// The reason a failed chunk gives: `message`, else `error`, when text.
    pub(crate) fn reason(&self) -> Option<String> {
        [&self.message, &self.error]
            .into_iter()
            .find_map(|f| f.as_ref().and_then(Loose::ok))
            .cloned()
    }
}

/// One JSON line of a chunk's answer.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `{"row": {…}, "in": N}`: an output row and the input row it came from (default 0).
    Row {
        row: Value,
        input: Option<Loose<u64>>,
    },
    /// `{"error": {…}}`.
    Error(ErrorLine),
    /// `{"end": {…}}`.
    End(EndLine),
    /// Anything else, as it came: not part of the protocol.
    Other(Value),
}

impl Answer {
    /// Reads a line of a chunk's answer (a row's value is moved, not copied).
    pub(crate) fn of(line: Value) -> Answer {
        let Value::Object(mut fields) = line else {
            return Answer::Other(line);
        };
        if let Some(row) = fields.swap_remove("row") {
            let input = match fields.get("in") {
                None | Some(Value::Null) => None,
                Some(v) => Some(Loose::count(v)),
            };
            return Answer::Row { row, input };
        }
        if let Some(error) = fields.swap_remove("error") {
            return Answer::Error(body(error));
        }
        if let Some(end) = fields.swap_remove("end") {
            return Answer::End(body(end));
        }
        Answer::Other(Value::Object(fields))
    }
}

/// What an `{"arrow": {"bytes": N, "rows": R}}` line announces: `N` bytes of an Arrow IPC stream
/// of `R` rows follow on stdout, or, with `"shm": true`, are at the start of the mapper's output
/// memfd. `None` when the line is no such announcement.
#[derive(Debug, PartialEq)]
pub(crate) struct Announcement {
    pub(crate) bytes: Loose<u64>,
    pub(crate) rows: Option<u64>,
    pub(crate) shm: bool,
}

pub(crate) fn arrow_announcement(line: &Value) -> Option<Announcement> {
    let arrow = line.get("arrow")?;
    Some(Announcement {
        bytes: Loose::count(arrow.get("bytes")?),
        rows: arrow.get("rows").and_then(Value::as_u64),
        shm: arrow.get("shm").and_then(Value::as_bool) == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_chunk_header_keeps_its_field_order_and_leaves_out_what_is_absent() {
        let header = ChunkHeader {
            chunk: ChunkHeaderBody {
                chunk: ChunkId(12),
                attempt: Attempt(1),
                seed: 7,
                worker: Rank(3),
                rows: 2,
                arrow_bytes: None,
                schema_bytes: None,
                shm: false,
                bytes_columns: Some(vec!["b".into()]),
            },
        };
        assert_eq!(
            serde_json::to_string(&header).expect("serializes"),
            r#"{"chunk":{"chunk":12,"attempt":1,"seed":7,"worker":3,"rows":2,"bytes_columns":["b"]}}"#
        );
    }

    #[test]
    fn handshake_lines_are_read_as_the_protocol_says() {
        assert_eq!(Hello::first(&json!({"starting": true})), Hello::Starting);
        assert_eq!(
            Hello::after_starting(&json!({"starting": true})),
            Hello::Other
        );
        assert_eq!(
            Hello::first(&json!({"ready": true, "arrow": true})),
            Hello::Ready {
                arrow: true,
                shm: false,
                depends: Vec::new()
            }
        );
        assert_eq!(
            Hello::first(
                &json!({"ready": true, "arrow": true, "shm": true, "depends": ["/a.py", 3]})
            ),
            Hello::Ready {
                arrow: true,
                shm: true,
                depends: vec!["/a.py".to_string()]
            }
        );
        assert_eq!(
            Hello::first(&json!({"ready": true, "arrow": "yes", "shm": true})),
            Hello::Ready {
                arrow: false,
                shm: false,
                depends: Vec::new()
            }
        );
        assert_eq!(Hello::first(&json!({"ready": 1})), Hello::Other);
        assert_eq!(
            Hello::first(&json!({"fatal": "Traceback\n"})),
            Hello::Fatal("Traceback".into())
        );
        assert_eq!(
            Hello::first(&json!({"fatal": null})),
            Hello::Fatal(String::new())
        );
        assert_eq!(Hello::first(&json!([true])), Hello::Other);
    }

    #[test]
    fn answer_fields_of_the_wrong_type_are_kept_for_the_message() {
        let Answer::End(end) = Answer::of(
            json!({"end": {"chunk": null, "rows_out": -1, "failed": true, "message": 3, "error": "oom"}}),
        ) else {
            panic!("an end line");
        };
        assert_eq!(end.chunk, Some(Loose::Not(Value::Null)));
        assert_eq!(end.rows_out, Some(Loose::Not(json!(-1))));
        assert_eq!(end.failed, Some(Loose::Is(true)));
        assert_eq!(end.reason().as_deref(), Some("oom"));
        let Answer::End(end) = Answer::of(json!({"end": 5})) else {
            panic!("an end line");
        };
        assert!(end.chunk.is_none() && end.rows_out.is_none());
        let Answer::Row { row, input } = Answer::of(json!({"row": {"a": 1}, "in": 2.5})) else {
            panic!("a row line");
        };
        assert_eq!(row, json!({"a": 1}));
        assert_eq!(input, Some(Loose::Not(json!(2.5))));
        let Answer::Error(err) = Answer::of(json!({"error": [4]})) else {
            panic!("an error line");
        };
        assert!(
            err.row.is_none(),
            "an error body that is no object has no row"
        );
        assert!(
            matches!(Answer::of(json!({"chunk": {"chunk": 1}})), Answer::Other(v) if v.get("chunk").is_some())
        );
    }

    #[test]
    fn arrow_announcements_are_told_apart_from_the_ready_line() {
        assert_eq!(
            arrow_announcement(&json!({"ready": true, "arrow": true})),
            None
        );
        assert_eq!(
            arrow_announcement(&json!({"arrow": {"bytes": 10, "rows": 2}})),
            Some(Announcement {
                bytes: Loose::Is(10),
                rows: Some(2),
                shm: false
            })
        );
        assert_eq!(
            arrow_announcement(&json!({"arrow": {"bytes": "ten"}})),
            Some(Announcement {
                bytes: Loose::Not(json!("ten")),
                rows: None,
                shm: false
            })
        );
        assert_eq!(
            arrow_announcement(&json!({"arrow": {"bytes": 10, "rows": 2, "shm": true}})),
            Some(Announcement {
                bytes: Loose::Is(10),
                rows: Some(2),
                shm: true
            })
        );
    }
}
