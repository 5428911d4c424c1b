//! Looking at a version's data: one row and a path into it (`table show`), distinct counts and
//! top values (`table stats`), and row-by-row comparison of two versions (`rerun`).

use crate::{read_slice, FormatError, Manifest, Table, TYPE_KEY};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use flywheel_protocol::{InputFormat, InputSlice};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Reading rows

fn slice_of(path: &Path, row_start: u64, row_count: u64) -> InputSlice {
    InputSlice {
        path: path.to_string_lossy().into_owned(),
        format: InputFormat::Parquet,
        group: None,
        row_start,
        row_count,
        bytes: None,
        schema: None,
    }
}

/// Row `row` (0-based, in table order) of a version, as a one-row batch.
pub fn read_row(table: &Table, manifest: &Manifest, row: u64) -> Result<RecordBatch, FormatError> {
    let mut start = 0u64;
    for (f, path) in manifest.files.iter().zip(table.file_paths(manifest)) {
        if row < start + f.rows {
            let batches = read_slice(&slice_of(&path, row - start, 1), 1)?;
            if let Some(b) = batches.into_iter().find(|b| b.num_rows() == 1) {
                return Ok(b);
            }
            return Err(FormatError::BadFile {
                path,
                reason: format!(
                    "the manifest says it holds {} rows but row {} cannot be read",
                    f.rows,
                    row - start
                ),
            });
        }
        start += f.rows;
    }
    Err(FormatError::NoSuchRow {
        row,
        rows: manifest.num_rows,
    })
}

// ---------------------------------------------------------------------------------------------
// Paths into a value: `meta.turns[0].text`, `["odd.name"][2]`

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Parses `a.b[0].c`, `a["b.c"]`, `a['x'][3]`. The first step names a column.
pub fn parse_path(text: &str) -> Result<Vec<Step>, FormatError> {
    let bad = |why: &str| FormatError::BadPath {
        path: text.to_string(),
        reason: why.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    let mut expect_key = true;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if steps.is_empty() || expect_key {
                    return Err(bad("a '.' must follow a name or ']'"));
                }
                expect_key = true;
                i += 1;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("'[' without ']'"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner.chars().next().filter(|c| *c == '"' || *c == '\'') {
                    if inner.len() < 2 || !inner.ends_with(q) {
                        return Err(bad("unterminated quoted key"));
                    }
                    steps.push(Step::Key(inner[1..inner.len() - 1].to_string()));
                } else {
                    let n: usize = inner
                        .parse()
                        .map_err(|_| bad("an index in [] must be a number ≥ 0 or a quoted key"))?;
                    if steps.is_empty() {
                        return Err(bad("the path starts with a column name"));
                    }
                    steps.push(Step::Index(n));
                }
                expect_key = false;
                i = close + 1;
            }
            _ => {
                if !expect_key {
                    return Err(bad("expected '.' or '[' after a name or ']'"));
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Key(chars[start..i].iter().collect()));
                expect_key = false;
            }
        }
    }
    // Still expecting a name: the path was empty or ended in '.'.
    if steps.is_empty() || expect_key {
        return Err(bad("empty path or a path ending in '.'"));
    }
    Ok(steps)
}

/// Writes steps back as a path (`a.b[0]`, with keys that need it quoted).
pub fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Key(k) if !k.is_empty() && !k.contains(['.', '[', ']', '"', '\'']) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
            Step::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// What a path led to: an Arrow value (a one-element array with its field) or a JSON value
/// inside a `json` column.
#[derive(Debug)]
pub enum Found {
    Arrow(Field, ArrayRef),
    Json(Value),
}

/// Why a path leads nowhere: the deepest prefix that exists and what is there instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMiss {
    pub deepest: String,
    pub reason: String,
}

fn is_json_field(f: &Field) -> bool {
    f.metadata().get(TYPE_KEY).map(String::as_str) == Some("json")
}

fn describe_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).take(12).collect();
            format!(
                "an object with keys {}{}",
                keys.join(", "),
                if m.len() > 12 { ", …" } else { "" }
            )
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Null => "null".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
    }
}

/// Follows `steps` into row 0 of `batch`.
pub fn navigate(batch: &RecordBatch, steps: &[Step]) -> Result<Found, PathMiss> {
    let schema = batch.schema();
    let Some(Step::Key(column)) = steps.first() else {
        return Err(PathMiss {
            deepest: String::new(),
            reason: "the path must start with a column name".into(),
        });
    };
    let Ok(index) = schema.index_of(column) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(PathMiss {
            deepest: String::new(),
            reason: format!("no column '{column}' (columns: {})", names.join(", ")),
        });
    };
    let mut field = schema.field(index).clone();
    let mut value: ArrayRef = batch.column(index).slice(0, 1);
    for (depth, step) in steps.iter().enumerate().skip(1) {
        let here = || path_text(&steps[..depth]);
        if value.is_null(0) {
            return Err(PathMiss {
                deepest: here(),
                reason: format!("'{}' is null", here()),
            });
        }
        if is_json_field(&field) {
            let text = text_at(value.as_ref(), 0).map(str::to_string);
            let parsed: Value = text
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            return navigate_json(parsed, steps, depth).map(Found::Json);
        }
        match (step, value.data_type().clone()) {
            (Step::Key(k), DataType::Struct(fields)) => {
                let Some(i) = fields.iter().position(|f| f.name() == k) else {
                    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                    return Err(PathMiss {
                        deepest: here(),
                        reason: format!(
                            "'{}' is a struct with fields {}, not '{k}'",
                            here(),
                            names.join(", ")
                        ),
                    });
                };
                field = fields[i].as_ref().clone();
                value = value.as_struct().column(i).slice(0, 1);
            }
            (Step::Key(k), DataType::Map(entry, _)) => {
                let e = value.as_map().value(0);
                let keys: Vec<String> = (0..e.len())
                    .map(|j| {
                        arrow::util::display::array_value_to_string(e.column(0), j)
                            .unwrap_or_default()
                    })
                    .collect();
                let Some(j) = keys.iter().position(|x| x == k) else {
                    return Err(PathMiss {
                        deepest: here(),
                        reason: format!(
                            "'{}' is a map with keys {}, not '{k}'",
                            here(),
                            keys.join(", ")
                        ),
                    });
                };
                if let DataType::Struct(f) = entry.data_type() {
                    if let Some(vf) = f.get(1) {
                        field = vf.as_ref().clone();
                    }
                }
                value = e.column(1).slice(j, 1);
            }
            (
                Step::Index(n),
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
            ) => {
                let items = match value.data_type() {
                    DataType::List(_) => value.as_list::<i32>().value(0),
                    DataType::LargeList(_) => value.as_list::<i64>().value(0),
                    _ => value.as_fixed_size_list().value(0),
                };
                if *n >= items.len() {
                    return Err(PathMiss {
                        deepest: here(),
                        reason: format!("'{}' is a list of {} items", here(), items.len()),
                    });
                }
                field = f.as_ref().clone();
                value = items.slice(*n, 1);
            }
            (_, dt) => {
                let what = match dt {
                    DataType::Struct(_) => "a struct (use .field)".to_string(),
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                        "a list (use [index])".to_string()
                    }
                    other => format!("a {other} value"),
                };
                return Err(PathMiss {
                    deepest: here(),
                    reason: format!("'{}' is {what}", here()),
                });
            }
        }
    }
    Ok(Found::Arrow(field, value))
}

fn navigate_json(mut v: Value, steps: &[Step], from: usize) -> Result<Value, PathMiss> {
    for depth in from..steps.len() {
        let here = path_text(&steps[..depth]);
        let next = match (&steps[depth], &mut v) {
            (Step::Key(k), Value::Object(m)) => m.remove(k),
            (Step::Index(n), Value::Array(a)) if *n < a.len() => Some(a.swap_remove(*n)),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => {
                return Err(PathMiss {
                    reason: format!("'{here}' is {}", describe_json(&v)),
                    deepest: here,
                })
            }
        }
    }
    Ok(v)
}

/// Media and bytes in a readable line: `<image/png 12.3 KiB>`.
pub fn bytes_summary(b: &[u8]) -> String {
    let size = if b.len() >= 1024 * 1024 {
        format!("{:.1} MiB", b.len() as f64 / (1024.0 * 1024.0))
    } else if b.len() >= 1024 {
        format!("{:.1} KiB", b.len() as f64 / 1024.0)
    } else {
        format!("{} B", b.len())
    };
    match crate::sniff(b) {
        Some((_, mime)) => format!("<{mime} {size}>"),
        None => format!("<bytes {size}>"),
    }
}

/// Element `i` of a string column, whichever of Arrow's string layouts it has.
fn text_at(col: &dyn Array, i: usize) -> Option<&str> {
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(i),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i),
        DataType::Utf8View => col.as_string_view().value(i),
        _ => return None,
    })
}

/// Element `i` of a bytes column (binary, large or fixed-size).
fn bytes_at(col: &dyn Array, i: usize) -> Option<&[u8]> {
    Some(match col.data_type() {
        DataType::Binary => col.as_binary::<i32>().value(i),
        DataType::LargeBinary => col.as_binary::<i64>().value(i),
        DataType::FixedSizeBinary(_) => col.as_fixed_size_binary().value(i),
        _ => return None,
    })
}

/// Element `i` of `col` as JSON for people: `json` columns parsed, bytes summarised.
pub fn to_json(field: &Field, col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    let display = || {
        arrow::util::display::array_value_to_string(col, i)
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    match col.data_type() {
        DataType::Boolean => json!(col.as_boolean().value(i)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            match arrow::compute::cast(&col.slice(i, 1), &DataType::Int64) {
                Ok(a) => json!(a.as_primitive::<arrow::datatypes::Int64Type>().value(0)),
                Err(_) => display(),
            }
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            match arrow::compute::cast(&col.slice(i, 1), &DataType::UInt64) {
                Ok(a) => json!(a.as_primitive::<arrow::datatypes::UInt64Type>().value(0)),
                Err(_) => display(),
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            match arrow::compute::cast(&col.slice(i, 1), &DataType::Float64) {
                Ok(a) => {
                    let x = a.as_primitive::<arrow::datatypes::Float64Type>().value(0);
                    serde_json::Number::from_f64(x)
                        .map_or_else(|| json!(x.to_string()), Value::Number)
                }
                Err(_) => display(),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = text_at(col, i).unwrap_or_default();
            if is_json_field(field) {
                serde_json::from_str(text).unwrap_or_else(|_| json!(text))
            } else {
                json!(text)
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            json!(bytes_summary(bytes_at(col, i).unwrap_or_default()))
        }
        DataType::List(f) => list_json(f, &col.as_list::<i32>().value(i)),
        DataType::LargeList(f) => list_json(f, &col.as_list::<i64>().value(i)),
        DataType::FixedSizeList(f, _) => list_json(f, &col.as_fixed_size_list().value(i)),
        DataType::Map(entry, _) => {
            let m = col.as_map();
            let e = m.value(i);
            let (kf, vf) = match entry.data_type() {
                DataType::Struct(f) if f.len() == 2 => (f[0].clone(), f[1].clone()),
                _ => return display(),
            };
            Value::Object(
                (0..e.len())
                    .map(|k| {
                        let key = match to_json(&kf, e.column(0).as_ref(), k) {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (key, to_json(&vf, e.column(1).as_ref(), k))
                    })
                    .collect(),
            )
        }
        DataType::Struct(fields) => {
            let s = col.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), to_json(f, c.as_ref(), i)))
                    .collect(),
            )
        }
        _ => display(),
    }
}

fn list_json(f: &Field, items: &ArrayRef) -> Value {
    Value::Array(
        (0..items.len())
            .map(|k| to_json(f, items.as_ref(), k))
            .collect(),
    )
}

/// The bytes `--raw` writes for a found value: bytes as they are, text without quotes, anything
/// else as compact JSON.
pub fn raw_bytes(found: &Found) -> Vec<u8> {
    match found {
        Found::Arrow(field, a) if !a.is_null(0) => {
            match (bytes_at(a.as_ref(), 0), text_at(a.as_ref(), 0)) {
                (Some(b), _) => b.to_vec(),
                (_, Some(t)) if !is_json_field(field) => t.as_bytes().to_vec(),
                _ => to_json(field, a.as_ref(), 0).to_string().into_bytes(),
            }
        }
        Found::Arrow(..) => b"null".to_vec(),
        Found::Json(Value::String(s)) => s.as_bytes().to_vec(),
        Found::Json(v) => v.to_string().into_bytes(),
    }
}

/// Pretty JSON where arrays of plain numbers stay on one line (a 1,536-wide vector is one line,
/// not 1,536).
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    pretty_into(v, 0, &mut out);
    out
}

fn pretty_into(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a)
            if a.iter()
                .all(|x| x.is_number() || x.is_null() || x.is_boolean()) =>
        {
            out.push_str(&v.to_string().replace(',', ", "))
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (k, item) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                pretty_into(item, indent + 1, out);
                out.push_str(if k + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(m) => {
            out.push_str("{\n");
            for (k, (key, item)) in m.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                pretty_into(item, indent + 1, out);
                out.push_str(if k + 1 < m.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Distinct counts and top values

/// Distinct values counted exactly up to this many; beyond, estimated (k minimum values).
pub const EXACT_DISTINCT: usize = 1 << 16;
/// Top values are tracked while a column has at most this many distinct values.
pub const TOP_TRACKED: usize = 10_000;
/// How many top values are reported.
pub const TOP_SHOWN: usize = 10;

/// Distinct count and top values of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub distinct: u64,
    pub distinct_exact: bool,
    /// The most frequent values (count descending, then value ascending), for categorical
    /// columns: at most [`TOP_TRACKED`] distinct values, each seen twice on average.
    pub top: Option<Vec<(Value, u64)>>,
}

/// Whether `table stats` counts distinct values of a column of this type.
pub fn profiled(dt: &DataType) -> bool {
    if let DataType::Dictionary(_, values) = dt {
        return profiled(values);
    }
    dt.is_primitive()
        || matches!(
            dt,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::FixedSizeBinary(_)
        )
}

#[derive(Default)]
struct Kmv {
    smallest: BTreeSet<u64>,
}

impl Kmv {
    fn add(&mut self, h: u64) {
        if self.smallest.len() >= EXACT_DISTINCT {
            let below_max = self.smallest.last().is_some_and(|max| h < *max);
            if below_max && self.smallest.insert(h) {
                self.smallest.pop_last();
            }
        } else {
            self.smallest.insert(h);
        }
    }

    fn estimate(&self) -> (u64, bool) {
        if self.smallest.len() < EXACT_DISTINCT {
            return (self.smallest.len() as u64, true);
        }
        let kth = self.smallest.last().copied().unwrap_or(u64::MAX) as f64 / u64::MAX as f64;
        (((EXACT_DISTINCT - 1) as f64 / kth).round() as u64, false)
    }
}

enum Top {
    Text(HashMap<String, u64>),
    Int(HashMap<i128, u64>),
    Bool([u64; 2]),
    Off,
}

/// Counts distinct values and top values of one column over many batches.
pub struct Profiler {
    kmv: Kmv,
    top: Top,
    non_null: u64,
}

fn hash_of(v: impl Hash) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl Profiler {
    pub fn new(dt: &DataType) -> Profiler {
        let dt = match dt {
            DataType::Dictionary(_, values) => values.as_ref(),
            other => other,
        };
        let top = match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Top::Text(HashMap::new()),
            DataType::Boolean => Top::Bool([0, 0]),
            d if d.is_integer() => Top::Int(HashMap::new()),
            _ => Top::Off,
        };
        Profiler {
            kmv: Kmv::default(),
            top,
            non_null: 0,
        }
    }

    fn count_text(&mut self, s: &str) {
        if let Top::Text(m) = &mut self.top {
            if let Some(c) = m.get_mut(s) {
                *c += 1;
            } else if m.len() < TOP_TRACKED {
                m.insert(s.to_string(), 1);
            } else {
                self.top = Top::Off;
            }
        }
    }

    fn count_int(&mut self, v: i128) {
        if let Top::Int(m) = &mut self.top {
            if let Some(c) = m.get_mut(&v) {
                *c += 1;
            } else if m.len() < TOP_TRACKED {
                m.insert(v, 1);
            } else {
                self.top = Top::Off;
            }
        }
    }

    /// Adds a column's values.
    pub fn add(&mut self, col: &dyn Array) {
        // A dictionary column is profiled by its values.
        if let DataType::Dictionary(_, values) = col.data_type() {
            if let Ok(plain) = arrow::compute::cast(col, values) {
                self.add(plain.as_ref());
            }
            return;
        }
        let valid = |i: usize| col.is_valid(i);
        let n = col.len();
        self.non_null += (n - col.null_count()) as u64;
        match col.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                for s in (0..n).filter(|i| valid(*i)).filter_map(|i| text_at(col, i)) {
                    self.kmv.add(hash_of(s));
                    self.count_text(s);
                }
            }
            DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
                for b in (0..n)
                    .filter(|i| valid(*i))
                    .filter_map(|i| bytes_at(col, i))
                {
                    self.kmv.add(hash_of(b));
                }
            }
            DataType::Boolean => {
                let a = col.as_boolean();
                for i in (0..n).filter(|i| valid(*i)) {
                    let v = a.value(i);
                    self.kmv.add(hash_of(v));
                    if let Top::Bool(c) = &mut self.top {
                        c[usize::from(v)] += 1;
                    }
                }
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                if let Ok(f) = arrow::compute::cast(col, &DataType::Float64) {
                    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
                    for i in (0..n).filter(|i| valid(*i)) {
                        let x = f.value(i);
                        // -0.0 equals 0.0, and every NaN is one value.
                        let bits = if x == 0.0 {
                            0
                        } else if x.is_nan() {
                            f64::NAN.to_bits()
                        } else {
                            x.to_bits()
                        };
                        self.kmv.add(hash_of(bits));
                    }
                }
            }
            d if d.is_integer() => {
                let wide = if matches!(d, DataType::UInt64) {
                    arrow::compute::cast(col, &DataType::Decimal128(20, 0))
                } else {
                    arrow::compute::cast(col, &DataType::Int64)
                };
                if let Ok(w) = wide {
                    for i in (0..n).filter(|i| valid(*i)) {
                        let v: i128 = match w.data_type() {
                            DataType::Int64 => {
                                i128::from(w.as_primitive::<arrow::datatypes::Int64Type>().value(i))
                            }
                            _ => w
                                .as_primitive::<arrow::datatypes::Decimal128Type>()
                                .value(i),
                        };
                        self.kmv.add(hash_of(v));
                        self.count_int(v);
                    }
                }
            }
            _ => {
                // Dates, times, timestamps, decimals: their physical values.
                let data = col.to_data();
                let width = data.data_type().primitive_width().unwrap_or(0);
                if width > 0 {
                    let bytes = data.buffers()[0].as_slice();
                    for i in (0..n).filter(|i| valid(*i)) {
                        let at = (data.offset() + i) * width;
                        self.kmv.add(hash_of(&bytes[at..at + width]));
                    }
                }
            }
        }
    }

    pub fn finish(self) -> Profile {
        let (distinct, distinct_exact) = self.kmv.estimate();
        let mut top: Option<Vec<(Value, u64)>> = match self.top {
            Top::Text(m) => Some(m.into_iter().map(|(k, c)| (json!(k), c)).collect()),
            Top::Int(m) => Some(
                m.into_iter()
                    .map(|(k, c)| {
                        let v =
                            i64::try_from(k).map_or_else(|_| json!(k.to_string()), |x| json!(x));
                        (v, c)
                    })
                    .collect(),
            ),
            Top::Bool([f, t]) => Some(
                [(json!(false), f), (json!(true), t)]
                    .into_iter()
                    .filter(|(_, c)| *c > 0)
                    .collect(),
            ),
            Top::Off => None,
        };
        let categorical =
            distinct_exact && (distinct as usize) <= TOP_TRACKED && distinct * 2 <= self.non_null;
        if !categorical {
            top = None;
        }
        if let Some(t) = &mut top {
            t.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then_with(|| match (a.0.as_f64(), b.0.as_f64()) {
                        (Some(x), Some(y)) => x.total_cmp(&y),
                        _ => a.0.to_string().cmp(&b.0.to_string()),
                    })
            });
            t.truncate(TOP_SHOWN);
        }
        Profile {
            distinct,
            distinct_exact,
            top,
        }
    }
}

/// Reads `columns` of every file of a version and gives each batch to `each`.
pub fn scan_columns(
    table: &Table,
    manifest: &Manifest,
    columns: &[usize],
    mut each: impl FnMut(&RecordBatch),
) -> Result<(), FormatError> {
    for path in table.file_paths(manifest) {
        crate::input::read_parquet_columns(&path, columns, &mut each)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Comparing two versions row by row

/// Where two row sequences first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Different columns (names or types).
    Schema(String),
    /// A different value at `row` in `column`.
    Value { row: u64, column: String },
    /// One has more rows.
    Rows { left: u64, right: u64 },
}

/// Data files (path, rows) read in order, a batch at a time.
struct Rows {
    files: std::vec::IntoIter<(PathBuf, u64)>,
    pending: std::collections::VecDeque<RecordBatch>,
}

impl Rows {
    fn next(&mut self) -> Result<Option<RecordBatch>, FormatError> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                if b.num_rows() > 0 {
                    return Ok(Some(b));
                }
                continue;
            }
            let Some((path, rows)) = self.files.next() else {
                return Ok(None);
            };
            self.pending
                .extend(read_slice(&slice_of(&path, 0, rows), 8192)?);
        }
    }
}

fn same_columns(a: &arrow::datatypes::Schema, b: &arrow::datatypes::Schema) -> Option<String> {
    let names = |s: &arrow::datatypes::Schema| -> Vec<String> {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect()
    };
    let (x, y) = (names(a), names(b));
    (x != y).then(|| format!("columns [{}] vs [{}]", x.join(", "), y.join(", ")))
}

/// Compares two sequences of data files row by row, in order; `None` when equal.
pub fn first_difference(
    left: Vec<(PathBuf, u64)>,
    right: Vec<(PathBuf, u64)>,
) -> Result<Option<Difference>, FormatError> {
    let total = |f: &[(PathBuf, u64)]| f.iter().map(|(_, r)| r).sum::<u64>();
    let (left_rows, right_rows) = (total(&left), total(&right));
    let mut a = Rows {
        files: left.into_iter(),
        pending: Default::default(),
    };
    let mut b = Rows {
        files: right.into_iter(),
        pending: Default::default(),
    };
    let (mut x, mut y) = (a.next()?, b.next()?);
    let mut row = 0u64;
    while let (Some(xa), Some(yb)) = (&x, &y) {
        if let Some(d) = same_columns(&xa.schema(), &yb.schema()) {
            return Ok(Some(Difference::Schema(d)));
        }
        let n = xa.num_rows().min(yb.num_rows());
        let (xs, ys) = (xa.slice(0, n), yb.slice(0, n));
        for c in 0..xs.num_columns() {
            let (p, q) = (xs.column(c), ys.column(c));
            if p.as_ref() != q.as_ref() {
                let at = (0..n)
                    .find(|i| p.slice(*i, 1).as_ref() != q.slice(*i, 1).as_ref())
                    .unwrap_or(0);
                return Ok(Some(Difference::Value {
                    row: row + at as u64,
                    column: xs.schema().field(c).name().clone(),
                }));
            }
        }
        row += n as u64;
        x = if n < xa.num_rows() {
            Some(xa.slice(n, xa.num_rows() - n))
        } else {
            a.next()?
        };
        y = if n < yb.num_rows() {
            Some(yb.slice(n, yb.num_rows() - n))
        } else {
            b.next()?
        };
    }
    if x.is_some() || y.is_some() || left_rows != right_rows {
        return Ok(Some(Difference::Rows {
            left: left_rows,
            right: right_rows,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn paths_parse_and_print() {
        let p = parse_path("meta.turns[2].text").expect("parses");
        assert_eq!(
            p,
            vec![
                Step::Key("meta".into()),
                Step::Key("turns".into()),
                Step::Index(2),
                Step::Key("text".into())
            ]
        );
        assert_eq!(path_text(&p), "meta.turns[2].text");
        let q = parse_path("a[\"x.y\"]['z'][0]").expect("parses");
        assert_eq!(
            q,
            vec![
                Step::Key("a".into()),
                Step::Key("x.y".into()),
                Step::Key("z".into()),
                Step::Index(0)
            ]
        );
        assert_eq!(path_text(&q), "a[\"x.y\"].z[0]");
        for bad in [
            "", "a.", ".a", "a..b", "a[", "a[x]", "a[-1]", "[0]", "a[0]b",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should not parse");
        }
    }

    fn json_batch(text: &str) -> RecordBatch {
        let mut md = std::collections::HashMap::new();
        md.insert(TYPE_KEY.to_string(), "json".to_string());
        let field = Field::new("meta", DataType::Utf8, true).with_metadata(md);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            field,
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec![text])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn json_columns_are_navigable_and_misses_name_the_deepest_prefix() {
        let b = json_batch(r#"{"turns": [{"text": "hi"}, {"text": "yo", "tags": ["a"]}]}"#);
        let path = |p: &str| parse_path(p).expect("parses");
        match navigate(&b, &path("meta.turns[1].tags[0]")) {
            Ok(Found::Json(v)) => assert_eq!(v, json!("a")),
            other => panic!("unexpected {other:?}"),
        }
        let miss = navigate(&b, &path("meta.turns[5].text")).expect_err("no such item");
        assert_eq!(miss.deepest, "meta.turns");
        assert!(miss.reason.contains("array of 2 items"), "{}", miss.reason);
        let miss = navigate(&b, &path("meta.turns[0].who")).expect_err("no such key");
        assert_eq!(miss.deepest, "meta.turns[0]");
        assert!(miss.reason.contains("keys text"), "{}", miss.reason);
        let miss = navigate(&b, &path("nope")).expect_err("no such column");
        assert!(miss.reason.contains("columns: id, meta"), "{}", miss.reason);
        let miss = navigate(&b, &path("id.x")).expect_err("scalar");
        assert_eq!(miss.deepest, "id");
    }

    #[test]
    fn distinct_is_exact_when_small_and_close_when_large() {
        let mut p = Profiler::new(&DataType::Utf8);
        p.add(&StringArray::from(vec![
            Some("b"),
            Some("a"),
            None,
            Some("a"),
        ]));
        p.add(&StringArray::from(vec![Some("b"), Some("a")]));
        let r = p.finish();
        assert_eq!((r.distinct, r.distinct_exact), (2, true));
        assert_eq!(r.top, Some(vec![(json!("a"), 3), (json!("b"), 2)]));
        let mut p = Profiler::new(&DataType::Int64);
        let n = 400_000i64;
        p.add(&Int64Array::from((0..n).collect::<Vec<_>>()));
        let r = p.finish();
        assert!(!r.distinct_exact);
        let err = (r.distinct as f64 - n as f64).abs() / n as f64;
        assert!(err < 0.02, "estimate {} for {n}", r.distinct);
        assert_eq!(r.top, None, "not categorical");
    }

    #[test]
    fn pretty_keeps_number_arrays_on_one_line() {
        let v = json!({"v": [1, 2.5, 3], "t": [{"a": 1}]});
        assert_eq!(
            pretty(&v),
            "{\n  \"v\": [1, 2.5, 3],\n  \"t\": [\n    {\n      \"a\": 1\n    }\n  ]\n}"
        );
    }
}
