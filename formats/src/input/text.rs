//! JSONL and CSV inputs, cut into byte ranges at line boundaries.
//!
//! Planning reads only the first MiB of a file: enough to infer the schema and the average line
//! length, from which chunks of about `chunk_rows` lines are cut as byte ranges. A chunk holds
//! the lines that *start* inside its range (the Hadoop input-split rule): a reader whose range
//! starts mid-line skips to the next line start, and reads past its end to finish its last line.
//! Every line thus belongs to exactly one chunk, with no scan of the file at planning time.
//!
//! CSV fields with newlines inside quotes cannot be split this way; such a line is refused with
//! a message rather than misread.

use super::InputFile;
use crate::{schema_from_json, schema_to_json, FormatError};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{InputFormat, InputSlice};
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SAMPLE: u64 = 1 << 20;
const CSV_INFER_RECORDS: usize = 10_000;

fn bad_line(path: &Path, line: u64, reason: impl Into<String>) -> FormatError {
    FormatError::BadLine {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Where the data lines start (after a CSV header).
fn data_start(
    format: InputFormat,
    head: &[u8],
    path: &Path,
    whole: bool,
) -> Result<u64, FormatError> {
    if format != InputFormat::Csv {
        return Ok(0);
    }
    match memchr::memchr(b'\n', head) {
        Some(i) => Ok(i as u64 + 1),
        None if whole => Ok(head.len() as u64),
        None => Err(FormatError::BadFile {
            path: path.to_path_buf(),
            reason: "the CSV header line is longer than 1 MiB".into(),
        }),
    }
}

/// The first line of `lines` with an unbalanced quote (a quoted field that spans lines).
fn unbalanced_quote(lines: &[u8]) -> Option<usize> {
    lines
        .split(|b| *b == b'\n')
        .position(|l| memchr::memchr_iter(b'"', l).count() % 2 == 1)
}

const QUOTED_NEWLINE: &str = "a quoted field spans lines; CSV files with newlines inside quoted fields cannot be split into chunks (convert the file to Parquet or JSONL)";

pub(super) fn plan(
    file: &InputFile,
    chunk_rows: u64,
    out: &mut Vec<InputSlice>,
) -> Result<u64, FormatError> {
    let size = file.bytes;
    if size == 0 {
        return Ok(0);
    }
    let mut head = Vec::new();
    File::open(&file.path)
        .and_then(|f| f.take(SAMPLE).read_to_end(&mut head))
        .map_err(FormatError::io(&file.path))?;
    let whole = head.len() as u64 == size;
    let start = data_start(file.format, &head, &file.path, whole)?;
    // The sample's complete lines (all of it when the sample is the whole file).
    let region = &head[start as usize..];
    let complete = if whole {
        region
    } else {
        &region[..memchr::memrchr(b'\n', region).map(|i| i + 1).unwrap_or(0)]
    };
    let lines = memchr::memchr_iter(b'\n', complete).count() as u64
        + u64::from(whole && !complete.is_empty() && !complete.ends_with(b"\n"));
    if file.format == InputFormat::Csv {
        if let Some(i) = unbalanced_quote(complete) {
            return Err(bad_line(&file.path, i as u64 + 2, QUOTED_NEWLINE));
        }
    }
    // Infer from the head and, for larger files, from windows in the middle and at the end too,
    // so that keys or wider types that only show up later are part of the schema.
    let mut extra = Vec::new();
    if !whole && size > 3 * SAMPLE {
        for offset in [size / 2, size - SAMPLE] {
            extra.extend_from_slice(&window(&file.path, offset)?);
        }
    }
    if file.format == InputFormat::Csv && unbalanced_quote(&extra).is_some() {
        return Err(FormatError::BadFile {
            path: file.path.clone(),
            reason: QUOTED_NEWLINE.to_string(),
        });
    }
    let schema = infer(file, &head[..start as usize], complete, &extra)?;
    if size <= start {
        return Ok(head.len() as u64);
    }
    let avg = if lines > 0 {
        complete.len() as f64 / lines as f64
    } else {
        (size - start) as f64
    };
    let chunk_bytes = ((avg * chunk_rows as f64).round() as u64).max(1);
    let schema_json = schema_to_json(&schema);
    let mut b = start;
    let mut i = 0u64;
    while b < size {
        let e = (b + chunk_bytes).min(size);
        out.push(InputSlice {
            path: file.path.to_string_lossy().into_owned(),
            format: file.format,
            group: None,
            row_start: i * chunk_rows,
            row_count: (((e - b) as f64 / avg).round() as u64).max(1),
            bytes: Some((b, e)),
            schema: Some(schema_json.clone()),
        });
        b = e;
        i += 1;
    }
    Ok(head.len() as u64)
}

/// The complete lines of about a sample's worth of bytes from `offset` on.
fn window(path: &Path, offset: u64) -> Result<Vec<u8>, FormatError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(FormatError::io(path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(FormatError::io(path))?;
    let mut buf = Vec::new();
    f.take(SAMPLE)
        .read_to_end(&mut buf)
        .map_err(FormatError::io(path))?;
    let Some(first) = memchr::memchr(b'\n', &buf) else {
        return Ok(Vec::new());
    };
    let last = memchr::memrchr(b'\n', &buf).unwrap_or(first);
    Ok(buf[first + 1..last + 1].to_vec())
}

/// Infers the schema from the head's lines (a bad one is named by its line number) and lines
/// from further in (a bad one there is left for the worker that reads it to name).
fn infer(
    file: &InputFile,
    header: &[u8],
    head: &[u8],
    extra: &[u8],
) -> Result<Schema, FormatError> {
    let mut lines = head.to_vec();
    for line in extra.split(|b| *b == b'\n') {
        let keep = match file.format {
            InputFormat::Csv => true,
            _ => json_object_error(line).is_none(),
        };
        if keep && !line.is_empty() {
            lines.extend_from_slice(line);
            lines.push(b'\n');
        }
    }
    let lines = lines.as_slice();
    match file.format {
        InputFormat::Csv => {
            let mut text = header.to_vec();
            text.extend_from_slice(lines);
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(Cursor::new(text), Some(CSV_INFER_RECORDS))
                .map_err(|e| FormatError::BadFile {
                    path: file.path.clone(),
                    reason: format!("cannot read the CSV header and first rows: {e}"),
                })?;
            Ok(schema)
        }
        _ => {
            // Find a bad line first, so the error names it.
            for (i, line) in head.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Some(e) = json_object_error(line) {
                    return Err(bad_line(&file.path, i as u64 + 1, e));
                }
            }
            let (schema, _) = arrow::json::reader::infer_json_schema(Cursor::new(lines), None)
                .map_err(|e| FormatError::BadFile {
                    path: file.path.clone(),
                    reason: format!("cannot infer a schema: {e}"),
                })?;
            Ok(schema)
        }
    }
}

/// The byte range of the lines that start in `[b, e)`.
fn line_range(data: &[u8], b: usize, e: usize) -> (usize, usize) {
    let ls = if b == 0 || data[b - 1] == b'\n' {
        b
    } else {
        memchr::memchr(b'\n', &data[b..])
            .map(|i| b + i + 1)
            .unwrap_or(data.len())
    };
    let le = if e >= data.len() || data[e - 1] == b'\n' {
        e.min(data.len())
    } else {
        memchr::memchr(b'\n', &data[e..])
            .map(|i| e + i + 1)
            .unwrap_or(data.len())
    };
    (ls, le.max(ls))
}

pub(super) fn read(slice: &InputSlice, batch_rows: usize) -> Result<Vec<RecordBatch>, FormatError> {
    let path = PathBuf::from(&slice.path);
    let (b, e) = slice.bytes.ok_or_else(|| FormatError::BadFile {
        path: path.clone(),
        reason: "text chunk without a byte range".into(),
    })?;
    let schema = Arc::new(schema_from_json(slice.schema.as_deref().unwrap_or("{}"))?);
    let file = File::open(&path).map_err(FormatError::io(&path))?;
    // SAFETY: the file is opened read-only; inputs must not be modified while a job reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(FormatError::io(&path))?;
    let data: &[u8] = &map;
    if e as usize > data.len() {
        return Err(FormatError::BadFile {
            path,
            reason: format!("the file shrank to {} bytes while the job ran", data.len()),
        });
    }
    let (ls, le) = line_range(data, b as usize, e as usize);
    let region = &data[ls..le];
    let first_line = || memchr::memchr_iter(b'\n', &data[..ls]).count() as u64 + 1;
    if slice.format == InputFormat::Csv {
        if let Some(i) = unbalanced_quote(region) {
            return Err(bad_line(&path, first_line() + i as u64, QUOTED_NEWLINE));
        }
    }
    match decode(slice.format, &schema, region, batch_rows) {
        Ok(batches) => Ok(batches),
        Err(whole_error) => {
            // Find the first line that does not decode on its own, for the message.
            for (i, line) in region.split(|c| *c == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let why = match slice.format {
                    InputFormat::Jsonl => json_object_error(line),
                    _ => None,
                };
                if let Some(e) = why.or_else(|| decode(slice.format, &schema, line, 1).err()) {
                    return Err(bad_line(&path, first_line() + i as u64, e));
                }
            }
            Err(bad_line(&path, first_line(), whole_error))
        }
    }
}

fn decode(
    format: InputFormat,
    schema: &Arc<Schema>,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, String> {
    match format {
        InputFormat::Csv => arrow::csv::ReaderBuilder::new(Arc::clone(schema))
            .with_header(false)
            .with_batch_size(batch_rows)
            .build(Cursor::new(bytes))
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| e.to_string()),
        _ => arrow::json::ReaderBuilder::new(Arc::clone(schema))
            .with_batch_size(batch_rows)
            .with_strict_mode(true)
            .build(Cursor::new(bytes))
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{e} (the schema was inferred from the file's first MiB)")),
    }
}

/// Why one JSONL line is not a JSON object, if it is not.
fn json_object_error(line: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(_)) => None,
        Ok(_) => Some("not a JSON object".to_string()),
        Err(e) => Some(format!("not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_belongs_to_exactly_one_range() {
        let data = b"aa\nbbbb\nc\n\ndddddd\ne";
        for step in 1..data.len() + 2 {
            let mut seen = Vec::new();
            let mut b = 0;
            while b < data.len() {
                let e = (b + step).min(data.len());
                let (ls, le) = line_range(data, b, e);
                seen.extend_from_slice(&data[ls..le]);
                b = e;
            }
            assert_eq!(seen, data.to_vec(), "step {step}");
        }
    }

    #[test]
    fn finds_unbalanced_quotes() {
        assert_eq!(unbalanced_quote(b"a,\"b\"\nc,\"d\ne\"\n"), Some(1));
        assert_eq!(unbalanced_quote(b"a,\"say \"\"hi\"\"\"\n"), None);
    }
}
