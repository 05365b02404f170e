//! Issue 13, "one error story": every public error type of every percore
//! crate is `Send + Sync + 'static` and a `std::error::Error`, so `?` carries
//! it into `Box<dyn Error + Send + Sync>` (or anyhow). `percore_lwkt::JoinError`
//! used to hold its panic payload as a bare `Box<dyn Any + Send>`, which is
//! not `Sync`, and this file did not compile.

use std::error::Error as StdError;

fn assert_error<E: StdError + Send + Sync + 'static>() {}

#[test]
fn every_public_error_is_send_sync_static() {
    assert_error::<percore::cpu::Error>();
    assert_error::<percore::smr::Error>();
    assert_error::<percore::zone::Error>();
    assert_error::<percore::pool::Error>();
    assert_error::<percore::pool::JoinError>();
    assert_error::<percore::lwkt::Error>();
    assert_error::<percore::lwkt::JoinError>();
    assert_error::<percore::lwkt::ShutdownTimeout>();
    assert_error::<percore::evq::Error>();
    assert_error::<percore::Error>();
    assert_error::<percore::JoinError>();
}

/// `?` from a uthread's join into the boxed error most applications use,
/// and the panic still resumable through `into_panic`.
#[test]
fn join_error_boxes_and_resumes() {
    fn joined() -> Result<u32, Box<dyn StdError + Send + Sync>> {
        let rt = percore::Runtime::builder().workers(1).build()?;
        let v = rt.block_on(|| -> u32 { panic!("boom") })?;
        Ok(v)
    }
    let e = joined().unwrap_err();
    let je = e.downcast::<percore::JoinError>().unwrap();
    assert!(je.is_panic() && !je.is_cancelled());
    assert_eq!(je.panic_message(), Some("boom"));
    let payload = je.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
}

/// The pool's join has the same shape.
#[test]
fn pool_join_error_has_the_same_shape() {
    let pool = percore::pool::ThreadPool::builder().name("err-shape").max_threads(1).build().unwrap();
    let e: percore::pool::JoinError = pool.spawn(|| -> u32 { panic!("pool boom") }).join().unwrap_err();
    assert!(e.is_panic() && !e.is_cancelled());
    assert_eq!(e.panic_message(), Some("pool boom"));
    let boxed: Box<dyn StdError + Send + Sync> = e.into();
    let e = boxed.downcast::<percore::pool::JoinError>().unwrap();
    assert_eq!(e.into_panic().downcast_ref::<&str>(), Some(&"pool boom"));
}
