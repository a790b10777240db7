//! The recording writer: one thread that seals recorded audio (`kald-recordings`' encrypted
//! chunk format) and writes it to disk, so neither the media thread nor the SIP loop ever waits
//! for the disk.
//!
//! The media thread hands it one second of stereo frames at a time (a buffer it gets back
//! for reuse, so the steady state allocates nothing); each second becomes one sealed chunk
//! written at once, so a crash loses at most the second being collected. A write that fails
//! (a full disk) stops that recording with an alarm; calls go on.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use kald_recordings::format::FRAME_SAMPLES;
use kald_recordings::{ChunkWriter, Finished, RecordingKeys};

/// kald's handle for one recording (the catalogue's id is a string; this is its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RecKey(pub(crate) u64);

/// Samples in one second of stereo frames (what the media thread sends at once).
pub(crate) const SECOND_SAMPLES: usize = FRAME_SAMPLES * 50;

/// What the writer is asked to do.
pub(crate) enum RecCmd {
    /// Create the file (owner-only) and write its header.
    Start { key: RecKey, path: PathBuf },
    /// Seal these frames (a multiple of 20 ms, at most a second) and write them.
    Frames { key: RecKey, samples: Vec<i16> },
    /// Seal the rest as the final chunk and close the file.
    Finish { key: RecKey },
    /// Stop and delete the file (consent withdrawn): nothing of it may remain.
    Discard { key: RecKey },
}

/// What the writer reports back to the SIP loop.
#[derive(Debug)]
pub(crate) enum RecReport {
    /// The recording is closed: its length and the SHA-256 of its plaintext.
    Finished { key: RecKey, finished: Finished },
    /// The recording stopped on an error (no space, I/O); the file holds what was written
    /// (`duration` of audio, as far as the writer got).
    Failed {
        key: RecKey,
        error: String,
        duration: std::time::Duration,
    },
    /// The file is gone.
    Discarded { key: RecKey },
}

/// The sending side, cloned into the media thread.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<RecCmd>,
    /// Emptied buffers coming back for reuse.
    pub(crate) spare: Arc<std::sync::Mutex<Vec<Vec<i16>>>>,
}

impl Recorder {
    /// Start the writer thread; reports go to `reports`.
    pub(crate) fn start(
        keys: RecordingKeys,
        reports: tokio::sync::mpsc::UnboundedSender<RecReport>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let spare = Arc::new(std::sync::Mutex::new(Vec::new()));
        let back = Arc::clone(&spare);
        std::thread::Builder::new()
            .name("kald-recorder".into())
            .spawn(move || run(&keys, &rx, &reports, &back))?;
        Ok(Self { tx, spare })
    }

    /// Queue a command (the writer never blocks the caller).
    pub(crate) fn send(&self, cmd: RecCmd) {
        let _ = self.tx.send(cmd);
    }

    /// A buffer for one second of samples, reused when one came back.
    pub(crate) fn buffer(&self) -> Vec<i16> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_else(|| Vec::with_capacity(SECOND_SAMPLES))
    }
}

struct Open {
    writer: ChunkWriter<BufWriter<File>>,
    path: PathBuf,
}

fn run(
    keys: &RecordingKeys,
    rx: &mpsc::Receiver<RecCmd>,
    reports: &tokio::sync::mpsc::UnboundedSender<RecReport>,
    spare: &std::sync::Mutex<Vec<Vec<i16>>>,
) {
    let mut open: HashMap<RecKey, Open> = HashMap::new();
    // Keys of recordings that failed: their later frames are dropped quietly.
    let mut failed: std::collections::HashSet<RecKey> = std::collections::HashSet::new();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            RecCmd::Start { key, path } => match create(keys, &path) {
                Ok(writer) => {
                    open.insert(key, Open { writer, path });
                }
                Err(e) => {
                    failed.insert(key);
                    alarm(&e);
                    let _ = reports.send(RecReport::Failed {
                        key,
                        error: e,
                        duration: std::time::Duration::ZERO,
                    });
                }
            },
            RecCmd::Frames { key, mut samples } => {
                if let Some(o) = open.get_mut(&key) {
                    let result = samples
                        .chunks_exact(FRAME_SAMPLES)
                        .try_for_each(|f| o.writer.push_frame(f));
                    if let Err(e) = result {
                        let duration = o.writer.duration();
                        open.remove(&key);
                        failed.insert(key);
                        let e = e.to_string();
                        alarm(&e);
                        let _ = reports.send(RecReport::Failed {
                            key,
                            error: e,
                            duration,
                        });
                    }
                }
                samples.clear();
                if let Ok(mut s) = spare.lock() {
                    if s.len() < 4096 {
                        s.push(samples);
                    }
                }
            }
            RecCmd::Finish { key } => {
                failed.remove(&key);
                if let Some(o) = open.remove(&key) {
                    let duration = o.writer.duration();
                    match o.writer.finish() {
                        Ok(finished) => {
                            let _ = reports.send(RecReport::Finished { key, finished });
                        }
                        Err(e) => {
                            let e = e.to_string();
                            alarm(&e);
                            let _ = reports.send(RecReport::Failed {
                                key,
                                error: e,
                                duration,
                            });
                        }
                    }
                }
            }
            RecCmd::Discard { key } => {
                failed.remove(&key);
                if let Some(o) = open.remove(&key) {
                    drop(o.writer);
                    if let Err(e) = std::fs::remove_file(&o.path) {
                        tracing::error!(error = %e, "a withdrawn recording's file could not be deleted");
                    }
                }
                let _ = reports.send(RecReport::Discarded { key });
            }
        }
    }
}

fn alarm(error: &str) {
    tracing::error!(%error, "ALARM: a recording stopped (is the disk full?); the call goes on unrecorded");
}

/// `N` bytes from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], rand::rand_core::OsError> {
    let mut b = [0u8; N];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut b)?;
    Ok(b)
}

/// Create the file owner-only (it is encrypted, but nobody else has business reading it).
fn create(keys: &RecordingKeys, path: &PathBuf) -> Result<ChunkWriter<BufWriter<File>>, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the recordings directory: {e}"))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create a recording file: {e}"))?;
    let nonce: [u8; 16] = random_bytes().map_err(|e| format!("no OS randomness: {e}"))?;
    // The buffer holds less than one chunk; ChunkWriter flushes after every chunk.
    ChunkWriter::new(BufWriter::with_capacity(64 * 1024, file), keys, nonce)
        .map_err(|e| e.to_string())
}
