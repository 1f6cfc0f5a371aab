//! Streaming mode: the engine reads the weights itself, with `pread`, into two fixed buffers ("slabs") that are
//! reused for the whole run, so the weight memory is two slabs (plus the matrices kept resident, see below)
//! whatever the model size and whatever the kernel's page-cache and fault-around policy.
//!
//! A forward pass consumes the weight matrices in a fixed order (per layer Q, K, V, O, gate, up, down; then the
//! output matrix). The [`StreamPlan`] cuts the streamed ones into reads ("chunks") of at most one slab: a chunk is
//! one contiguous range of the file holding whole rows of the matrices that follow each other in compute order and
//! in the file (in a file laid out in compute order, reads of a full slab across matrix and layer bounds, instead of
//! one read or more per matrix). A read-ahead thread reads chunk `i + 1` into the second slab while the compute
//! threads work on chunk `i` (double buffering); the read after the last chunk of a pass is the first chunk of the
//! next pass (the next token). Slabs are read with `O_DIRECT` where the file system allows it, in a few concurrent
//! pieces ([`DataFile::read_slab`]), otherwise through the page cache with the range dropped afterwards. Token
//! embedding rows are read one at a time, only the rows of the tokens evaluated.
//!
//! When the memory budget leaves room ([`StreamConfig::resident_bytes`]), a fixed set of matrices is read once at
//! load into the engine's own aligned buffers and never streamed: whole layers spread evenly over the pass (so the
//! read-ahead thread reads the next streamed layer while a resident one is computed), then the tail matrices of
//! streamed layers (so what is streamed of a layer stays one contiguous read). Each token then reads only the rest.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamConfig {
    /// Largest number of weight bytes read and computed at a time (a chunk is at least one row, so a slab is
    /// never smaller than the longest weight row).
    pub slab_bytes: usize,
    /// Bytes of memory for matrices kept resident (read once at load, never streamed; `0` = none). The buffers
    /// allocated for them ([`AlignedBuf::alloc_bytes`] of each resident range) stay within this.
    pub resident_bytes: usize,
}

/// Largest gap (bytes of other tensors, e.g. a norm vector) a chunk may read over to join two matrices; a gap
/// holding a weight matrix is never read over.
const MAX_GAP: u64 = 64 << 10;

/// The start offsets of a model's weight matrices (ascending), to tell the gaps that may be read over.
struct Starts(Vec<u64>);

impl Starts {
    fn of(weights: &LlamaWeights) -> Starts {
        let all = weights.layers.iter().flat_map(|l| l.matrices()).chain([&weights.output, &weights.token_embd]);
        let mut starts: Vec<u64> = all.map(|m| m.offset as u64).collect();
        crate::sorting::sort_u64(&mut starts);
        Starts(starts)
    }

    /// Whether bytes at `start` continue a range ending at `end`: after it, with a small gap holding no matrix.
    fn joins(&self, end: u64, start: u64) -> bool {
        // The first start at or after `end` must not lie before `start`.
        let first = self.0.partition_point(|&s| s < end);
        start >= end && start - end <= MAX_GAP && self.0.get(first).is_none_or(|&s| s >= start)
    }
}

/// One read: `len` bytes at `offset` of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamChunk {
    /// File offset.
    pub offset: u64,
    /// Bytes.
    pub len: usize,
}

/// Whole rows `row0..row0 + rows` of a matrix, at byte `at` of chunk `chunk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPiece {
    /// Index of the chunk in [`StreamPlan::chunks`].
    pub chunk: usize,
    /// Byte offset of the rows in the chunk.
    pub at: usize,
    /// First row.
    pub row0: usize,
    /// Number of rows.
    pub rows: usize,
}

/// A range of the file kept in memory for the whole run, holding whole matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidentRange {
    /// File offset.
    pub offset: u64,
    /// Bytes.
    pub len: usize,
}

/// Where a matrix's bytes come from in streaming mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Pieces `first..first + n` of [`StreamPlan::pieces`].
    Streamed { first: usize, n: usize },
    /// Byte `at` of resident range `range`.
    Resident { range: usize, at: usize },
}

/// The reads of one forward pass, in compute order, and the ranges kept resident.
#[derive(Clone, Debug, Default)]
pub struct StreamPlan {
    chunks: Vec<StreamChunk>,
    pieces: Vec<StreamPiece>,
    resident: Vec<ResidentRange>,
    /// Matrix file offset → its source.
    matrices: HashMap<u64, Source>,
    slab_bytes: usize,
}

/// The units residency is decided in: the matrices of each layer, then the output matrix, in compute order, each
/// matrix once.
fn units(weights: &LlamaWeights) -> Vec<Vec<&MatrixRef>> {
    let mut seen = std::collections::HashSet::new();
    weights
        .layers
        .iter()
        .map(|l| l.matrices().to_vec())
        .chain(std::iter::once(vec![&weights.output]))
        .map(|u| u.into_iter().filter(|m| seen.insert(m.offset)).collect::<Vec<_>>())
        .filter(|u| !u.is_empty())
        .collect()
}

/// The matrices a forward pass multiplies by, in compute order, each once.
fn pass_matrices(weights: &LlamaWeights) -> Vec<&MatrixRef> {
    units(weights).into_iter().flatten().collect()
}

/// Bytes of a matrix.
fn bytes_of(m: &MatrixRef) -> u64 {
    m.n_bytes() as u64
}

/// The contiguous file ranges of `mats` (joined over the gaps [`Starts::joins`] allows, in ascending file order).
fn ranges_of(mats: &[&MatrixRef], starts: &Starts) -> Vec<ResidentRange> {
    let sorted =
        crate::sorting::ids_sorted_by_key(mats.len(), |i| mats[i].offset).into_iter().map(|i| mats[i as usize]);
    let mut out: Vec<ResidentRange> = Vec::new();
    for m in sorted {
        let (start, end) = (m.offset as u64, m.offset as u64 + bytes_of(m));
        match out.last_mut() {
            Some(r) if starts.joins(r.offset + r.len as u64, start) => r.len = (end - r.offset) as usize,
            _ => out.push(ResidentRange { offset: start, len: (end - start) as usize }),
        }
    }
    out
}

/// Memory held for resident ranges.
fn alloc_of(ranges: &[ResidentRange]) -> u64 {
    ranges.iter().map(|r| AlignedBuf::alloc_bytes(r.len) as u64).sum()
}

/// Picks the matrices to keep resident within `room` bytes of buffers: whole units (layers, the output matrix)
/// spread evenly over the pass by bytes, then, for the room left, the tail matrices (in file order) of the
/// streamed layers, so that what is streamed of a layer stays one contiguous range.
fn choose_resident<'w>(weights: &'w LlamaWeights, starts: &Starts, room: u64) -> Vec<&'w MatrixRef> {
    let units = units(weights);
    let cost = |mats: &[&MatrixRef]| alloc_of(&ranges_of(mats, starts));
    let total: u64 = units.iter().map(|u| cost(u)).sum();
    if room == 0 || total == 0 {
        return Vec::new();
    }
    let mut kept = vec![false; units.len()];
    let mut used = 0u64;
    // Pass 1: a unit is kept when the kept bytes stay within the room's share of the bytes seen so far, to the
    // nearest half unit (an even spread: the read-ahead thread reads the next streamed unit while a kept one is
    // computed).
    let mut seen = 0u64;
    for (i, u) in units.iter().enumerate() {
        let c = cost(u);
        seen += c;
        let share = (room as u128 * seen as u128 / total as u128) as u64;
        if used + c / 2 <= share && used + c <= room {
            kept[i] = true;
            used += c;
        }
    }
    // Pass 2: whole units that still fit.
    for (i, u) in units.iter().enumerate() {
        let c = cost(u);
        if !kept[i] && used + c <= room {
            kept[i] = true;
            used += c;
        }
    }
    let mut chosen: Vec<&MatrixRef> =
        units.iter().zip(&kept).filter(|(_, &k)| k).flat_map(|(u, _)| u.clone()).collect();
    // Pass 3: tails of the streamed units, last matrix in the file first.
    for (u, _) in units.iter().zip(&kept).filter(|(_, &k)| !k) {
        let by_file = crate::sorting::ids_sorted_by_key(u.len(), |i| std::cmp::Reverse(u[i].offset));
        let mut tail: Vec<&MatrixRef> = Vec::new();
        for m in by_file.into_iter().map(|i| u[i as usize]) {
            tail.push(m);
            let c = cost(&tail);
            let before = cost(&tail[..tail.len() - 1]);
            if used - before + c > room {
                tail.pop();
                break;
            }
            used = used - before + c;
        }
        chosen.extend(tail);
    }
    chosen
}

impl StreamPlan {
    /// Keeps resident the matrices chosen within `resident_bytes` (see the module documentation) and cuts every
    /// other matrix the forward pass multiplies by into chunks of at most `slab_bytes` (at least one row).
    pub fn new(weights: &LlamaWeights, slab_bytes: usize, resident_bytes: usize) -> StreamPlan {
        let mut plan = StreamPlan::default();
        let starts = Starts::of(weights);
        let kept = choose_resident(weights, &starts, resident_bytes as u64);
        plan.resident = ranges_of(&kept, &starts);
        for m in &kept {
            let (m0, m1) = (m.offset as u64, m.offset as u64 + bytes_of(m));
            let range = plan.resident.iter().position(|r| r.offset <= m0 && m1 <= r.offset + r.len as u64);
            let range = range.expect("a resident matrix lies in one of its ranges");
            let at = (m0 - plan.resident[range].offset) as usize;
            plan.matrices.insert(m0, Source::Resident { range, at });
        }
        let slab = slab_bytes as u64;
        for m in pass_matrices(weights) {
            if plan.matrices.contains_key(&(m.offset as u64)) {
                continue;
            }
            let first = plan.pieces.len();
            let rb = m.row_bytes.max(1) as u64;
            let mut row0 = 0;
            while row0 < m.rows {
                let start = m.offset as u64 + row0 as u64 * rb;
                // Joins the open chunk when the rows follow it in the file and at least one row fits.
                let joins = plan
                    .chunks
                    .last()
                    .is_some_and(|c| starts.joins(c.offset + c.len as u64, start) && start + rb - c.offset <= slab);
                if !joins {
                    plan.chunks.push(StreamChunk { offset: start, len: 0 });
                }
                let c = plan.chunks.len() - 1;
                let chunk_start = plan.chunks[c].offset;
                let fit = (slab.saturating_sub(start - chunk_start) / rb) as usize;
                let rows = fit.clamp(1, m.rows - row0);
                let end = start + rows as u64 * rb;
                plan.chunks[c].len = (end - chunk_start) as usize;
                plan.slab_bytes = plan.slab_bytes.max(plan.chunks[c].len);
                plan.pieces.push(StreamPiece { chunk: c, at: (start - chunk_start) as usize, row0, rows });
                row0 += rows;
            }
            plan.matrices.insert(m.offset as u64, Source::Streamed { first, n: plan.pieces.len() - first });
        }
        plan
    }

    /// The smallest slab any plan of these weights can use: the longest row of a streamed matrix.
    pub fn min_slab_bytes(weights: &LlamaWeights) -> usize {
        pass_matrices(weights).iter().map(|m| m.row_bytes).max().unwrap_or(0)
    }

    /// The largest slab worth having: the longest run of matrices that follow each other in compute order and in
    /// the file (the whole model when its file is in compute order), which a slab that large reads at once.
    pub fn max_useful_slab_bytes(weights: &LlamaWeights) -> usize {
        let starts = Starts::of(weights);
        let mut longest = 0u64;
        let mut run: Option<(u64, u64)> = None;
        for m in pass_matrices(weights) {
            let (start, end) = (m.offset as u64, m.offset as u64 + bytes_of(m));
            run = match run {
                Some((s, e)) if starts.joins(e, start) => Some((s, end)),
                _ => Some((start, end)),
            };
            longest = longest.max(run.map_or(0, |(s, e)| e - s));
        }
        (longest as usize).max(StreamPlan::min_slab_bytes(weights))
    }

    /// The chunks in read order.
    pub fn chunks(&self) -> &[StreamChunk] {
        &self.chunks
    }

    /// The pieces of the chunks, in compute order.
    pub fn pieces(&self) -> &[StreamPiece] {
        &self.pieces
    }

    /// The ranges kept resident.
    pub fn resident(&self) -> &[ResidentRange] {
        &self.resident
    }

    /// Bytes of the buffers of the resident ranges.
    pub fn resident_alloc_bytes(&self) -> usize {
        alloc_of(&self.resident) as usize
    }

    /// Bytes of one slab buffer: the largest chunk.
    pub fn slab_bytes(&self) -> usize {
        self.slab_bytes
    }

    /// The pieces of a streamed matrix, `None` when it is resident or not in the plan.
    pub fn pieces_of(&self, m: &MatrixRef) -> Option<&[StreamPiece]> {
        match self.matrices.get(&(m.offset as u64))? {
            Source::Streamed { first, n } => Some(&self.pieces[*first..first + n]),
            Source::Resident { .. } => None,
        }
    }

    /// Whether a matrix is kept resident.
    pub fn is_resident(&self, m: &MatrixRef) -> bool {
        matches!(self.matrices.get(&(m.offset as u64)), Some(Source::Resident { .. }))
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
    /// The resident ranges' buffers and where each range's bytes are in its buffer's region.
    resident: Vec<(AlignedBuf, Range<usize>)>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    /// Slab buffers not in use (two at rest; one while the other is being read ahead).
    spare: Vec<AlignedBuf>,
    /// The chunk whose slab the pass is computing from, kept until a piece of another chunk is asked for.
    current: Option<(usize, AlignedBuf, Range<usize>)>,
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
            .field("resident_ranges", &self.plan.resident.len())
            .field("pending", &self.pending)
            .finish()
    }
}

impl WeightStreamer {
    /// Chooses the resident matrices within `config.resident_bytes` and reads them (the only weight reads at load),
    /// plans the reads of the others in slabs of `config.slab_bytes`, allocates the two slabs and the embedding
    /// row buffer, and starts the read-ahead thread. `file` must be on disk (not parsed from memory).
    pub fn new(file: &GgufFile, weights: &LlamaWeights, config: StreamConfig) -> Result<WeightStreamer, ModelError> {
        let mut data = file.data_file().cloned().ok_or_else(|| ModelError::InvalidParameter {
            name: "stream_weights".into(),
            value: "streaming needs a model file on disk (this one was parsed from memory)".into(),
        })?;
        if std::env::var_os("PICOLM_STREAM_BUFFERED").is_none() {
            data.enable_direct();
        }
        let plan = StreamPlan::new(weights, config.slab_bytes, config.resident_bytes);
        let mut resident = Vec::with_capacity(plan.resident.len());
        for r in &plan.resident {
            let mut buf = AlignedBuf::new(r.len);
            let at = data.read_slab(r.offset, r.len, &mut buf)?;
            resident.push((buf, at));
        }
        let resident_alloc = resident.iter().map(|(b, _)| b.capacity()).sum();
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
        // No slab when everything is resident.
        let slabs = if plan.chunks.is_empty() { vec![] } else { vec![AlignedBuf::new(slab), AlignedBuf::new(slab)] };
        let state = StreamState {
            plan,
            data,
            resident,
            jobs: Some(jobs_tx),
            done: done_rx,
            spare: slabs,
            current: None,
            pending: None,
            row: vec![0u8; weights.token_embd.row_bytes],
            worker: Some(worker),
        };
        Ok(WeightStreamer {
            config: StreamConfig { slab_bytes: slab, resident_bytes: resident_alloc },
            state: Mutex::new(state),
        })
    }

    /// The settings in use: `slab_bytes` is the actual slab (the largest chunk of the plan, `0` when nothing is
    /// streamed), `resident_bytes` the memory of the resident matrices.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Bytes of memory the streamer holds: two slabs (with their alignment slack), one embedding row and the
    /// resident matrices' buffers.
    pub fn buffer_bytes(&self) -> usize {
        let state = self.lock();
        let slabs = if state.plan.chunks.is_empty() { 0 } else { 2 * AlignedBuf::alloc_bytes(self.config.slab_bytes) };
        slabs + state.row.len() + self.config.resident_bytes
    }

    /// Bytes of weight data kept resident, and of weight data read per forward pass (the embedding rows aside).
    pub fn resident_and_streamed_bytes(&self) -> (u64, u64) {
        let state = self.lock();
        let resident = state.plan.resident.iter().map(|r| r.len as u64).sum();
        let streamed = state.plan.chunks.iter().map(|c| c.len as u64).sum();
        (resident, streamed)
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
    /// Calls `f(rows, bytes)` over `w`: once with the whole matrix when it is resident, otherwise for its pieces in
    /// order, each from the slab of its chunk (read ahead when predicted). Read errors are returned; `f` has then
    /// seen only the pieces before.
    pub fn matrix(&mut self, w: &MatrixRef, f: &mut dyn FnMut(Range<usize>, &[u8])) -> Result<(), ModelError> {
        let unavailable = || ModelError::WeightsUnavailable { name: w.name.clone() };
        let (first, n) = match *self.plan.matrices.get(&(w.offset as u64)).ok_or_else(unavailable)? {
            Source::Resident { range, at } => {
                let (buf, r) = &self.resident[range];
                let bytes = buf.region()[r.clone()].get(at..at + w.n_bytes()).ok_or_else(unavailable)?;
                f(0..w.rows, bytes);
                return Ok(());
            }
            Source::Streamed { first, n } => (first, n),
        };
        for i in first..first + n {
            let p = self.plan.pieces[i];
            let chunk = self.chunk(p.chunk)?;
            let bytes = chunk.get(p.at..p.at + p.rows * w.row_bytes).ok_or_else(unavailable)?;
            f(p.row0..p.row0 + p.rows, bytes);
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

    /// The bytes of chunk `index`: the current slab when it holds them, otherwise the current slab is given back
    /// and the chunk fetched, and the next one read ahead.
    fn chunk(&mut self, index: usize) -> Result<&[u8], ModelError> {
        if self.current.as_ref().is_none_or(|(i, _, _)| *i != index) {
            if let Some((_, buf, _)) = self.current.take() {
                self.spare.push(buf);
            }
            let (buf, at) = self.fetch(index)?;
            self.prefetch((index + 1) % self.plan.chunks.len());
            self.current = Some((index, buf, at));
        }
        let (_, buf, at) = self.current.as_ref().expect("set above");
        Ok(&buf.region()[at.clone()])
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

    /// Two or more layers laid out in compute order (a norm vector of 100 bytes before Q and before gate), then the
    /// output matrix (or the tied embedding table).
    fn weights_n(tied: bool, n_layers: usize, output_rows: usize) -> LlamaWeights {
        let mut off = 0;
        let mut next = |name: &str, rows: usize, row_bytes: usize| {
            let w = m(name, off, rows, row_bytes);
            off += rows * row_bytes;
            w
        };
        let token_embd = next("token_embd", 100, 68);
        let layers = (0..n_layers)
            .map(|_| {
                next("attn_norm", 1, 100);
                let (wq, wk, wv, wo) = (next("q", 64, 68), next("k", 16, 68), next("v", 16, 68), next("o", 64, 68));
                next("ffn_norm", 1, 100);
                let (w_gate, w_up, w_down) = (next("gate", 170, 68), next("up", 170, 68), next("down", 64, 204));
                LayerWeights { attn_norm: vec![], wq, wk, wv, wo, ffn_norm: vec![], w_gate, w_up, w_down }
            })
            .collect();
        let output = if tied { token_embd.clone() } else { next("output", output_rows, 68) };
        LlamaWeights { token_embd, layers, output_norm: vec![], output, tied_output: tied }
    }

    fn weights(tied: bool) -> LlamaWeights {
        weights_n(tied, 2, 400)
    }

    fn layer_bytes(w: &LlamaWeights) -> usize {
        let l = &w.layers[0];
        l.w_down.offset + l.w_down.n_bytes() - l.wq.offset
    }

    /// Checks what every plan must satisfy and returns the number of resident matrices.
    fn check(w: &LlamaWeights, plan: &StreamPlan, slab: usize, room: usize) -> usize {
        let mut pieces = plan.pieces().iter();
        let mut last_chunk = 0;
        let mut n_resident = 0;
        for mat in pass_matrices(w) {
            if plan.is_resident(mat) {
                n_resident += 1;
                assert!(plan.pieces_of(mat).is_none());
                let r = plan.resident().iter().find(|r| {
                    r.offset <= mat.offset as u64 && (mat.offset + mat.n_bytes()) as u64 <= r.offset + r.len as u64
                });
                assert!(r.is_some(), "{} inside a resident range", mat.name);
                continue;
            }
            let mut row = 0;
            for p in plan.pieces_of(mat).expect("streamed") {
                assert_eq!(Some(p), pieces.next(), "pieces in compute order");
                assert!(p.chunk >= last_chunk, "chunks in compute order");
                last_chunk = p.chunk;
                let c = plan.chunks()[p.chunk];
                assert_eq!(p.row0, row);
                assert_eq!(c.offset + p.at as u64, (mat.offset + row * mat.row_bytes) as u64, "{}", mat.name);
                assert!(p.at + p.rows * mat.row_bytes <= c.len);
                assert!(p.rows >= 1 && (c.len <= slab || p.rows == 1), "slab {slab}: {c:?} {p:?}");
                row += p.rows;
            }
            assert_eq!(row, mat.rows);
        }
        assert!(pieces.next().is_none());
        assert_eq!(plan.slab_bytes(), plan.chunks().iter().map(|c| c.len).max().unwrap_or(0));
        assert!(plan.slab_bytes() <= slab.max(StreamPlan::min_slab_bytes(w)));
        assert!(
            plan.resident_alloc_bytes() <= room,
            "resident {} above the room {room}: {:?}",
            plan.resident_alloc_bytes(),
            plan.resident()
        );
        n_resident
    }

    #[test]
    fn chunks_cover_every_matrix_in_compute_order_within_the_slab() {
        for tied in [false, true] {
            let w = weights(tied);
            for slab in [1, 68, 1000, 4096, 1 << 20] {
                for room in [0, 5000, 20_000, 40_000, 1 << 20] {
                    let plan = StreamPlan::new(&w, slab, room);
                    check(&w, &plan, slab, room);
                }
            }
        }
    }

    #[test]
    fn a_slab_of_a_layer_reads_each_layer_at_once() {
        let w = weights(false);
        let plan = StreamPlan::new(&w, layer_bytes(&w), 0);
        // Two layers and the output, the norm vectors between them read over.
        assert_eq!(plan.chunks().len(), 3, "{:?}", plan.chunks());
        assert_eq!(plan.chunks()[0].len, layer_bytes(&w));
        // The file is in compute order: a slab of the whole model would read it at once.
        let all = w.output.offset + w.output.n_bytes() - w.layers[0].wq.offset;
        assert_eq!(StreamPlan::max_useful_slab_bytes(&w), all);
        assert_eq!(StreamPlan::new(&w, all, 0).chunks().len(), 1);
    }

    #[test]
    fn resident_layers_are_spread_and_the_rest_stays_one_read_a_layer() {
        // An output matrix larger than a layer, which never fits the room.
        let w = weights_n(false, 8, 2000);
        let layer = layer_bytes(&w);
        let lb = AlignedBuf::alloc_bytes(layer);
        // Room for two whole layers: two layers resident, apart from each other, and the other six one read each.
        let plan = StreamPlan::new(&w, layer, 2 * lb);
        assert_eq!(check(&w, &plan, layer, 2 * lb), 14);
        let kept: Vec<usize> = (0..8).filter(|&l| plan.is_resident(&w.layers[l].wq)).collect();
        assert_eq!(kept.len(), 2);
        assert!(kept[1] - kept[0] >= 3, "resident layers {kept:?} spread over the pass");
        let output_chunks = plan.pieces_of(&w.output).unwrap().len();
        assert_eq!(plan.chunks().len(), 6 + output_chunks);
        // Room for the tail of a layer as well: `down` of the first streamed layer; its streamed part stays one read.
        let down = AlignedBuf::alloc_bytes(w.layers[0].w_down.n_bytes());
        let plan = StreamPlan::new(&w, layer, 2 * lb + down);
        assert_eq!(check(&w, &plan, layer, 2 * lb + down), 15);
        let partial = (0..8).find(|&l| plan.is_resident(&w.layers[l].w_down) && !plan.is_resident(&w.layers[l].wq));
        let l = &w.layers[partial.expect("a partly resident layer")];
        let chunk = plan.pieces_of(&l.wq).unwrap()[0].chunk;
        assert!([&l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up].iter().all(|m| plan.pieces_of(m).unwrap()[0].chunk == chunk));
        assert_eq!(plan.chunks().len(), 6 + output_chunks);
        // Room for everything: nothing streamed.
        let plan = StreamPlan::new(&w, layer, 1 << 30);
        assert_eq!(check(&w, &plan, layer, 1 << 30), pass_matrices(&w).len());
        assert!(plan.chunks().is_empty() && plan.slab_bytes() == 0);
    }
}
