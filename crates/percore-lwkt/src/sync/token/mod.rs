//! # Tokens: serializing locks that cannot deadlock across blocking
//!
//! A DragonFly `lwkt_token` is owned by the *running* uthread only. Each
//! uthread keeps the list of tokens it has asked for (its `TokenList`). When
//! it switches out for any reason (yield, block, migrate) the scheduler
//! releases every token in the list; before it resumes the uthread, the
//! scheduler re-acquires all of them, all or nothing. If any is contended the
//! uthread is skipped and the next one in the run queue is tried
//! (`lwkt_switch`'s contended scan); it is retried at the next pass.
//!
//! ## Why tokens cannot deadlock
//!
//! A deadlock needs a thread that holds one lock while it waits for another.
//! A uthread never waits while holding a token: it waits only by switching
//! out, and switching out releases all of its tokens; acquisition by the
//! scheduler takes all of a uthread's tokens at once or none. So no cycle of
//! "holds A, waits for B" can form, whether the uthread blocks, sleeps, or
//! asks for a contended token (which is itself a switch-out). The price is
//! the token's contract: what a token protects may change across any call
//! that can block, so code re-checks its state after such calls, exactly as
//! in the DragonFly kernel.
//!
//! ## Word
//!
//! | bits | meaning |
//! | --- | --- |
//! | bit 0 (`EXCL`) | held exclusively |
//! | bits 1.. | number of shared holders |
//!
//! A uthread asking again for a token it already holds gets a *recursive*
//! reference that touches no atomic. Asking for exclusive while holding the
//! token shared only is refused ([`Error::TokenUpgrade`]): it could never be
//! granted.

use crate::error::Error;
use crate::uthread::record::{Intent, Thread};
use crate::worker;
use std::marker::PhantomData;
use word::{Mode, TokenWord};

pub(crate) mod word;

/// A DragonFly LWKT token: a lock owned by the running uthread, released
/// automatically whenever it blocks and re-acquired before it runs again.
///
/// ```
/// use percore_lwkt::{Runtime, Token};
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// use std::sync::Arc;
///
/// static TOKEN: Token = Token::new();
/// let rt = Runtime::builder().workers(2).build().unwrap();
/// let n = Arc::new(AtomicU64::new(0));
/// let hs: Vec<_> = (0..4).map(|_| {
///     let n = n.clone();
///     percore_lwkt::Builder::new().rotate().spawn_on(rt.handle(), move || {
///         for _ in 0..100 {
///             let _g = TOKEN.lock().unwrap();
///             let v = n.load(Relaxed); // no one else runs under the token
///             n.store(v + 1, Relaxed);
///         }
///     }).unwrap()
/// }).collect();
/// for h in hs { h.join().unwrap(); }
/// assert_eq!(n.load(Relaxed), 400);
/// ```
#[derive(Debug, Default)]
pub struct Token {
    word: TokenWord,
}

/// Proof that the current uthread holds a [`Token`] (`lwkt_reltoken` on
/// drop). Tied to its uthread: not `Send`.
///
/// ```compile_fail
/// use percore_lwkt::Token;
/// static T: Token = Token::new();
/// fn send<X: Send>(_: X) {}
/// send(T.lock().unwrap());
/// ```
#[derive(Debug)]
pub struct TokenGuard<'a> {
    _token: &'a Token,
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl Token {
    /// A free token.
    pub const fn new() -> Token {
        Token { word: TokenWord::new() }
    }

    /// Take the token exclusively (`lwkt_gettoken`). If it is contended the
    /// uthread switches out and runs again once the scheduler could take all
    /// its tokens. Errors: [`Error::NotUthread`]; [`Error::InCritical`] /
    /// [`Error::InSmrSection`] when contended inside such a section;
    /// [`Error::TokenUpgrade`].
    pub fn lock(&self) -> Result<TokenGuard<'_>, Error> {
        self.get(Mode::Excl)
    }

    /// Take the token shared (`lwkt_gettoken_shared`); see [`Token::lock`].
    pub fn lock_shared(&self) -> Result<TokenGuard<'_>, Error> {
        self.get(Mode::Shared)
    }

    /// Whether anyone holds it now (a racy hint).
    pub fn is_locked(&self) -> bool {
        self.word.is_locked()
    }

    fn get(&self, want: Mode) -> Result<TokenGuard<'_>, Error> {
        let w = worker::current_worker().ok_or_else(|| Error::NotUthread)?;
        let t: &Thread = w.current_ptr().ok_or_else(|| Error::NotUthread)?;
        let list = &mut t.sched(w.owned()).tokens;
        let me: *const TokenWord = &self.word;
        let mut mine = list.refs.iter().filter(|r| r.tok == me);
        let mode = match (want, mine.clone().next()) {
            (_, None) => want,
            (Mode::Shared, Some(_)) => Mode::Recursive,
            (_, Some(_)) if mine.any(|r| r.mode == Mode::Excl) => Mode::Recursive,
            _ => return Err(Error::TokenUpgrade),
        };
        let held = self.word.try_take(mode);
        let id = list.push(me, mode, held);
        let guard = TokenGuard { _token: self, id, _not_send: PhantomData };
        if held {
            return Ok(guard);
        }
        if let Err(e) = w.check_block() {
            // Not registered as held: dropping the guard just unlinks it.
            drop(guard);
            return Err(e);
        }
        // Contended: switch out; the scheduler takes all our tokens (this one
        // included) before resuming us.
        w.switch_out(t, Intent::YieldFront);
        Ok(guard)
    }
}

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        let Some(w) = worker::current_worker() else { return };
        let Some(t) = w.current_ptr() else { return };
        // NOTE: the guard is not `Send`: we are its uthread, on its owner.
        let list = &mut t.sched(w.owned()).tokens;
        let Some(i) = list.refs.iter().position(|r| r.id == self.id) else { return };
        let r = list.refs.remove(i);
        if r.mode == Mode::Recursive {
            return;
        }
        // Hand the real hold to a remaining recursive reference, if any.
        if let Some(heir) = list.refs.iter_mut().find(|x| x.tok == r.tok && x.mode == Mode::Recursive) {
            heir.mode = r.mode;
            heir.held = r.held;
            return;
        }
        if r.held {
            // SAFETY: the guard borrows the token, so it is alive.
            unsafe { &*r.tok }.give(r.mode);
        }
    }
}
