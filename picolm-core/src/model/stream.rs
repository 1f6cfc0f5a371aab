//! Streaming mode: the engine reads the weights itself, with `pread`, into two fixed buffers ("slabs") that are
//! reused for the whole run, so the weight memory is exactly two slabs whatever the model size and whatever the
//! kernel's page-cache and fault-around policy.
//!
//! A forward pass consumes the weight matrices in a fixed order (per layer Q, K, V, O, gate, up, down; then the
//! output matrix), each cut into chunks of whole rows of at most one slab: that sequence is the [`StreamPlan`]. A
//! read-ahead thread reads chunk `i + 1` into the second slab while the compute threads work on chunk `i` (double
//! buffering); the read after the last chunk of a pass is the first chunk of the next pass (the next token). Slabs
//! are read with `O_DIRECT` where the file system allows it, otherwise through the page cache with the range
//! dropped afterwards ([`DataFile::read_slab`]). Token embedding rows are read one at a time, only the rows of the
//! tokens evaluated.
//!
//! The buffers move between the compute side and the read-ahead thread by value through channels, so no memory is
//! shared. The thread is joined when the model is dropped; its read errors reach the forward pass as typed errors.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::gguf::{AlignedBuf, DataFile, GgufFile};
use crate::model::weights::{LlamaWeights, MatrixRef};
use crate::model::ModelError;

/// Streaming settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Largest number of weight bytes read and computed at a time (a chunk is at least one row, so a slab is
    /// never smaller than the longest weight row).
    pub slab_bytes: usize,
}

/// One read: whole rows `row0..row0 + rows` of a matrix, `len` bytes at `offset` of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamChunk {
    /// File offset.
    pub offset: u64,
    /// Bytes.
    pub len: usize,
    /// First row.
    pub row0: usize,
    /// Number of rows.
    pub rows: usize,
}

/// The reads of one forward pass, in compute order.
#[derive(Clone, Debug, Default)]
pub struct StreamPlan {
    chunks: Vec<StreamChunk>,
    /// Matrix file offset → (index of its first chunk, number of chunks).
    matrices: HashMap<u64, (usize, usize)>,
    slab_bytes: usize,
}

impl StreamPlan {
    /// Cuts every matrix the forward pass multiplies by into chunks of at most `slab_bytes` (at least one row).
    pub fn new(weights: &LlamaWeights, slab_bytes: usize) -> StreamPlan {
        let mut plan = StreamPlan::default();
        let mats = weights.layers.iter().flat_map(|l| l.matrices()).chain(std::iter::once(&weights.output));
        for m in mats {
            if plan.matrices.contains_key(&(m.offset as u64)) {
                continue;
            }
            let per_chunk = (slab_bytes / m.row_bytes.max(1)).clamp(1, m.rows.max(1));
            let first = plan.chunks.len();
            let mut row0 = 0;
            while row0 < m.rows {
                let rows = per_chunk.min(m.rows - row0);
                let len = rows * m.row_bytes;
                plan.chunks.push(StreamChunk { offset: (m.offset + row0 * m.row_bytes) as u64, len, row0, rows });
                plan.slab_bytes = plan.slab_bytes.max(len);
                row0 += rows;
            }
            plan.matrices.insert(m.offset as u64, (first, plan.chunks.len() - first));
        }
        plan
    }

    /// The smallest slab any plan of these weights can use: the longest row of a streamed matrix.
    pub fn min_slab_bytes(weights: &LlamaWeights) -> usize {
        let layer_max = weights.layers.iter().flat_map(|l| l.matrices()).map(|m| m.row_bytes).max().unwrap_or(0);
        layer_max.max(weights.output.row_bytes)
    }

    /// The chunks in read order.
    pub fn chunks(&self) -> &[StreamChunk] {
        &self.chunks
    }

    /// Bytes of one slab buffer: the largest chunk.
    pub fn slab_bytes(&self) -> usize {
        self.slab_bytes
    }
}

/// A read handed to the read-ahead thread.
struct Job {
    index: usize,
    offset: u64,
    len: usize,
    buf: AlignedBuf,
}

/// A finished read: where the bytes are in the slab's region.
struct Done {
    index: usize,
    buf: AlignedBuf,
    result: Result<Range<usize>, crate::gguf::GgufError>,
}

/// Reads a model's weights for streaming mode (see the module documentation). Owned by the model.
#[derive(Debug)]
pub struct WeightStreamer {
    config: StreamConfig,
    state: Mutex<StreamState>,
}

/// The mutable side of a [`WeightStreamer`], held by one forward pass at a time.
pub struct StreamState {
    plan: StreamPlan,
    data: DataFile,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    /// Slab buffers not in use (two at rest; one while the other is being read ahead).
    spare: Vec<AlignedBuf>,
    /// The chunk being read ahead.
    pending: Option<usize>,
    /// One token-embedding row.
    row: Vec<u8>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamState")
            .field("chunks", &self.plan.chunks.len())
            .field("slab_bytes", &self.plan.slab_bytes)
            .field("pending", &self.pending)
            .finish()
    }
}

impl WeightStreamer {
    /// Plans the reads of `weights` in slabs of `config.slab_bytes`, allocates the two slabs and the embedding row
    /// buffer, and starts the read-ahead thread. `file` must be on disk (not parsed from memory).
    pub fn new(file: &GgufFile, weights: &LlamaWeights, config: StreamConfig) -> Result<WeightStreamer, ModelError> {
        let mut data = file.data_file().cloned().ok_or_else(|| ModelError::InvalidParameter {
            name: "stream_weights".into(),
            value: "streaming needs a model file on disk (this one was parsed from memory)".into(),
        })?;
        if std::env::var_os("PICOLM_STREAM_BUFFERED").is_none() {
            data.enable_direct();
        }
        let plan = StreamPlan::new(weights, config.slab_bytes);
        let slab = plan.slab_bytes();
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<Done>(2);
        let reader = data.clone();
        let worker = std::thread::Builder::new()
            .name("picolm-read-ahead".into())
            .stack_size(64 << 10)
            .spawn(move || {
                while let Ok(mut job) = jobs_rx.recv() {
                    let result = reader.read_slab(job.offset, job.len, &mut job.buf);
                    if done_tx.send(Done { index: job.index, buf: job.buf, result }).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| ModelError::ReadAheadThread(e.to_string()))?;
        let state = StreamState {
            plan,
            data,
            jobs: Some(jobs_tx),
            done: done_rx,
            spare: vec![AlignedBuf::new(slab), AlignedBuf::new(slab)],
            pending: None,
            row: vec![0u8; weights.token_embd.row_bytes],
            worker: Some(worker),
        };
        Ok(WeightStreamer { config: StreamConfig { slab_bytes: slab }, state: Mutex::new(state) })
    }

    /// The settings in use (`slab_bytes` is the actual slab: the largest chunk of the plan).
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Bytes of memory the streamer holds: two slabs (with their alignment slack) and one embedding row.
    pub fn buffer_bytes(&self) -> usize {
        2 * AlignedBuf::alloc_bytes(self.config.slab_bytes) + self.lock().row.len()
    }

    /// Whether the slabs are read around the page cache (`O_DIRECT`).
    pub fn is_direct(&self) -> bool {
        self.lock().data.is_direct()
    }

    /// Takes the reader for one forward pass. Call it outside the compute pool (a pool thread waiting for work
    /// could otherwise pick up a second pass that waits for this lock).
    pub fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A pass that panicked leaves no broken invariant: the state is resynchronised on the next fetch.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current read (whose result it may still deliver:
        // the result channel has room for it).
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl StreamState {
    /// Calls `f(rows, bytes)` for the chunks of `w`, in order, reading each into a slab (read ahead when
    /// predicted). Read errors are returned; `f` has then seen only the chunks before.
    pub fn matrix(&mut self, w: &MatrixRef, f: &mut dyn FnMut(Range<usize>, &[u8])) -> Result<(), ModelError> {
        let &(first, n) = self
            .plan
            .matrices
            .get(&(w.offset as u64))
            .ok_or_else(|| ModelError::WeightsUnavailable { name: w.name.clone() })?;
        let total = self.plan.chunks.len();
        for i in first..first + n {
            let (buf, at) = self.fetch(i)?;
            self.prefetch((i + 1) % total);
            let c = self.plan.chunks[i];
            f(c.row0..c.row0 + c.rows, &buf.region()[at]);
            self.spare.push(buf);
        }
        Ok(())
    }

    /// Reads row `r` of `m` (a token embedding row) into the row buffer.
    pub fn row(&mut self, m: &MatrixRef, r: usize) -> Result<&[u8], ModelError> {
        if self.row.len() != m.row_bytes {
            self.row.resize(m.row_bytes, 0);
        }
        self.data.read_at((m.offset + r * m.row_bytes) as u64, &mut self.row)?;
        Ok(&self.row)
    }

    /// The slab holding chunk `index`: the read-ahead result when it was predicted, otherwise read now.
    fn fetch(&mut self, index: usize) -> Result<(AlignedBuf, Range<usize>), ModelError> {
        if let Some(pending) = self.pending.take() {
            match self.done.recv() {
                Ok(Done { index: got, buf, result }) if got == index && pending == index => match result {
                    Ok(at) => return Ok((buf, at)),
                    Err(e) => {
                        self.spare.push(buf);
                        return Err(e.into());
                    }
                },
                // A read of another chunk (the pass went elsewhere): its slab is free again.
                Ok(Done { buf, .. }) => self.spare.push(buf),
                // The thread is gone (it cannot panic short of a bug): read without it from now on.
                Err(_) => self.jobs = None,
            }
        }
        let c = self.plan.chunks[index];
        let mut buf = self.spare.pop().unwrap_or_else(|| AlignedBuf::new(self.plan.slab_bytes));
        match self.data.read_slab(c.offset, c.len, &mut buf) {
            Ok(at) => Ok((buf, at)),
            Err(e) => {
                self.spare.push(buf);
                Err(e.into())
            }
        }
    }

    /// Starts reading chunk `index` into the free slab, if the thread is idle.
    fn prefetch(&mut self, index: usize) {
        if self.pending.is_some() {
            return;
        }
        let (Some(jobs), Some(buf)) = (self.jobs.as_ref(), self.spare.pop()) else { return };
        let c = self.plan.chunks[index];
        match jobs.send(Job { index, offset: c.offset, len: c.len, buf }) {
            Ok(()) => self.pending = Some(index),
            Err(mpsc::SendError(job)) => {
                self.spare.push(job.buf);
                self.jobs = None;
            }
        }
    }
}

impl crate::compute::WeightRows for WeightSource<'_> {
    type Error = ModelError;

    fn for_each_slab(&mut self, w: &MatrixRef, f: &mut dyn FnMut(Range<usize>, &[u8])) -> Result<(), ModelError> {
        WeightSource::for_each_slab(self, w, f)
    }
}

/// Where a forward pass gets its weight bytes.
pub enum WeightSource<'a> {
    /// From the memory map (default mode): each matrix is one slice.
    Mapped(&'a GgufFile),
    /// Read into slabs (streaming mode).
    Streamed(&'a mut StreamState),
}

impl WeightSource<'_> {
    /// Calls `f(rows, bytes)` over the whole of `w`, in one piece or chunk by chunk.
    pub fn for_each_slab(&mut self, w: &MatrixRef, f: &mut dyn FnMut(Range<usize>, &[u8])) -> Result<(), ModelError> {
        match self {
            WeightSource::Mapped(file) => {
                let bytes = w.bytes(file).ok_or_else(|| ModelError::WeightsUnavailable { name: w.name.clone() })?;
                f(0..w.rows, bytes);
                Ok(())
            }
            WeightSource::Streamed(state) => state.matrix(w, f),
        }
    }

    /// The bytes of row `r` of `m`.
    pub fn row(&mut self, m: &MatrixRef, r: usize) -> Result<&[u8], ModelError> {
        match self {
            WeightSource::Mapped(file) => {
                let bytes = w_row(m, file, r).ok_or_else(|| ModelError::WeightsUnavailable { name: m.name.clone() })?;
                Ok(bytes)
            }
            WeightSource::Streamed(state) => state.row(m, r),
        }
    }
}

fn w_row<'f>(m: &MatrixRef, file: &'f GgufFile, r: usize) -> Option<&'f [u8]> {
    m.bytes(file)?.get(r * m.row_bytes..(r + 1) * m.row_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml_type::GgmlType;
    use crate::model::weights::LayerWeights;

    fn m(name: &str, offset: usize, rows: usize, row_bytes: usize) -> MatrixRef {
        MatrixRef { name: name.into(), ty: GgmlType::Q8_0, rows, cols: row_bytes / 34 * 32, offset, row_bytes }
    }

    fn weights(tied: bool) -> LlamaWeights {
        let mut off = 0;
        let mut next = |name: &str, rows: usize, row_bytes: usize| {
            let w = m(name, off, rows, row_bytes);
            off += rows * row_bytes;
            w
        };
        let token_embd = next("token_embd", 100, 68);
        let layers = (0..2)
            .map(|_| LayerWeights {
                attn_norm: vec![],
                wq: next("q", 64, 68),
                wk: next("k", 16, 68),
                wv: next("v", 16, 68),
                wo: next("o", 64, 68),
                ffn_norm: vec![],
                w_gate: next("gate", 170, 68),
                w_up: next("up", 170, 68),
                w_down: next("down", 64, 204),
            })
            .collect();
        let output = if tied { token_embd.clone() } else { next("output", 100, 68) };
        LlamaWeights { token_embd, layers, output_norm: vec![], output, tied_output: tied }
    }

    #[test]
    fn chunks_cover_every_matrix_in_compute_order_within_the_slab() {
        for tied in [false, true] {
            let w = weights(tied);
            for slab in [1, 68, 1000, 4096, 1 << 20] {
                let plan = StreamPlan::new(&w, slab);
                let mats: Vec<&MatrixRef> =
                    w.layers.iter().flat_map(|l| l.matrices()).chain(std::iter::once(&w.output)).collect();
                let mut it = plan.chunks().iter();
                for mat in mats {
                    let mut row = 0;
                    while row < mat.rows {
                        let c = it.next().expect("a chunk for every row");
                        assert_eq!((c.row0, c.offset), (row, (mat.offset + row * mat.row_bytes) as u64));
                        assert_eq!(c.len, c.rows * mat.row_bytes);
                        assert!(c.rows >= 1 && (c.len <= slab || c.rows == 1), "slab {slab}: {c:?}");
                        row += c.rows;
                    }
                    assert_eq!(row, mat.rows);
                }
                assert!(it.next().is_none());
                assert_eq!(plan.slab_bytes(), plan.chunks().iter().map(|c| c.len).max().unwrap());
                assert!(plan.slab_bytes() <= slab.max(StreamPlan::min_slab_bytes(&w)));
            }
        }
    }
}
