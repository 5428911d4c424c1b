//! Writing one chunk's output as a Parquet file with the Arrow schema embedded, so any Parquet
//! reader can read the file on its own.

use crate::FormatError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs;
use std::path::Path;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes `batches` to `final_path`: first to a temporary name beside it, synced, then renamed,
/// so a file under its final name is always complete. The rename itself is made durable by the
/// directory sync at commit ([`crate::Table::commit`]); a journal that outlives an OS crash
/// checks that each file it records exists with its size (and the chunk is redone otherwise).
pub fn write_chunk_file(
    final_path: &Path,
    batches: &[RecordBatch],
) -> Result<WrittenFile, FormatError> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(FormatError::BadSchemaJson("no batches to write".into())),
    };
    let dir = final_path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(FormatError::io(dir))?;
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{name}"));
    let file = fs::File::create(&tmp).map_err(FormatError::io(&tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(64 * 1024))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(FormatError::parquet(&tmp))?;
    let mut rows = 0u64;
    for b in batches {
        writer.write(b).map_err(FormatError::parquet(&tmp))?;
        rows += b.num_rows() as u64;
    }
    let file = writer.into_inner().map_err(FormatError::parquet(&tmp))?;
    file.sync_all().map_err(FormatError::io(&tmp))?;
    let bytes = file.metadata().map_err(FormatError::io(&tmp))?.len();
    drop(file);
    fs::rename(&tmp, final_path).map_err(FormatError::io(final_path))?;
    Ok(WrittenFile { rows, bytes })
}

/// The number of rows a Parquet file's footer records (reads only the footer).
pub fn parquet_rows(path: &std::path::Path) -> Result<u64, FormatError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let f = std::fs::File::open(path).map_err(FormatError::io(path))?;
    let reader = SerializedFileReader::new(f).map_err(FormatError::parquet(path))?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}
