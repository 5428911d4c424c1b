//! Per-column statistics, computed by the worker for each file it writes and merged into each
//! version's manifest: count, nulls, min / max / mean for numbers, min / max for strings, and
//! min / max / mean length for strings (characters), bytes (bytes) and lists (items).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, LargeBinaryArray, LargeStringArray, StringArray,
};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

/// Statistics of one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    /// Values, nulls included.
    pub count: u64,
    pub nulls: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<serde_json::Value>,
    /// Sum of the non-null numbers (kept so that means merge exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_length: Option<f64>,
}

fn json_f64(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        serde_json::json!(x as i64)
    } else {
        serde_json::json!(x)
    }
}

/// The length of `s` in characters; `ascii` says it is its length in bytes.
fn char_len(s: &str, ascii: bool) -> u64 {
    if ascii {
        s.len() as u64
    } else {
        s.chars().count() as u64
    }
}

fn lengths(col: &ArrayRef) -> Option<Vec<u64>> {
    let valid = |i: usize| col.is_valid(i);
    let n = col.len();
    Some(match col.data_type() {
        DataType::Utf8 => {
            let a = col.as_any().downcast_ref::<StringArray>()?;
            // All ASCII (one fast scan of the bytes): each value's length is its byte length.
            let ascii = a.value_data().is_ascii();
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| char_len(a.value(i), ascii))
                .collect()
        }
        DataType::LargeUtf8 => {
            let a = col.as_any().downcast_ref::<LargeStringArray>()?;
            // All ASCII (one fast scan of the bytes): each value's length is its byte length.
            let ascii = a.value_data().is_ascii();
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| char_len(a.value(i), ascii))
                .collect()
        }
        DataType::Binary => {
            let a = col.as_any().downcast_ref::<BinaryArray>()?;
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| a.value(i).len() as u64)
                .collect()
        }
        DataType::LargeBinary => {
            let a = col.as_any().downcast_ref::<LargeBinaryArray>()?;
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| a.value(i).len() as u64)
                .collect()
        }
        DataType::List(_) => {
            let a = col.as_list::<i32>();
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| a.value_length(i) as u64)
                .collect()
        }
        DataType::LargeList(_) => {
            let a = col.as_list::<i64>();
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| a.value_length(i) as u64)
                .collect()
        }
        DataType::FixedSizeList(_, w) => vec![*w as u64; n - col.null_count()],
        DataType::Map(_, _) => {
            let a = col.as_map();
            (0..n)
                .filter(|i| valid(*i))
                .map(|i| a.value_length(i) as u64)
                .collect()
        }
        _ => return None,
    })
}

fn is_number(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_floating()
}

/// Statistics of each column of `batches` (which share one schema).
pub fn batch_stats(batches: &[RecordBatch]) -> Vec<ColumnStats> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let schema = first.schema();
    let mut out: Vec<ColumnStats> = schema
        .fields()
        .iter()
        .map(|f| ColumnStats {
            name: f.name().clone(),
            ..Default::default()
        })
        .collect();
    for batch in batches {
        for (i, col) in batch.columns().iter().enumerate() {
            let s = ColumnStats {
                name: out[i].name.clone(),
                ..column_stats(col)
            };
            out[i] = merge_one(&out[i], &s);
        }
    }
    out
}

fn column_stats(col: &ArrayRef) -> ColumnStats {
    let mut s = ColumnStats {
        count: col.len() as u64,
        nulls: col.null_count() as u64,
        ..Default::default()
    };
    let dt = col.data_type();
    if is_number(dt) {
        if let Ok(f) = arrow::compute::cast(col, &DataType::Float64) {
            let f = f.as_primitive::<Float64Type>();
            // NaN is left out of min and max (as Arrow C++ and pyarrow do).
            let (lo, hi) = f.iter().flatten().filter(|x| !x.is_nan()).fold(
                (None, None),
                |(lo, hi): (Option<f64>, Option<f64>), x| {
                    (
                        Some(lo.map_or(x, |l| l.min(x))),
                        Some(hi.map_or(x, |h| h.max(x))),
                    )
                },
            );
            s.min = lo.map(json_f64);
            s.max = hi.map(json_f64);
            s.sum = arrow::compute::sum(f).or(Some(0.0));
        }
        // Integers keep their exact bounds (a float has 53 bits).
        if dt.is_integer() {
            if let Some(a) = col.as_any().downcast_ref::<arrow::array::UInt64Array>() {
                s.min = arrow::compute::min(a).map(|v| serde_json::json!(v));
                s.max = arrow::compute::max(a).map(|v| serde_json::json!(v));
            } else if let Ok(w) = arrow::compute::cast(col, &DataType::Int64) {
                let w = w.as_primitive::<arrow::datatypes::Int64Type>();
                s.min = arrow::compute::min(w).map(|v| serde_json::json!(v));
                s.max = arrow::compute::max(w).map(|v| serde_json::json!(v));
            }
        }
    }
    if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
        s.min = arrow::compute::min_string(a).map(|v| serde_json::json!(v));
        s.max = arrow::compute::max_string(a).map(|v| serde_json::json!(v));
    }
    if let Some(l) = lengths(col) {
        s.min_length = l.iter().min().copied();
        s.max_length = l.iter().max().copied();
        s.sum_length = Some(l.iter().sum());
    }
    finish(s)
}

fn cmp_json(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    // Whole numbers compare exactly (as f64, 2^63 and 2^63 + 1 are equal).
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    match (a.as_f64(), b.as_f64(), a.as_str(), b.as_str()) {
        (Some(x), Some(y), _, _) => x.total_cmp(&y),
        (_, _, Some(x), Some(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

fn pick(
    a: &Option<serde_json::Value>,
    b: &Option<serde_json::Value>,
    want: std::cmp::Ordering,
) -> Option<serde_json::Value> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if cmp_json(y, x) == want {
            y.clone()
        } else {
            x.clone()
        }),
        (x, y) => x.clone().or_else(|| y.clone()),
    }
}

fn add<T: std::ops::Add<Output = T> + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    }
}

fn finish(mut s: ColumnStats) -> ColumnStats {
    let valid = s.count - s.nulls;
    s.mean = s.sum.filter(|_| valid > 0).map(|t| t / valid as f64);
    s.mean_length = s
        .sum_length
        .filter(|_| valid > 0)
        .map(|t| t as f64 / valid as f64);
    s
}

fn merge_one(a: &ColumnStats, b: &ColumnStats) -> ColumnStats {
    finish(ColumnStats {
        name: a.name.clone(),
        count: a.count + b.count,
        nulls: a.nulls + b.nulls,
        min: pick(&a.min, &b.min, std::cmp::Ordering::Less),
        max: pick(&a.max, &b.max, std::cmp::Ordering::Greater),
        sum: add(a.sum, b.sum),
        mean: None,
        min_length: match (a.min_length, b.min_length) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        max_length: match (a.max_length, b.max_length) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        sum_length: add(a.sum_length, b.sum_length),
        mean_length: None,
    })
}

/// Merges the statistics of several files (columns matched by name, in the first's order).
pub fn merge_stats<'a>(parts: impl IntoIterator<Item = &'a [ColumnStats]>) -> Vec<ColumnStats> {
    let mut out: Vec<ColumnStats> = Vec::new();
    for part in parts {
        for c in part {
            match out.iter_mut().find(|o| o.name == c.name) {
                Some(o) => *o = merge_one(o, c),
                None => out.push(c.clone()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, ListArray};
    use arrow::datatypes::{Field, Int32Type, Schema};
    use std::sync::Arc;

    #[test]
    fn computes_and_merges_like_one_pass() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
        ]));
        let batch =
            |n: Vec<Option<i64>>, s: Vec<Option<&str>>, l: Vec<Option<Vec<Option<i32>>>>| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(n)),
                        Arc::new(StringArray::from(s)),
                        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(l)),
                    ],
                )
                .unwrap()
            };
        let a = batch(
            vec![Some(1), None, Some(5)],
            vec![Some("héllo"), Some("b"), None],
            vec![Some(vec![Some(1)]), None, Some(vec![])],
        );
        let b = batch(
            vec![Some(-2)],
            vec![Some("zz")],
            vec![Some(vec![Some(1), Some(2), None])],
        );
        let whole = batch_stats(&[a.clone(), b.clone()]);
        let merged = merge_stats([batch_stats(&[a]).as_slice(), batch_stats(&[b]).as_slice()]);
        assert_eq!(whole, merged);
        let n = &whole[0];
        assert_eq!(
            (n.count, n.nulls, n.min.clone(), n.max.clone()),
            (
                4,
                1,
                Some(serde_json::json!(-2)),
                Some(serde_json::json!(5))
            )
        );
        assert!((n.mean.unwrap() - 4.0 / 3.0).abs() < 1e-12);
        let s = &whole[1];
        assert_eq!(
            (s.min.clone(), s.max.clone()),
            (Some(serde_json::json!("b")), Some(serde_json::json!("zz")))
        );
        assert_eq!(
            (s.min_length, s.max_length),
            (Some(1), Some(5)),
            "lengths count characters"
        );
        let l = &whole[2];
        assert_eq!(
            (l.min_length, l.max_length, l.mean_length),
            (Some(0), Some(3), Some(4.0 / 3.0))
        );
    }

    #[test]
    fn integer_bounds_are_exact_and_nan_is_not_a_bound() {
        use arrow::array::{Float64Array, UInt64Array};
        let big: ArrayRef = Arc::new(UInt64Array::from(vec![1u64 << 63, (1u64 << 63) + 5]));
        let s = column_stats(&big);
        assert_eq!(s.min, Some(serde_json::json!(1u64 << 63)));
        assert_eq!(s.max, Some(serde_json::json!((1u64 << 63) + 5)));
        let parts = [
            vec![ColumnStats {
                name: "x".into(),
                ..column_stats(&big)
            }],
            vec![ColumnStats {
                name: "x".into(),
                ..column_stats(&(Arc::new(UInt64Array::from(vec![(1u64 << 63) + 9])) as ArrayRef))
            }],
        ];
        let merged = merge_stats(parts.iter().map(Vec::as_slice));
        assert_eq!(merged[0].max, Some(serde_json::json!((1u64 << 63) + 9)));
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN, -2.0]));
        let s = column_stats(&f);
        assert_eq!(
            (s.min, s.max),
            (Some(serde_json::json!(-2)), Some(serde_json::json!(1.5)))
        );
    }
}
