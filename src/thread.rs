//! Named threads that join when their handle drops (rust-analyzer's `stdx::thread`).
//!
//! Every thread in handful has a role and a name (`handful-control`, `handful-link-rx`,
//! ...), visible in `top -H`, panics and debuggers. A [`JoinOnDrop`] joins its thread
//! when dropped, so no thread outlives the value that owns it.

use std::thread::JoinHandle;

/// A thread handle that joins the thread when dropped.
#[derive(Debug)]
pub struct JoinOnDrop<T> {
    handle: Option<JoinHandle<T>>,
}

impl<T> JoinOnDrop<T> {
    /// Waits for the thread and returns its result (`Err` if it panicked).
    pub fn join(mut self) -> std::thread::Result<T> {
        self.handle
            .take()
            .map(JoinHandle::join)
            .unwrap_or_else(|| Err(Box::new("thread already joined")))
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<T> Drop for JoinOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Spawns a thread called `name`. Fails only if the OS refuses a thread.
pub fn spawn_named<F, T>(name: &str, f: F) -> std::io::Result<JoinOnDrop<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let handle = std::thread::Builder::new().name(name.to_owned()).spawn(f)?;
    Ok(JoinOnDrop {
        handle: Some(handle),
    })
}

/// Nice 10 for the calling thread (the retrainer, the evaluator): the control loop wins
/// every contest for a core.
pub fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}
