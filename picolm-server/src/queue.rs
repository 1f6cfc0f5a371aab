//! Admission and scheduling: at most `slots` jobs run at once, at most `queue` more wait; past that a request is
//! refused at once (503). A job runs on a blocking thread and streams [`JobEvent`]s back; dropping its
//! [`JobHandle`] (the client went away) cancels it within one token, or before it starts if it is still queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use picolm_core::CancelToken;
use tokio::sync::{mpsc, Semaphore};

use crate::engine::{Engine, Job, Outcome};
use crate::error::ApiError;

/// Pieces buffered between the engine thread and the HTTP response.
const EVENT_BUFFER: usize = 64;

/// What a running job reports.
#[derive(Debug)]
pub enum JobEvent {
    /// A piece of text.
    Piece(String),
    /// The end: the outcome or the error.
    Done(Result<Outcome, ApiError>),
}

/// The engine plus its admission control.
#[derive(Debug)]
pub struct Scheduler {
    engine: Arc<Engine>,
    permits: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// Counts an admitted job until dropped.
struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A submitted job: its events, and cancellation when dropped.
#[derive(Debug)]
pub struct JobHandle {
    /// The job's events; the last one is [`JobEvent::Done`] (none when it was cancelled).
    pub events: mpsc::Receiver<JobEvent>,
    cancel: CancelToken,
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Scheduler {
    /// `slots` concurrent jobs (the engine's slot count) and `queue` waiting ones.
    pub fn new(engine: Arc<Engine>, slots: usize, queue: usize) -> Scheduler {
        Scheduler {
            engine,
            permits: Arc::new(Semaphore::new(slots.max(1))),
            admitted: Default::default(),
            capacity: slots.max(1) + queue,
        }
    }

    /// Jobs running or queued now.
    pub fn load(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// Admits `job` or refuses it with 503 when `slots + queue` jobs are already admitted.
    pub fn submit(&self, job: Job) -> Result<JobHandle, ApiError> {
        let n = self.admitted.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket(self.admitted.clone());
        if n >= self.capacity {
            return Err(ApiError::overloaded(self.capacity));
        }
        let cancel = CancelToken::new();
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let (engine, permits, job_cancel) = (self.engine.clone(), self.permits.clone(), cancel.clone());
        tokio::spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else { return };
            if job_cancel.is_cancelled() {
                return;
            }
            let run = tokio::task::spawn_blocking(move || {
                let _hold = (ticket, permit);
                let mut sink = |piece: &str| tx.blocking_send(JobEvent::Piece(piece.to_string())).is_ok();
                match engine.run(&job, &job_cancel, &mut sink) {
                    Ok(Some(outcome)) => {
                        let _ = tx.blocking_send(JobEvent::Done(Ok(outcome)));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(JobEvent::Done(Err(e)));
                    }
                }
            });
            let _ = run.await;
        });
        Ok(JobHandle { events: rx, cancel })
    }
}
