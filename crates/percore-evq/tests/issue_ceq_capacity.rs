//! Issue 13: `Ceq::new(1 << 40, ..)` aborted the process on allocation
//! failure and `Ceq::new(usize::MAX, ..)` panicked with a capacity overflow.
//!
//! Scenario: `Ceq::try_new` with 1 << 40 and `usize::MAX` ids (ids are
//! `u32`, so both exceed `Ceq::MAX_IDS`) returns `Error::Invalid`; a queue of
//! a million ids is made without touching its memory up front and works.
use percore_evq::{Ceq, Coalesce, Error, Queue};

#[test]
fn too_many_ids_is_a_typed_error() {
    for ids in [1usize << 40, usize::MAX, Ceq::MAX_IDS + 1] {
        assert!(matches!(Ceq::try_new(ids, Coalesce::Or), Err(Error::Invalid(_))), "{ids}");
    }
    let q = Ceq::try_new(1 << 20, Coalesce::Add).unwrap();
    q.post((1 << 20) - 1, 2).unwrap();
    q.post((1 << 20) - 1, 3).unwrap();
    let e = q.try_recv().unwrap();
    assert_eq!((e.kind, e.payload), ((1 << 20) - 1, 5));
    assert!(q.post(1 << 20, 1).is_err());
}

#[test]
#[should_panic(expected = "Ceq::new")]
fn new_panics_with_a_message_not_an_abort() {
    let _ = Ceq::new(usize::MAX, Coalesce::Or);
}
