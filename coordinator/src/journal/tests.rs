//! The journal's unit tests. A test's unwrap is its assertion that the set-up worked.

use super::*;
use flywheel_protocol::{Attempt, ChunkId};

fn out(i: u32, dir: &Path) -> ChunkOutput {
    let rel = format!("data/c{i}.parquet");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let batch = arrow::record_batch::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![i as i64]))
            as arrow::array::ArrayRef,
    )])
    .unwrap();
    let file = std::fs::File::create(dir.join(&rel)).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    ChunkOutput {
        file: Some(rel.clone()),
        rows_in: 1,
        rows_out: 1,
        bytes: std::fs::metadata(dir.join(&rel)).unwrap().len(),
        wall_ms: 1,
        worker: 1,
        host: "h".into(),
        ..ChunkOutput::none(ChunkId(i), Attempt(1))
    }
}

fn start<'a>(plan: &'a str, inputs: &'a [InputIdentity]) -> StartLine<'a> {
    StartLine {
        plan,
        job_id: "j1",
        inputs,
        chunks: 3,
        rows: 3,
        reused: (0, 0),
    }
}

#[test]
fn resume_keeps_checked_chunks_of_the_same_plan() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "abc").unwrap();
    let inputs = vec![InputIdentity::of(&input).unwrap()];
    let mut j = Journal::open(dir.path(), &start("p1", &inputs), false).unwrap();
    let (a, b, c) = (out(0, dir.path()), out(1, dir.path()), out(2, dir.path()));
    j.accept(&a, None).unwrap();
    let mut lying = b.clone();
    lying.rows_out = 7; // an edited journal: the file holds 1 row
    j.accept(&lying, None).unwrap();
    j.accept(&c, None).unwrap();
    drop(j);
    std::fs::write(dir.path().join("data/c2.parquet"), b"12").unwrap(); // damaged
    let rec = latest_job(dir.path()).unwrap().unwrap();
    assert_eq!(rec.path, job_journal_path(dir.path(), "j1"));
    rec.check_plan("p1").unwrap();
    let done = rec.verified_outputs(dir.path());
    assert_eq!(done.iter().map(|o| o.chunk.0).collect::<Vec<_>>(), vec![0]);
    assert!(matches!(
        rec.check_plan("other"),
        Err(JournalError::OtherPlan { .. })
    ));
    std::fs::write(&input, "abcd").unwrap();
    let err = rec.check_plan("other").unwrap_err().to_string();
    assert!(
        err.contains("in.txt changed") && err.contains("3 bytes then, 4 now"),
        "{err}"
    );
    Journal::open(dir.path(), &start("p1", &inputs), true).unwrap();
    let entries = latest_job(dir.path()).unwrap().unwrap().entries;
    assert_eq!(
        entries
            .iter()
            .filter(|e| matches!(e, JournalEntry::Start { resumed: true, .. }))
            .count(),
        1
    );
    // A torn last line is ignored.
    std::fs::OpenOptions::new()
        .append(true)
        .open(job_journal_path(dir.path(), "j1"))
        .unwrap()
        .write_all(b"{\"Accep")
        .unwrap();
    assert_eq!(
        latest_job(dir.path()).unwrap().unwrap().entries.len(),
        entries.len()
    );
}

#[test]
fn a_torn_last_line_is_quiet_and_any_other_bad_line_is_named() {
    let good = serde_json::to_string(&JournalEntry::Published { at: 1, version: 2 }).unwrap();
    let text = format!("{good}\n{{\"Accep\n{good}\n{{\"Sta");
    let (entries, bad) = parse_lines(text.as_bytes());
    assert_eq!(entries.len(), 2);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].number, 2, "the damaged line in the middle is named");
    // A last line that was written whole (its newline is there) but is not an entry is
    // not torn: it is named too.
    let (entries, bad) = parse_lines(format!("{good}\nnot json\n").as_bytes());
    assert_eq!((entries.len(), bad.len()), (1, 1));
    assert_eq!(bad[0].number, 2);
    let (entries, bad) = parse_lines(b"");
    assert!(entries.is_empty() && bad.is_empty());
    // Bytes that are not UTF-8 are a bad line, not an unreadable journal.
    let mut raw = format!("{good}\n").into_bytes();
    raw.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let (entries, bad) = parse_lines(&raw);
    assert_eq!((entries.len(), bad.len()), (1, 1));
}
