//! Distinct counts and top values of a column (`table stats`): exact up to [`EXACT_DISTINCT`]
//! distinct values, estimated beyond (k minimum values); top values for categorical columns.

use crate::render::{bytes_at, text_at};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

/// Distinct values counted exactly up to this many; beyond, estimated (k minimum values).
pub const EXACT_DISTINCT: usize = 1 << 16;
/// Top values are tracked while a column has at most this many distinct values.
pub const TOP_TRACKED: usize = 10_000;
/// How many top values are reported.
pub const TOP_SHOWN: usize = 10;

/// Distinct count and top values of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Distinct non-null values: exact or estimated, as `distinct_exact` says.
    pub distinct: u64,
    /// Whether `distinct` was counted exactly (at most [`EXACT_DISTINCT`] distinct values).
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

/// The k smallest hashes seen (k = [`EXACT_DISTINCT`]).
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

/// Counts per value, while there are few enough values to track.
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

/// Indices of the valid (non-null) elements of `col`.
fn valid(col: &dyn Array) -> impl Iterator<Item = usize> + '_ {
    (0..col.len()).filter(|i| col.is_valid(*i))
}

impl Profiler {
    /// A profiler for a column of type `dt`.
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
        self.non_null += (col.len() - col.null_count()) as u64;
        match col.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                for s in valid(col).filter_map(|i| text_at(col, i)) {
                    self.kmv.add(hash_of(s));
                    self.count_text(s);
                }
            }
            DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
                for b in valid(col).filter_map(|i| bytes_at(col, i)) {
                    self.kmv.add(hash_of(b));
                }
            }
            DataType::Boolean => {
                let a = col.as_boolean();
                for v in valid(col).map(|i| a.value(i)) {
                    self.kmv.add(hash_of(v));
                    if let Top::Bool(c) = &mut self.top {
                        c[usize::from(v)] += 1;
                    }
                }
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => self.add_floats(col),
            d if d.is_integer() => self.add_integers(col),
            // Dates, times, timestamps, decimals: their physical values.
            _ => self.add_physical(col),
        }
    }

    fn add_floats(&mut self, col: &dyn Array) {
        let Ok(f) = arrow::compute::cast(col, &DataType::Float64) else {
            return;
        };
        let f = f.as_primitive::<arrow::datatypes::Float64Type>();
        for x in valid(col).map(|i| f.value(i)) {
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

    fn add_integers(&mut self, col: &dyn Array) {
        let wide = if matches!(col.data_type(), DataType::UInt64) {
            arrow::compute::cast(col, &DataType::Decimal128(20, 0))
        } else {
            arrow::compute::cast(col, &DataType::Int64)
        };
        let Ok(w) = wide else {
            return;
        };
        for i in valid(col) {
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

    fn add_physical(&mut self, col: &dyn Array) {
        let data = col.to_data();
        let width = data.data_type().primitive_width().unwrap_or(0);
        if width == 0 {
            return;
        }
        let bytes = data.buffers()[0].as_slice();
        for i in valid(col) {
            let at = (data.offset() + i) * width;
            self.kmv.add(hash_of(&bytes[at..at + width]));
        }
    }

    /// The profile of every value added.
    pub fn finish(self) -> Profile {
        let (distinct, distinct_exact) = self.kmv.estimate();
        let categorical =
            distinct_exact && (distinct as usize) <= TOP_TRACKED && distinct * 2 <= self.non_null;
        let top = categorical.then(|| top_values(self.top)).flatten();
        Profile {
            distinct,
            distinct_exact,
            top,
        }
    }
}

/// The [`TOP_SHOWN`] most frequent values, count descending, then value ascending.
fn top_values(top: Top) -> Option<Vec<(Value, u64)>> {
    let mut top: Vec<(Value, u64)> = match top {
        Top::Text(m) => m.into_iter().map(|(k, c)| (json!(k), c)).collect(),
        Top::Int(m) => m
            .into_iter()
            .map(|(k, c)| {
                let v = i64::try_from(k).map_or_else(|_| json!(k.to_string()), |x| json!(x));
                (v, c)
            })
            .collect(),
        Top::Bool([f, t]) => [(json!(false), f), (json!(true), t)]
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .collect(),
        Top::Off => return None,
    };
    top.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| match (a.0.as_f64(), b.0.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.0.to_string().cmp(&b.0.to_string()),
            })
    });
    top.truncate(TOP_SHOWN);
    Some(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

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
}
