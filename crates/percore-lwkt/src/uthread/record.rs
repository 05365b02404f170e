//! # The uthread record
//!
//! A uthread is an `Arc<Thread>`. Its scheduling state ([`Sched`]) belongs to
//! the worker named by `owner` and is touched by that worker's OS thread only
//! (the uthread itself runs there too); other threads reach it by sending the
//! owner an IPI. Each field below says who may touch it.
//!
//! The park word's protocol is `park.rs`; the witness that reaches the
//! owner-only state is [`Owned`].
//!
//! Records are recycled (issue 15): the worker that drops the last
//! reference to an exited uthread's record (its joiner's, or its owner's
//! when nobody held a handle) keeps it in a small per-worker cache
//! (`Worker::recycle`, decided by `Arc::get_mut`), and a spawn there
//! resets every field but `shared` ([`Thread::reuse`]) instead of
//! allocating.

use crate::kernel::RuntimeState;
use crate::sync::token::word::TokenList;
use crate::sys::Stack;
use crate::uthread::joinslot::JoinSlot;
use crate::uthread::park::ParkWord;
use corosensei::{Coroutine, Yielder};
use percore_cpu::loom::Ordering::Relaxed;
use percore_cpu::loom::{Arc, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, UnsafeCell};

pub(crate) type Coro = Coroutine<(), (), (), Stack>;

/// Where a uthread is, from its owner's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    /// Created, not yet on a run queue.
    New,
    /// On the owner's run queue.
    Queued,
    /// The owner's current uthread.
    Running,
    /// Descheduled, waiting for a wake-up.
    Blocked,
    /// Switched out, in flight to another worker.
    Migrating,
    /// Finished; its stack is reaped.
    Dead,
}

/// What a uthread asks of the scheduler when it switches out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Back on the run queue, behind its equal-priority peers.
    Yield,
    /// Back on the run queue, ahead of its peers (token contention).
    YieldFront,
    /// Descheduled until a wake-up.
    Block,
    /// Move to another worker.
    Migrate(usize),
}

/// Owner-only scheduling state.
pub(crate) struct Sched {
    // NOTE: every field is the owning worker's: reached only through
    // `Thread::sched` with that worker's `Owned` witness, by its scheduler
    // or by the uthread itself while it runs there.
    /// The coroutine's yielder: set by the coroutine body when it starts
    /// (on its first resume), valid while the coroutine lives; read by
    /// `switch_out`.
    pub(crate) yielder: *const Yielder<(), ()>,
    /// Where the uthread is (`RunState`): changed by the owner's scheduler
    /// (enqueue, resume, switch-out, migration, exit).
    pub(crate) state: RunState,
    /// A schedule arrived while it was running (it had set `PARKED` but not
    /// switched out yet) or in flight to this owner: set by the owner's
    /// wake-up handling, consumed by the switch-out or the adoption.
    pub(crate) resched: bool,
    /// Its priority, the scheduler's copy (the record's `pri` mirrors it
    /// for other threads): changed by `set_pri_local` on the owner.
    pub(crate) pri: u8,
    /// Why it switches out: written by the uthread just before it
    /// suspends, read by the scheduler right after.
    pub(crate) intent: Intent,
    /// The tokens it asked for (`sync/token/`): pushed and removed by the
    /// uthread, taken and released by the scheduler around each resume.
    pub(crate) tokens: TokenList,
    /// Index in the owner's list of all uthreads (`gd_tdallq`): set by
    /// `adopt`, fixed up by `unadopt` of another.
    pub(crate) allq_idx: usize,
    /// Being unwound by runtime shutdown: set by the owner's shutdown
    /// before it drops the coroutine; read by the coroutine's catch.
    pub(crate) cancelled: bool,
    /// The uthread's critical-section depth while it is switched out
    /// (saved and restored by the worker around each resume). A critical
    /// section belongs to the uthread, not to the worker (issue 16).
    pub(crate) crit: u32,
    /// Inside `migrate`: set by the uthread before it switches out, cleared
    /// when it runs again (on its target). While set, `give_away` refuses
    /// (`NotDescheduled`), so `migrate` returns where it was asked to.
    pub(crate) migrating: bool,
}

impl Sched {
    /// A new uthread's state: `New`, at priority `pri`.
    fn new(pri: u8) -> Sched {
        Sched {
            yielder: std::ptr::null(),
            state: RunState::New,
            resched: false,
            pri,
            intent: Intent::Yield,
            tokens: TokenList::default(),
            allq_idx: usize::MAX,
            cancelled: false,
            crit: 0,
            migrating: false,
        }
    }
}

/// The witness that the code holding it may touch the scheduler-owned state
/// ([`Sched`], the coroutine) of the uthreads it uses it with: it runs on
/// the OS thread of the worker that owns them, as that worker's scheduler
/// or as the uthread itself. Zero-sized and neither `Send` nor `Sync`: it
/// costs nothing and cannot leave the thread it was made on. Only
/// `Worker::owned` makes one (the one `unsafe` block of the ownership
/// rule), from the `&Worker` that only its own OS thread can reach.
///
/// What its holders keep, and `Worker::owned` states once:
///
/// * it is used only with uthreads its worker owns: ones in the worker's
///   run queue or thread list, its current uthread, or ones an IPI handler
///   found with `owner == self` (after the acquire load that pairs with the
///   release store of a migration or give-away);
/// * no two references from [`Thread::sched`] to one uthread's state are
///   alive at once: each caller re-fetches after any call that may reach
///   the same uthread's state (an enqueue, a switch), and keeps none across
///   a switch.
#[derive(Clone, Copy)]
pub(crate) struct Owned<'w>(std::marker::PhantomData<&'w *const ()>);

impl Owned<'_> {
    /// # Safety
    ///
    /// The caller runs on a worker's OS thread and keeps the rules above
    /// for every use of the witness.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        Owned(std::marker::PhantomData)
    }
}

/// A uthread: the record every `Arc<Thread>` (run queues, waiters,
/// handles, IPIs) shares.
pub(crate) struct Thread {
    /// Process-unique, never 0. Immutable.
    pub(crate) id: u64,
    /// The builder's name. Immutable.
    pub(crate) name: Option<Box<str>>,
    /// Its runtime. Immutable.
    pub(crate) shared: Arc<RuntimeState>,
    /// The owning worker: the one whose witness may reach `sched`. Stored
    /// (release) only by the current owner, when it migrates or gives the
    /// uthread away, after its last access to `sched`; loaded (acquire) by
    /// wakers and IPI handlers, which pair with that store.
    pub(crate) owner: AtomicUsize,
    /// The wake-up word (`park.rs`): any thread unparks, the uthread parks.
    pub(crate) park: ParkWord,
    /// Mirror of `Sched::pri` for other threads (`Uthread::priority`):
    /// stored by whoever changes the priority, read anywhere; relaxed, it
    /// orders nothing.
    pub(crate) pri: AtomicU32,
    /// `lwkt_hold` references taken (`Uthread::hold`): any thread; relaxed,
    /// informational (the `Arc` keeps the record alive).
    pub(crate) holds: AtomicUsize,
    /// The armed timer: `(worker << 48) | seq` of its entry, 0 if none.
    /// Written by the uthread itself, read by the worker holding the entry.
    timer: AtomicU64,
    /// Its message port, created on first use by any sender or by the
    /// uthread (`sync/port.rs`); closed by the owner when the uthread exits.
    pub(crate) port: PortSlot,
    /// Its stack's guard range and usable size, for the overflow handler
    /// (`sys/overflow.rs`); set before the uthread is shared, then immutable.
    pub(crate) stack: ((usize, usize), usize),
    /// The watchdog has reported this uthread's stall (`worker/watchdog.rs`):
    /// swapped by the watchdog thread only.
    pub(crate) stall_logged: AtomicBool,
    /// Its result, for its `JoinHandle` (`joinslot.rs`): written by the
    /// uthread's body, cancelled by its owner at shutdown, read by the
    /// handle; reset through `&mut` when the record is recycled.
    pub(crate) join: JoinSlot,
    /// The scheduler-owned state: only through `sched` with the owner's
    /// witness.
    sched: UnsafeCell<Sched>,
    /// The coroutine. Owner-only like `sched`, but a separate cell: the
    /// scheduler holds it mutably across `resume` while the uthread uses
    /// `sched`.
    coro: UnsafeCell<Option<Coro>>,
}

// SAFETY: `sched` is only touched by the owning worker's OS thread (see the
// module doc); everything else is atomic or immutable.
unsafe impl Send for Thread {}
// SAFETY: as above.
unsafe impl Sync for Thread {}

impl Thread {
    pub(crate) fn new(
        id: u64,
        name: Option<Box<str>>,
        shared: Arc<RuntimeState>,
        owner: usize,
        pri: u8,
        coro: Option<Coro>,
    ) -> Thread {
        Thread {
            id,
            name,
            shared,
            owner: AtomicUsize::new(owner),
            park: ParkWord::new(),
            pri: AtomicU32::new(u32::from(pri)),
            holds: AtomicUsize::new(0),
            timer: AtomicU64::new(0),
            port: PortSlot::default(),
            stack: ((0, 0), 0),
            stall_logged: AtomicBool::new(false),
            join: JoinSlot::new(),
            coro: UnsafeCell::new(coro),
            sched: UnsafeCell::new(Sched::new(pri)),
        }
    }

    /// The scheduler-owned state, reached with the owner's witness.
    /// Make a recycled record (`Worker::recycle`) into a new uthread's:
    /// every field as [`Thread::new`] sets it, except `shared`, which a
    /// worker's cache only holds records of its own runtime for. `&mut`:
    /// nobody else can reach the record (`Arc::get_mut` said so).
    pub(crate) fn reuse(&mut self, id: u64, name: Option<Box<str>>, owner: usize, pri: u8, coro: Option<Coro>) {
        // NOTE: destructured in full, so that a field added to `Thread`
        // without a reset here fails to compile.
        let Thread {
            id: i,
            name: n,
            shared: _,
            owner: o,
            park,
            pri: p,
            holds,
            timer,
            port,
            stack,
            stall_logged,
            join,
            sched,
            coro: c,
        } = self;
        *i = id;
        *n = name;
        *o = AtomicUsize::new(owner);
        *park = ParkWord::new();
        *p = AtomicU32::new(u32::from(pri));
        *holds = AtomicUsize::new(0);
        *timer = AtomicU64::new(0);
        port.reset();
        *stack = ((0, 0), 0);
        *stall_logged = AtomicBool::new(false);
        join.reset();
        *sched = UnsafeCell::new(Sched::new(pri));
        debug_assert!(c.with(|p| {
            // SAFETY: `&mut self`: no other reference to the cell exists.
            unsafe { (*p).is_none() }
        }));
        *c = UnsafeCell::new(coro);
    }

    /// Whether the record's coroutine is gone (reaped after its return, or
    /// dropped at shutdown): only such a record may be recycled.
    pub(crate) fn coro_gone(&mut self) -> bool {
        // SAFETY: `&mut self`: no other reference to the cell exists.
        self.coro.with(|p| unsafe { (*p).is_none() })
    }

    // NOTE: `&self` in, `&mut` out: what makes it exclusive is the witness
    // (see `Owned`), not the borrow.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) fn sched<'a>(&'a self, _owner: Owned<'a>) -> &'a mut Sched {
        // SAFETY: `Owned` exists only on the OS thread of the worker that
        // owns every uthread it is used with, and its holders keep no two
        // references to one uthread's state alive at once (see `Owned`).
        self.sched.with_mut(|p| unsafe { &mut *p })
    }

    /// The coroutine slot, reached with the owner's witness. A separate
    /// cell from `sched`: the scheduler holds it across `resume` while the
    /// uthread uses `sched`; the uthread itself never touches it.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) fn coro<'a>(&'a self, _owner: Owned<'a>) -> &'a mut Option<Coro> {
        // SAFETY: as in `sched`, for the `coro` cell.
        self.coro.with_mut(|p| unsafe { &mut *p })
    }

    pub(crate) fn set_pri_mirror(&self, p: u8) {
        // ORDERING: relaxed: a mirror for observers; the owner's `Sched::pri` is the real one.
        self.pri.store(u32::from(p), Relaxed);
    }

    pub(crate) fn arm_timer(&self, worker: usize, seq: u64) {
        // ORDERING: relaxed: a stale read only costs a spurious unpark, which
        // every waiter tolerates, or keeps a stale entry until it expires.
        self.timer.store(((worker as u64) << 48) | (seq & ((1 << 48) - 1)), Relaxed);
    }

    pub(crate) fn timer_armed(&self, worker: usize, seq: u64) -> bool {
        // ORDERING: relaxed: as in `arm_timer`.
        self.timer.load(Relaxed) == ((worker as u64) << 48) | (seq & ((1 << 48) - 1))
    }

    pub(crate) fn disarm_timer(&self) {
        // ORDERING: relaxed: as in `arm_timer`.
        self.timer.store(0, Relaxed);
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other reference to the cell exists.
        if let Some(c) = self.coro.with_mut(|p| unsafe { (*p).take() }) {
            if c.started() && !c.done() {
                // NOTE: a suspended coroutine is only ever dropped by its
                // owner at shutdown (it is unwound there). Should one escape,
                // leaking its stack is the sound choice: unwinding it here
                // would run its destructors on a foreign thread, and freeing
                // it unwound would break `Pin`'s drop guarantee.
                std::mem::forget(c);
            }
        }
    }
}

/// A uthread's message port as its record sees it. The record does not know
/// the port's type, `sync/port.rs` does: naming it here would make the
/// record, the port, the waiters it wakes and the scheduler one import loop.
pub(crate) trait Mailbox: Send + Sync {
    /// The uthread exited: drop what is queued, refuse what comes.
    fn close(&self);
    /// The port itself, for `sync/port.rs`'s downcast.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The record's port slot (`portslot.rs`): empty until the port's first
/// use (most uthreads never use theirs, and a spawn allocates nothing for
/// it); closed by the owner at exit.
pub(crate) type PortSlot = crate::uthread::portslot::PortSlot<Box<dyn Mailbox>>;

/// Close `t`'s port: the uthread exited (or is cancelled). A port never
/// opened is only marked closed: no sender can open it afterwards.
#[inline]
pub(crate) fn close_port(t: &Thread) {
    if let Some(m) = t.port.close() {
        m.close();
    }
}
