//! Issue 16, "also seen": a uthread that joins its own `JoinHandle` used to
//! block for ever (it waits for its own exit). Now `join` answers at once
//! with `JoinError::Wait(Error::SelfJoin)`.

mod common;
use common::watchdog;
use percore_lwkt::{Error, JoinError, JoinHandle, Runtime};
use std::sync::{mpsc, Arc, Mutex};

#[test]
fn a_uthread_joining_itself_gets_a_typed_error() {
    watchdog("self join", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let slot: Arc<Mutex<Option<JoinHandle<u32>>>> = Arc::default();
        let (s, (tx, rx)) = (slot.clone(), mpsc::channel());
        let h = rt
            .spawn(move || {
                let me = loop {
                    if let Some(h) = s.lock().unwrap().take() {
                        break h;
                    }
                    percore_lwkt::yield_now();
                };
                tx.send(matches!(me.join(), Err(JoinError::Wait(Error::SelfJoin)))).unwrap();
                7
            })
            .unwrap();
        *slot.lock().unwrap() = Some(h);
        assert!(rx.recv().unwrap(), "self-join must fail with SelfJoin, not block");
    });
}
