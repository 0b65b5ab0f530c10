//! The ready queues and their worker threads.
//!
//! One queue per executor: the default one (index 0) and the graph's named executors, each
//! with its own worker threads; a node's tasks go to the queue of the executor it names. The
//! run's bookkeeping (running tasks, idleness, shutdown) is shared by all queues, under one
//! lock.
//!
//! Within a queue, tasks are ordered as MediaPipe orders them: every `open` before any
//! `process`, lower node id first; non-source `process` before source `process`, higher node
//! id first (closer to the sinks, so queues drain before sources fill them); sources by layer,
//! then by the smallest bound of their outputs, then by node id.
//!
//! The scheduler counts running tasks; when nothing is queued or running the graph is idle,
//! and one worker runs the graph's idle handler (which itself counts as a running task, so
//! exactly one thread handles each idle point).
//!
//! Unlike MediaPipe, one `process` task may make several calls: while its node stays ready
//! it makes up to 64 calls in a row, as long as they took under 50 µs in all, and delivers
//! their outputs together (see `RunState::process_node`). The calls are the same calls, in
//! the same order; a node with a backlog of quick calls just pays the scheduling round and
//! the consumer's lock once per batch instead of once per packet. A slow calculator, or one
//! that is ready for one timestamp at a time as in live video, makes one call per task.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::spec::NodeId;
use crate::timestamp::Timestamp;

thread_local! {
    /// The task this worker runs next without going through the shared queue: when a task
    /// makes another node ready, that node usually runs on the same thread right away, with
    /// no lock and no wake-up (a "LIFO slot", as in work-stealing schedulers).
    static LOCAL: Cell<Option<Task>> = const { Cell::new(None) };
    /// The scheduler this thread works for (0 for application threads), and the index of
    /// its executor there.
    static WORKER_OF: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// Open the node.
    Open,
    /// Run the node's input handler and `process` / `close` as it says.
    Process,
    /// Close a node of a loop at the end of the run (see `RunState::close_loop_node`), on
    /// its own executor.
    CloseLoop,
    /// Call a source's `process`.
    Source {
        /// The source's layer.
        layer: i32,
        /// The smallest bound of its outputs.
        order: Timestamp,
    },
}

/// One unit of work for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Task {
    pub(crate) kind: TaskKind,
    pub(crate) node: NodeId,
}

impl Ord for Task {
    /// Greater = runs first.
    fn cmp(&self, other: &Self) -> Ordering {
        use TaskKind::*;
        match (self.kind, other.kind) {
            (Open, Open) => other.node.cmp(&self.node),
            (Open, _) => Ordering::Greater,
            (_, Open) => Ordering::Less,
            (
                Source {
                    layer: la,
                    order: oa,
                },
                Source {
                    layer: lb,
                    order: ob,
                },
            ) => lb
                .cmp(&la)
                .then(ob.cmp(&oa))
                .then(other.node.cmp(&self.node)),
            (Source { .. }, _) => Ordering::Less,
            (_, Source { .. }) => Ordering::Greater,
            // Process and CloseLoop: higher node id first; a node's Process before its close.
            (a, b) => self
                .node
                .cmp(&other.node)
                .then((a == Process).cmp(&(b == Process))),
        }
    }
}

impl PartialOrd for Task {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Queue {
    /// One ready queue per executor.
    heaps: Vec<BinaryHeap<Task>>,
    /// Tasks running, plus external operations (graph input adds) and idle handling.
    running: usize,
    /// Bumped whenever work is added, so the idle handler can tell if anything happened.
    generation: u64,
    /// The graph went idle since the idle handler last ran.
    idle_check: bool,
    shutdown: bool,
}

/// The ready queues shared by the workers.
pub(crate) struct Scheduler {
    queue: Mutex<Queue>,
    /// The executor of each node (an index into the queues).
    executor_of: Vec<usize>,
    /// One wake-up per executor: its workers wait there for tasks.
    work: Vec<Condvar>,
    idle: Condvar,
}

/// What a worker should do next.
pub(crate) enum Next {
    /// Run this task.
    Run(Task),
    /// The graph is idle: run the idle handler (counted as running), then report
    /// `Finished::Idle` with this generation.
    Idle(u64),
    /// The run is over.
    Exit,
}

/// What a worker just finished.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finished {
    /// A task.
    Task,
    /// The idle handler, started at this generation.
    Idle(u64),
}

impl Queue {
    fn nothing_queued(&self) -> bool {
        self.heaps.iter().all(BinaryHeap::is_empty)
    }

    fn is_idle(&self) -> bool {
        self.running == 0 && self.nothing_queued()
    }

    /// Idle with the idle handling done, or shut down.
    fn is_settled(&self) -> bool {
        self.shutdown || (self.is_idle() && !self.idle_check)
    }
}

impl Scheduler {
    /// A scheduler with `executors` queues (at least 1: the default executor, index 0);
    /// node `n`'s tasks go to queue `executor_of[n]`.
    pub(crate) fn new(executors: usize, executor_of: Vec<usize>) -> Scheduler {
        let executors = executors.max(1);
        debug_assert!(executor_of.iter().all(|&e| e < executors));
        Scheduler {
            queue: Mutex::new(Queue {
                heaps: (0..executors).map(|_| BinaryHeap::new()).collect(),
                running: 0,
                generation: 0,
                idle_check: false,
                shutdown: false,
            }),
            executor_of,
            work: (0..executors).map(|_| Condvar::new()).collect(),
            idle: Condvar::new(),
        }
    }

    fn id(&self) -> usize {
        self as *const Scheduler as usize
    }

    /// Marks the calling thread as one of the workers of this scheduler's executor
    /// `executor`.
    pub(crate) fn enter_worker(&self, executor: usize) {
        WORKER_OF.set((self.id(), executor));
        LOCAL.set(None);
    }

    /// Queues a task on its node's executor. On a worker thread of that executor the
    /// highest-priority new task stays in the thread's local slot; the rest go to the
    /// executor's shared queue.
    pub(crate) fn push(&self, task: Task) {
        self.push_where(task, true);
    }

    /// Queues a task on its executor's shared queue, where any of its threads takes it (a
    /// call that should run beside the current one: a node's parallel calls).
    pub(crate) fn push_shared(&self, task: Task) {
        self.push_where(task, false);
    }

    /// Moves the task in this thread's local slot (if any) to the shared queue, where
    /// another thread can take it (before a call this thread will be busy with for long).
    pub(crate) fn flush_local(&self) {
        if let Some(task) = LOCAL.take() {
            self.push_where(task, false);
        }
    }

    fn push_where(&self, task: Task, local_slot: bool) {
        let executor = self.executor_of.get(task.node).copied().unwrap_or(0);
        let task = if local_slot && WORKER_OF.get() == (self.id(), executor) {
            match LOCAL.take() {
                None => {
                    LOCAL.set(Some(task));
                    return;
                }
                Some(prev) if task > prev => {
                    LOCAL.set(Some(task));
                    prev
                }
                Some(prev) => {
                    LOCAL.set(Some(prev));
                    task
                }
            }
        } else {
            task
        };
        let mut q = self.queue.lock();
        q.heaps[executor].push(task);
        q.generation += 1;
        drop(q);
        self.work[executor].notify_one();
    }

    /// Reports what this worker finished (if anything) and waits for the next thing to do
    /// (a task of its executor, or the idle handler).
    pub(crate) fn next(&self, finished: Option<Finished>) -> Next {
        // Without a deadline it waits until there is something to do.
        self.next_until(finished, None).unwrap_or(Next::Exit)
    }

    fn next_until(&self, finished: Option<Finished>, deadline: Option<Instant>) -> Option<Next> {
        let executor = WORKER_OF.get().1;
        if finished.is_some() {
            if let Some(task) = LOCAL.take() {
                // The finished task's place among the running ones passes to this one.
                return Some(Next::Run(task));
            }
        }
        let mut q = self.queue.lock();
        Self::account(&mut q, finished);
        loop {
            if q.shutdown {
                return Some(Next::Exit);
            }
            if let Some(task) = q.heaps[executor].pop() {
                q.running += 1;
                return Some(Next::Run(task));
            }
            if q.is_idle() && q.idle_check {
                q.idle_check = false;
                q.running += 1;
                return Some(Next::Idle(q.generation));
            }
            if q.is_idle() {
                self.idle.notify_all();
            }
            match deadline {
                None => self.work[executor].wait(&mut q),
                Some(d) => {
                    if self.work[executor].wait_until(&mut q, d).timed_out() {
                        return None;
                    }
                }
            }
        }
    }

    /// Counts what a worker finished as no longer running.
    fn account(q: &mut Queue, finished: Option<Finished>) {
        match finished {
            Some(Finished::Task) => {
                q.running -= 1;
                if q.is_idle() {
                    q.idle_check = true;
                }
            }
            Some(Finished::Idle(generation)) => {
                q.running -= 1;
                if q.generation != generation && q.is_idle() {
                    q.idle_check = true;
                }
            }
            None => {}
        }
    }

    /// Starts a stint of the calling thread (not one of the executor's workers) running
    /// `executor`'s tasks: the application thread driving an ApplicationThreadExecutor.
    /// What the thread was doing for another scheduler (a run inside an observer of another
    /// run, say) is saved and put back when the stint ends, also by a panic.
    pub(crate) fn begin_stint(&self, executor: usize) -> Stint<'_> {
        let saved_worker_of = WORKER_OF.get();
        let saved_local = LOCAL.take();
        WORKER_OF.set((self.id(), executor));
        Stint {
            sched: self,
            executor,
            saved_worker_of,
            saved_local,
            taken: None,
        }
    }

    /// True on a thread that is a worker of this scheduler (or driving one of its executors).
    pub(crate) fn is_worker_thread(&self) -> bool {
        WORKER_OF.get().0 == self.id()
    }

    /// What [`Scheduler::wait_until_idle`] waits for: nothing queued or running and the idle
    /// handling done, or the run shut down.
    pub(crate) fn is_settled(&self) -> bool {
        self.queue.lock().is_settled()
    }

    /// Marks the start of work done outside a task (e.g. an application thread delivering a
    /// graph input packet), so the graph is not considered idle meanwhile.
    pub(crate) fn begin_external(&self) {
        self.queue.lock().running += 1;
    }

    /// Ends external work; if the graph became idle, a worker (of the default executor)
    /// runs the idle handler.
    pub(crate) fn end_external(&self) {
        let mut q = self.queue.lock();
        q.running -= 1;
        q.generation += 1;
        let idle = q.is_idle();
        if idle {
            q.idle_check = true;
        }
        drop(q);
        if idle {
            // Any executor's worker runs the idle handler (the default executor may have no
            // thread: the application thread's).
            for work in &self.work {
                work.notify_one();
            }
        } else {
            self.work[0].notify_one();
        }
    }

    /// Blocks until the graph is idle (nothing queued or running, idle handling done), or
    /// `stop()` returns true (checked on each wake-up).
    pub(crate) fn wait_until_idle(&self, stop: impl Fn() -> bool) {
        let mut q = self.queue.lock();
        while !q.is_settled() && !stop() {
            self.idle.wait(&mut q);
        }
    }

    /// True if the idle handler that started at `generation` is still alone: nothing queued,
    /// nothing else running, no work added since.
    pub(crate) fn is_quiet(&self, generation: u64) -> bool {
        let q = self.queue.lock();
        q.running == 1 && q.nothing_queued() && q.generation == generation
    }

    /// Ends the run if the idle handler that started at `generation` is still alone (see
    /// [`Scheduler::is_quiet`]); returns whether it did.
    pub(crate) fn shutdown_if_quiet(&self, generation: u64) -> bool {
        let mut q = self.queue.lock();
        if !(q.running == 1 && q.nothing_queued() && q.generation == generation) {
            return false;
        }
        q.shutdown = true;
        drop(q);
        self.wake_all();
        true
    }

    /// Ends the run: workers exit.
    pub(crate) fn shutdown(&self) {
        let mut q = self.queue.lock();
        q.shutdown = true;
        q.heaps.iter_mut().for_each(BinaryHeap::clear);
        drop(q);
        self.wake_all();
    }

    fn wake_all(&self) {
        for work in &self.work {
            work.notify_all();
        }
        self.idle.notify_all();
    }
}

/// A thread running an executor's tasks for a while (see [`Scheduler::begin_stint`]).
pub(crate) struct Stint<'a> {
    sched: &'a Scheduler,
    executor: usize,
    saved_worker_of: (usize, usize),
    saved_local: Option<Task>,
    /// What the thread took (a task or the idle handler) and has not reported yet.
    taken: Option<Finished>,
}

impl Stint<'_> {
    /// Reports what the thread finished, with the task it queued for itself moved to the
    /// shared queue first (so the run never looks idle in between): afterwards the run's
    /// state (idle or not) is up to date.
    pub(crate) fn settle(&mut self) {
        let local = LOCAL.take();
        let mut q = self.sched.queue.lock();
        if let Some(task) = local {
            q.heaps[self.executor].push(task);
            q.generation += 1;
        }
        Scheduler::account(&mut q, self.taken.take());
        let idle = q.is_idle();
        drop(q);
        self.sched.work[self.executor].notify_one();
        if idle {
            self.sched.idle.notify_all();
        }
    }

    /// The next thing to do, waiting at most `timeout` (`None`: nothing came); call
    /// [`Stint::settle`] first.
    pub(crate) fn next(&mut self, timeout: Duration) -> Option<Next> {
        let next = self
            .sched
            .next_until(self.taken.take(), Some(Instant::now() + timeout));
        self.taken = match next {
            Some(Next::Run(_)) => Some(Finished::Task),
            Some(Next::Idle(generation)) => Some(Finished::Idle(generation)),
            _ => None,
        };
        next
    }
}

impl Drop for Stint<'_> {
    fn drop(&mut self) {
        self.settle();
        WORKER_OF.set(self.saved_worker_of);
        LOCAL.set(self.saved_local.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_mediapipe() {
        let mut heap = BinaryHeap::new();
        let t = |kind, node| Task { kind, node };
        heap.push(t(TaskKind::Process, 1));
        heap.push(t(
            TaskKind::Source {
                layer: 0,
                order: Timestamp::new(5),
            },
            0,
        ));
        heap.push(t(TaskKind::Open, 3));
        heap.push(t(TaskKind::Process, 4));
        heap.push(t(TaskKind::Open, 2));
        heap.push(t(
            TaskKind::Source {
                layer: 0,
                order: Timestamp::new(1),
            },
            5,
        ));
        heap.push(t(
            TaskKind::Source {
                layer: 1,
                order: Timestamp::new(0),
            },
            6,
        ));
        let order: Vec<NodeId> = std::iter::from_fn(|| heap.pop()).map(|t| t.node).collect();
        assert_eq!(order, vec![2, 3, 4, 1, 5, 0, 6]);
    }
}
