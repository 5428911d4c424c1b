//! HDF5 inputs (feature `hdf5`): each dataset of a group is a column, rows along the first
//! axis; a dataset with more dimensions becomes a tensor column (a fixed-size list of the
//! remaining dimensions, row-major). `file.h5:/group` picks the group (default `/`).

use super::InputFile;
use crate::FormatError;
use arrow::record_batch::RecordBatch;
use flywheel_protocol::InputSlice;

#[cfg(not(feature = "hdf5"))]
fn not_compiled(path: &str) -> FormatError {
    FormatError::Unsupported {
        path: path.into(),
        what: "HDF5 support is not compiled into this build; rebuild with --features hdf5".into(),
    }
}

#[cfg(not(feature = "hdf5"))]
pub(super) fn plan(
    file: &InputFile,
    _chunk_rows: u64,
    _out: &mut Vec<InputSlice>,
) -> Result<u64, FormatError> {
    Err(not_compiled(&file.path.to_string_lossy()))
}

#[cfg(not(feature = "hdf5"))]
pub(super) fn read(
    slice: &InputSlice,
    _batch_rows: usize,
) -> Result<Vec<RecordBatch>, FormatError> {
    Err(not_compiled(&slice.path))
}

#[cfg(feature = "hdf5")]
pub(super) use imp::{plan, read};

#[cfg(feature = "hdf5")]
mod imp {
    use super::super::row_slices;
    use super::*;
    use arrow::array::{ArrayRef, BooleanArray, FixedSizeListArray, PrimitiveArray, StringArray};
    use arrow::datatypes::{
        ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type,
        Int64Type, Int8Type, Schema, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
    };
    use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
    use hdf5::{Dataset, H5Type};
    use std::path::Path;
    use std::sync::Arc;

    fn bad(path: &Path, what: impl std::fmt::Display) -> FormatError {
        FormatError::BadFile {
            path: path.to_path_buf(),
            reason: format!("HDF5: {what}"),
        }
    }

    /// The group's datasets, sorted by name, and their common row count.
    fn columns(path: &Path, group: &str) -> Result<(Vec<Dataset>, u64), FormatError> {
        let file = hdf5::File::open(path).map_err(|e| FormatError::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "not a readable HDF5 file (truncated or corrupt): {}",
                open_detail(&e.to_string())
            ),
        })?;
        let g = file
            .group(group)
            .map_err(|e| bad(path, format!("group '{group}': {e}")))?;
        let mut sets = g.datasets().map_err(|e| bad(path, e))?;
        sets.sort_by_key(|d| d.name());
        if sets.is_empty() {
            return Err(bad(path, format!("group '{group}' holds no dataset")));
        }
        let rows: Vec<(String, u64)> = sets
            .iter()
            .map(|d| {
                (
                    short_name(d),
                    d.shape().first().copied().unwrap_or(1) as u64,
                )
            })
            .collect();
        if rows.iter().any(|(_, n)| *n != rows[0].1) {
            let detail = rows
                .iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(FormatError::RaggedHdf5 {
                path: path.to_path_buf(),
                group: group.to_string(),
                detail,
            });
        }
        Ok((sets, rows[0].1))
    }

    /// One line of the library's error for a file it cannot open, without the prefix that says
    /// only that (`H5Fopen(): unable to open file: `).
    fn open_detail(text: &str) -> String {
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text);
        let line = line.trim();
        line.strip_prefix("H5Fopen(): unable to open file: ")
            .unwrap_or(line)
            .to_string()
    }

    fn short_name(d: &Dataset) -> String {
        d.name().rsplit('/').next().unwrap_or_default().to_string()
    }

    pub(in super::super) fn plan(
        file: &InputFile,
        chunk_rows: u64,
        out: &mut Vec<InputSlice>,
    ) -> Result<u64, FormatError> {
        let group = file.group.clone().unwrap_or_else(|| "/".into());
        let (sets, rows) = columns(&file.path, &group)?;
        for d in &sets {
            column_type(&file.path, d)?;
        }
        row_slices(file, rows, chunk_rows, out);
        Ok(0)
    }

    /// The Arrow type of a dataset's values.
    fn column_type(path: &Path, d: &Dataset) -> Result<DataType, FormatError> {
        let desc = d
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| bad(path, e))?;
        let scalar = match desc {
            TypeDescriptor::Integer(IntSize::U1) => DataType::Int8,
            TypeDescriptor::Integer(IntSize::U2) => DataType::Int16,
            TypeDescriptor::Integer(IntSize::U4) => DataType::Int32,
            TypeDescriptor::Integer(IntSize::U8) => DataType::Int64,
            TypeDescriptor::Unsigned(IntSize::U1) => DataType::UInt8,
            TypeDescriptor::Unsigned(IntSize::U2) => DataType::UInt16,
            TypeDescriptor::Unsigned(IntSize::U4) => DataType::UInt32,
            TypeDescriptor::Unsigned(IntSize::U8) => DataType::UInt64,
            TypeDescriptor::Float(FloatSize::U4) => DataType::Float32,
            TypeDescriptor::Float(FloatSize::U8) => DataType::Float64,
            TypeDescriptor::Boolean => DataType::Boolean,
            TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii => DataType::Utf8,
            TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) if n <= MAX_FIXED => DataType::Utf8,
            // numpy booleans as h5py stores them: an enum of FALSE/TRUE.
            TypeDescriptor::Enum(ref e) if e.members.len() == 2 && e.members.iter().all(|m| m.name == "FALSE" || m.name == "TRUE") => DataType::Boolean,
            other => {
                return Err(bad(
                    path,
                    format!("dataset '{}' has type {other:?}, which flywheel cannot read (integers, floats, booleans and variable-length strings can be read)", d.name()),
                ))
            }
        };
        let shape = d.shape();
        if shape.len() <= 1 {
            return Ok(scalar);
        }
        let width: usize = shape[1..].iter().product();
        Ok(DataType::FixedSizeList(
            Arc::new(Field::new("item", scalar, false)),
            width as i32,
        ))
    }

    fn read_values<T: H5Type + Clone>(
        path: &Path,
        d: &Dataset,
        start: usize,
        end: usize,
    ) -> Result<Vec<T>, FormatError> {
        // Rows start..end along the first axis, everything along the others.
        let mut dims: Vec<hdf5::SliceOrIndex> = vec![(start..end).into()];
        dims.extend((1..d.ndim()).map(|_| hdf5::SliceOrIndex::from(..)));
        let selection = hdf5::Selection::from(hdf5::Hyperslab::from(dims));
        let arr = d
            .read_slice::<T, _, ndarray::IxDyn>(selection)
            .map_err(|e| bad(path, format!("dataset '{}': {e}", d.name())))?;
        Ok(arr.iter().cloned().collect())
    }

    /// Longest fixed-length string flywheel reads (HDF5 converts to the next size up).
    const MAX_FIXED: usize = 4096;

    /// Fixed-length strings (numpy `S`/`U` arrays as h5py stores them), read through HDF5's
    /// string conversion into the smallest supported width that holds them.
    fn fixed_strings(
        path: &Path,
        d: &Dataset,
        s: usize,
        e: usize,
        n: usize,
        unicode: bool,
    ) -> Result<Vec<String>, FormatError> {
        macro_rules! widths {
            ($($w:literal),*) => {
                $(
                    if n <= $w {
                        return Ok(if unicode {
                            read_values::<hdf5::types::FixedUnicode<$w>>(path, d, s, e)?.iter().map(|v| v.as_str().to_string()).collect()
                        } else {
                            read_values::<hdf5::types::FixedAscii<$w>>(path, d, s, e)?.iter().map(|v| v.as_str().to_string()).collect()
                        });
                    }
                )*
            };
        }
        widths!(8, 16, 32, 64, 128, 256, 1024, 4096);
        Err(bad(
            path,
            format!(
                "dataset '{}' holds strings of {n} bytes; at most {MAX_FIXED} are supported",
                d.name()
            ),
        ))
    }

    fn primitive<P: ArrowPrimitiveType>(
        path: &Path,
        d: &Dataset,
        s: usize,
        e: usize,
    ) -> Result<ArrayRef, FormatError>
    where
        P::Native: H5Type + Clone,
    {
        Ok(Arc::new(PrimitiveArray::<P>::from_iter_values(
            read_values::<P::Native>(path, d, s, e)?,
        )))
    }

    fn column(
        path: &Path,
        d: &Dataset,
        ty: &DataType,
        s: usize,
        e: usize,
    ) -> Result<ArrayRef, FormatError> {
        let scalar = match ty {
            DataType::FixedSizeList(f, _) => f.data_type().clone(),
            t => t.clone(),
        };
        let values: ArrayRef = match scalar {
            DataType::Int8 => primitive::<Int8Type>(path, d, s, e)?,
            DataType::Int16 => primitive::<Int16Type>(path, d, s, e)?,
            DataType::Int32 => primitive::<Int32Type>(path, d, s, e)?,
            DataType::Int64 => primitive::<Int64Type>(path, d, s, e)?,
            DataType::UInt8 => primitive::<UInt8Type>(path, d, s, e)?,
            DataType::UInt16 => primitive::<UInt16Type>(path, d, s, e)?,
            DataType::UInt32 => primitive::<UInt32Type>(path, d, s, e)?,
            DataType::UInt64 => primitive::<UInt64Type>(path, d, s, e)?,
            DataType::Float32 => primitive::<Float32Type>(path, d, s, e)?,
            DataType::Float64 => primitive::<Float64Type>(path, d, s, e)?,
            DataType::Boolean => Arc::new(BooleanArray::from(read_values::<bool>(path, d, s, e)?)),
            _ => {
                let desc = d
                    .dtype()
                    .and_then(|t| t.to_descriptor())
                    .map_err(|e| bad(path, e))?;
                let strings: Vec<String> = match desc {
                    TypeDescriptor::VarLenAscii => read_values::<VarLenAscii>(path, d, s, e)?
                        .iter()
                        .map(|v| v.as_str().to_string())
                        .collect(),
                    TypeDescriptor::FixedAscii(n) => fixed_strings(path, d, s, e, n, false)?,
                    TypeDescriptor::FixedUnicode(n) => fixed_strings(path, d, s, e, n, true)?,
                    _ => read_values::<VarLenUnicode>(path, d, s, e)?
                        .iter()
                        .map(|v| v.as_str().to_string())
                        .collect(),
                };
                Arc::new(StringArray::from(strings))
            }
        };
        match ty {
            DataType::FixedSizeList(f, width) => {
                let list = FixedSizeListArray::try_new(Arc::clone(f), *width, values, None)
                    .map_err(|e| bad(path, e))?;
                Ok(Arc::new(list))
            }
            _ => Ok(values),
        }
    }

    pub(in super::super) fn read(
        slice: &InputSlice,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>, FormatError> {
        let path = Path::new(&slice.path);
        let group = slice.group.clone().unwrap_or_else(|| "/".into());
        let (sets, rows) = columns(path, &group)?;
        let end = (slice.row_start + slice.row_count).min(rows);
        let types: Vec<DataType> = sets
            .iter()
            .map(|d| column_type(path, d))
            .collect::<Result<_, _>>()?;
        let schema = Arc::new(Schema::new(
            sets.iter()
                .zip(&types)
                .map(|(d, t)| Field::new(short_name(d), t.clone(), false))
                .collect::<Vec<_>>(),
        ));
        let mut out = Vec::new();
        let mut at = slice.row_start;
        while at < end {
            let to = (at + batch_rows as u64).min(end);
            let cols = sets
                .iter()
                .zip(&types)
                .map(|(d, t)| column(path, d, t, at as usize, to as usize))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(RecordBatch::try_new(Arc::clone(&schema), cols).map_err(|e| bad(path, e))?);
            at = to;
        }
        Ok(out)
    }
}
