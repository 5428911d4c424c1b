use super::*;
use crate::FakeSampler;
use flywheel_protocol::{channel_transport, GpuSample, Transport};

#[test]
fn heartbeats_carry_the_gpu_sampler_readings() {
    let (mut tx, mut links) = channel_transport(1);
    let mut link = links.remove(0);
    let mut cfg = WorkerConfig::new(
        JobOptions::new("in.parquet", "/nonexistent/out", "builtin:identity"),
        Rank(1),
    );
    cfg.heartbeat = Duration::from_millis(5);
    let sample = GpuSample {
        index: 3,
        uuid: None,
        name: "Fake H200".into(),
        utilization: 88,
        memory_used_mb: 10,
        memory_total_mb: 141_000,
        power_w: Some(500.0),
        temperature_c: Some(55),
        ecc_uncorrected: Some(0),
        problem: None,
    };
    let fake = Box::new(FakeSampler::new(vec![sample.clone()]));
    let worker = std::thread::spawn(move || run_worker_with(&mut link, cfg, fake));
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.is_none() && Instant::now() < deadline {
        if let Ok(Some((_, ToCoordinator::Heartbeat { gpu }))) =
            tx.recv_timeout(Duration::from_millis(50))
        {
            got = gpu;
        }
    }
    assert_eq!(got, Some(sample));
    tx.send(Rank(1), ToWorker::Stop)
        .expect("stop reaches the worker");
    worker
        .join()
        .expect("the worker thread does not panic")
        .expect("the worker stops cleanly");
}
