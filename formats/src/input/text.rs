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

use super::lines::{
    csv_fields_fault, csv_header, csv_value_fault, earliest, json_fault, quote_fault, utf8_fault,
    Fault, QUOTED_NEWLINE,
};
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
/// A UTF-8 byte-order mark, which some tools (Excel) write at the start of CSV files.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the header (CSV) and the data lines start: after a byte-order mark and, in CSV, after
/// the header line.
fn data_start(
    format: InputFormat,
    head: &[u8],
    path: &Path,
    whole: bool,
) -> Result<(usize, u64), FormatError> {
    let bom = if head.starts_with(BOM) { BOM.len() } else { 0 };
    if format != InputFormat::Csv {
        return Ok((bom, bom as u64));
    }
    match memchr::memchr(b'\n', &head[bom..]) {
        Some(i) => Ok((bom, (bom + i) as u64 + 1)),
        None if whole => Ok((bom, head.len() as u64)),
        None => Err(FormatError::BadFile {
            path: path.to_path_buf(),
            reason: "the CSV header line is longer than 1 MiB".into(),
        }),
    }
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The first bad line of CSV data lines (their header's column names `names`): a quoted field
/// that spans lines or is never closed, bad UTF-8, or not the header's number of fields.
fn csv_fault(lines: &[u8], names: &[String], ends_file: bool) -> Option<(usize, Fault)> {
    earliest([
        quote_fault(lines, ends_file),
        utf8_fault(lines, Some(names)),
        csv_fields_fault(lines, names),
    ])
}

/// Names the first bad line of a file's planning sample: its `header` (CSV) and complete data
/// `lines` (the first is line `first_line` of the file), which run to the end of the file when
/// `ends_file`.
fn check_head(
    file: &InputFile,
    header: &[u8],
    lines: &[u8],
    ends_file: bool,
    first_line: u64,
) -> Result<(), FormatError> {
    let found = match file.format {
        InputFormat::Csv => match utf8_fault(header, None) {
            Some((_, fault)) => Some((1, fault)),
            None => csv_fault(lines, &csv_header(header), ends_file)
                .map(|(i, f)| (first_line + i as u64, f)),
        },
        _ => lines
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !blank(l))
            .find_map(|(i, l)| json_fault(l).map(|f| (first_line + i as u64, f))),
    };
    match found {
        Some((line, fault)) => Err(fault.at(&file.path, line)),
        None => Ok(()),
    }
}

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
    let mut read = head.len() as u64;
    let whole = head.len() as u64 == size;
    let (header_start, mut start) = data_start(file.format, &head, &file.path, whole)?;
    let header = head[header_start..start as usize].to_vec();
    // The line number of the sample's first data line.
    let mut first_line = if file.format == InputFormat::Csv {
        2
    } else {
        1
    };
    if !whole && blank(&head[start as usize..]) {
        // More than a sample of blank lines before the first row: sample from that row on.
        let (skip, scanned) = skip_blank_lines(&file.path, start)?;
        read += scanned;
        let Some((at, lines)) = skip else {
            return Ok(read);
        };
        (start, first_line) = (at, first_line + lines);
        head = window_from(&file.path, at)?;
        read += head.len() as u64;
    } else {
        head.drain(..start as usize);
    }
    let whole = start + head.len() as u64 == size;
    // The sample's complete lines (all of it when the sample is the whole file).
    let region = &head[..];
    let complete = if whole {
        region
    } else {
        &region[..memchr::memrchr(b'\n', region).map(|i| i + 1).unwrap_or(0)]
    };
    if whole && blank(complete) {
        // No rows: the input as a whole is refused if no other file has any.
        return Ok(read);
    }
    check_head(file, &header, complete, whole, first_line)?;
    let lines = memchr::memchr_iter(b'\n', complete).count() as u64
        + u64::from(whole && !complete.is_empty() && !complete.ends_with(b"\n"));
    // Infer from the head and, for larger files, from windows in the middle and at the end too,
    // so that keys or wider types that only show up later are part of the schema.
    let mut extra = Vec::new();
    if !whole && size > 3 * SAMPLE {
        for offset in [size / 2, size - SAMPLE] {
            extra.extend_from_slice(&window(&file.path, offset)?);
        }
    }
    if file.format == InputFormat::Csv && quote_fault(&extra, false).is_some() {
        return Err(FormatError::BadFile {
            path: file.path.clone(),
            reason: QUOTED_NEWLINE.to_string(),
        });
    }
    let schema = infer(file, &header, complete, &extra)?;
    let avg = if lines > 0 {
        complete.len() as f64 / lines as f64
    } else {
        (size - start) as f64
    };
    let chunk_bytes = ((avg * chunk_rows as f64).round() as u64).max(1);
    // One copy of the text shared by every chunk of the file.
    let schema_json: std::sync::Arc<str> = schema_to_json(&schema).into();
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
    Ok(read)
}

/// From `from` on, skips whitespace: the start of the first line with anything else and how
/// many lines came before it (`None`: only blank lines to the end), and the bytes read.
fn skip_blank_lines(path: &Path, from: u64) -> Result<(Option<(u64, u64)>, u64), FormatError> {
    let mut f = File::open(path).map_err(FormatError::io(path))?;
    {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(from))
            .map_err(FormatError::io(path))?;
    }
    let mut buf = vec![0u8; SAMPLE as usize];
    let (mut at, mut lines, mut line_start) = (from, 0u64, from);
    loop {
        let n = f.read(&mut buf).map_err(FormatError::io(path))?;
        if n == 0 {
            return Ok((None, at - from));
        }
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                lines += 1;
                line_start = at + i as u64 + 1;
            } else if !b.is_ascii_whitespace() {
                return Ok((Some((line_start, lines)), at + n as u64 - from));
            }
        }
        at += n as u64;
    }
}

/// A sample's worth of bytes from `offset` on.
fn window_from(path: &Path, offset: u64) -> Result<Vec<u8>, FormatError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(FormatError::io(path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(FormatError::io(path))?;
    let mut buf = Vec::new();
    f.take(SAMPLE)
        .read_to_end(&mut buf)
        .map_err(FormatError::io(path))?;
    Ok(buf)
}

/// The complete lines of about a sample's worth of bytes from `offset` on.
fn window(path: &Path, offset: u64) -> Result<Vec<u8>, FormatError> {
    let buf = window_from(path, offset)?;
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
    let names = csv_header(header);
    let mut lines = head.to_vec();
    for line in extra.split(|b| *b == b'\n') {
        let bad = match file.format {
            InputFormat::Csv => csv_fault(line, &names, false).is_some(),
            _ => json_fault(line).is_some(),
        };
        if !bad && !line.is_empty() {
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
    // The first line starts after a byte-order mark, where the first chunk starts.
    let ls = if b == 0 || data[b - 1] == b'\n' || data[..b] == *BOM {
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
    // The file's line number of the region's line `i`, for an error only: counting the lines
    // before the region reads the whole file up to it, which every chunk doing it would make a
    // job quadratic in the file's size (and every page of the file resident in each worker).
    let line = |i: usize| memchr::memchr_iter(b'\n', &data[..ls]).count() as u64 + 1 + i as u64;
    if slice.format == InputFormat::Csv {
        if let Some((i, fault)) = quote_fault(region, le == data.len()) {
            return Err(fault.at(&path, line(i)));
        }
    }
    decode(slice.format, &schema, region, batch_rows).map_err(|whole_error| {
        let (i, fault) = first_bad_line(slice.format, &schema, region, whole_error);
        fault.at(&path, line(i))
    })
}

/// The first line of `region` that does not decode, and why (the region's own error, at its
/// first line, if every line decodes on its own).
fn first_bad_line(
    format: InputFormat,
    schema: &Arc<Schema>,
    region: &[u8],
    whole_error: String,
) -> (usize, Fault) {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if format == InputFormat::Csv {
        if let Some(found) = csv_fault(region, &names, true) {
            return found;
        }
    }
    for (i, line) in region.split(|c| *c == b'\n').enumerate() {
        if blank(line) {
            continue;
        }
        let fault = match format {
            InputFormat::Jsonl => json_fault(line).or_else(|| decode_fault(format, schema, line)),
            _ => decode_fault(format, schema, line).map(|f| csv_value_fault(f.reason, &names)),
        };
        if let Some(fault) = fault {
            return (i, fault);
        }
    }
    (0, Fault::new(whole_error))
}

/// Why one line does not decode, if it does not.
fn decode_fault(format: InputFormat, schema: &Arc<Schema>, line: &[u8]) -> Option<Fault> {
    decode(format, schema, line, 1).err().map(Fault::new)
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
        let bom = b"\xEF\xBB\xBFa\nb\n";
        assert_eq!(
            line_range(bom, 3, 5),
            (3, 5),
            "the first line, after the mark"
        );
        assert_eq!(line_range(bom, 4, 5), (5, 5));
    }
}
